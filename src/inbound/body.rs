//! Stage 2 of the inbound path: the whole raw body is read ([`crate::http_io::read_body`])
//! before anything else happens, so it can be verified before the app sees a single byte
//! of it. A refused request's body is drained here.

use std::time::Duration;

use super::client::Client;
use crate::http_io::BodySource;

/// How long, and how much of, a refused request's body is still read after the answer:
/// closing at once would reset a client still sending, and it would never read the answer.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 16 << 20;

/// Reads and drops what the client still sends of a refused request's body, for a bounded
/// time and size (nginx's lingering close), so it reads the answer before the connection
/// closes.
pub async fn linger(client: &mut Client<'_>) {
    let drain = async {
        let mut drained = 0;
        while let Ok(Some(piece)) = client.next_body_piece().await {
            drained += piece.len();
            if drained > LINGER_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, drain).await;
}
