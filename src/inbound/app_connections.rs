//! Connections to the app: idle ones kept for the next request, new ones opened with
//! Pingora's transport connector.
//!
//! Pingora's own pool watches each idle connection with a task of its own, spawned at
//! every release and woken at every reuse, and asks the kernel for the peer's address at
//! every reuse: a tenth of the inbound path's CPU. Here an idle connection just waits in
//! a list, and whether the app closed it is asked when it is taken: tokio already knows,
//! without a syscall, whether the socket became readable (a close, or bytes the app should
//! not have sent).

use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use pingora::connectors::TransportConnector;
use pingora::protocols::Stream;
use pingora::upstreams::peer::HttpPeer;
use tokio::io::{AsyncRead, ReadBuf};

pub struct AppConnections {
    transport: TransportConnector,
    /// Most recently used last.
    idle: Mutex<Vec<(Stream, Instant)>>,
    max_idle: usize,
    idle_timeout: Duration,
}

impl AppConnections {
    pub fn new(max_idle: usize, idle_timeout: Duration) -> Self {
        AppConnections {
            transport: TransportConnector::new(None),
            idle: Mutex::new(Vec::new()),
            max_idle,
            idle_timeout,
        }
    }

    /// An idle connection the app still holds open (and `true`), or a new one.
    pub async fn get(&self, peer: &HttpPeer) -> pingora::Result<(Stream, bool)> {
        loop {
            let taken = self.lock().pop();
            let Some((mut stream, since)) = taken else {
                break;
            };
            if since.elapsed() >= self.idle_timeout {
                // The rest are older still.
                self.lock().clear();
                break;
            }
            if still_open(&mut stream) {
                return Ok((stream, true));
            }
        }
        // Boxed: connecting (TLS included) is a state machine of kilobytes, which would
        // otherwise be part of every request's future and be copied with it, while nearly
        // every request takes a pooled connection.
        Ok((Box::pin(self.transport.new_stream(peer)).await?, false))
    }

    /// Keeps `stream`, idle between two requests, for the next one.
    pub fn put(&self, stream: Stream) {
        let mut idle = self.lock();
        if idle.len() < self.max_idle {
            idle.push((stream, Instant::now()));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Stream, Instant)>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Whether an idle connection has nothing to read: neither the app's close nor stray bytes.
fn still_open(stream: &mut Stream) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    let mut byte = [0u8; 1];
    let mut buf = ReadBuf::new(&mut byte);
    matches!(Pin::new(stream).poll_read(&mut cx, &mut buf), Poll::Pending)
}
