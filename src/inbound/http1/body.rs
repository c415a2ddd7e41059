//! A message body as it arrives on an HTTP/1 connection: by `Content-Length`, in chunks
//! (RFC 9112 §7.1), or until the peer closes (an app's answer only). Chunk sizes,
//! extensions and trailers are bounded, and every malformed byte is an error: a body read
//! wrong is where request smuggling starts.

use bytes::{Buf, Bytes};

use super::Connection;

/// How a message says where its body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (a request with neither header, a `HEAD` answer, a 204 or 304).
    Empty,
    Length(u64),
    Chunked,
    /// Until the peer closes: an answer without length or chunks.
    UntilClose,
}

/// A `Content-Length` value: 1 to 18 ASCII digits (no sign, space or list), so it
/// cannot overflow.
pub fn parse_length(value: &[u8]) -> Option<u64> {
    let digits = !value.is_empty() && value.len() <= 18 && value.iter().all(u8::is_ascii_digit);
    digits.then(|| value.iter().fold(0, |n, d| n * 10 + u64::from(d - b'0')))
}

/// Longest chunk-size line (size and extensions) and most trailer bytes accepted.
const MAX_CHUNK_LINE: usize = 4096;
const MAX_TRAILERS: usize = 16 * 1024;

#[derive(Debug)]
pub enum BodyError {
    /// The peer closed before the body's end.
    Closed,
    Io(std::io::Error),
    /// The chunked coding is broken.
    Malformed(&'static str),
}

impl BodyError {
    pub fn describe(&self) -> String {
        match self {
            BodyError::Closed => "the connection closed before the body's end".to_string(),
            BodyError::Io(e) => format!("reading failed: {}", e.kind()),
            BodyError::Malformed(why) => format!("malformed chunked body: {why}"),
        }
    }
}

/// Where a body being read stands.
#[derive(Debug)]
enum State {
    /// This many bytes left of a `Content-Length` body, or of the current chunk.
    Remaining {
        left: u64,
        chunked: bool,
    },
    /// The CRLF that ends a chunk's data.
    ChunkEnd,
    ChunkSize,
    Trailers {
        seen: usize,
    },
    UntilClose,
    Done,
}

/// Reads one message's body from its connection, piece by piece.
#[derive(Debug)]
pub struct Body {
    state: State,
}

impl Body {
    pub fn new(framing: Framing) -> Self {
        let state = match framing {
            Framing::Empty | Framing::Length(0) => State::Done,
            Framing::Length(left) => State::Remaining {
                left,
                chunked: false,
            },
            Framing::Chunked => State::ChunkSize,
            Framing::UntilClose => State::UntilClose,
        };
        Body { state }
    }

    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// The next piece of the body, or `None` at its end. Pieces are taken from the
    /// connection's buffer without copying.
    pub async fn next(&mut self, conn: &mut Connection) -> Result<Option<Bytes>, BodyError> {
        loop {
            match &mut self.state {
                State::Done => return Ok(None),
                State::Remaining { left, chunked } => {
                    if conn.read.is_empty() && !fill(conn).await? {
                        return Err(BodyError::Closed);
                    }
                    let take = conn
                        .read
                        .len()
                        .min(usize::try_from(*left).unwrap_or(usize::MAX));
                    *left -= take as u64;
                    if *left == 0 {
                        self.state = if *chunked {
                            State::ChunkEnd
                        } else {
                            State::Done
                        };
                    }
                    return Ok(Some(conn.read.split_to(take).freeze()));
                }
                State::UntilClose => {
                    if conn.read.is_empty() && !fill(conn).await? {
                        self.state = State::Done;
                        return Ok(None);
                    }
                    return Ok(Some(conn.read.split().freeze()));
                }
                State::ChunkEnd => {
                    while conn.read.len() < 2 {
                        if !fill(conn).await? {
                            return Err(BodyError::Closed);
                        }
                    }
                    if &conn.read[..2] != b"\r\n" {
                        return Err(BodyError::Malformed("chunk data longer than its size"));
                    }
                    conn.read.advance(2);
                    self.state = State::ChunkSize;
                }
                State::ChunkSize => {
                    let line = line(conn, MAX_CHUNK_LINE).await?;
                    let size = chunk_size(&line)?;
                    self.state = match size {
                        0 => State::Trailers { seen: 0 },
                        left => State::Remaining {
                            left,
                            chunked: true,
                        },
                    };
                }
                State::Trailers { seen } => {
                    // Trailer fields are read past, never forwarded.
                    let limit = MAX_TRAILERS.saturating_sub(*seen);
                    let line = line(conn, limit).await?;
                    if line.is_empty() {
                        self.state = State::Done;
                        return Ok(None);
                    }
                    *seen += line.len() + 2;
                }
            }
        }
    }
}

async fn fill(conn: &mut Connection) -> Result<bool, BodyError> {
    conn.fill().await.map_err(BodyError::Io)
}

/// The next CRLF-ended line (without its CRLF), at most `limit` bytes long.
async fn line(conn: &mut Connection, limit: usize) -> Result<Bytes, BodyError> {
    let mut searched = 0;
    loop {
        if let Some(at) = conn.read[searched..].iter().position(|&b| b == b'\n') {
            let end = searched + at;
            if end == 0 || conn.read[end - 1] != b'\r' {
                return Err(BodyError::Malformed("a line not ended by CRLF"));
            }
            if conn.read[..end - 1].contains(&b'\r') {
                return Err(BodyError::Malformed("a bare CR in a chunk line"));
            }
            let line = conn.read.split_to(end + 1).freeze();
            return Ok(line.slice(..end - 1));
        }
        searched = conn.read.len();
        if searched > limit {
            return Err(BodyError::Malformed(
                "a chunk line or the trailers are too long",
            ));
        }
        if !fill(conn).await? {
            return Err(BodyError::Closed);
        }
    }
}

/// The size of a chunk from its line: hex digits, then nothing or `;` extensions.
fn chunk_size(line: &[u8]) -> Result<u64, BodyError> {
    let digits = line
        .iter()
        .position(|&b| b == b';')
        .map_or(line, |at| &line[..at]);
    // Whitespace before the extensions is allowed (RFC 9112 §7.1.1 BWS), nowhere else.
    let digits = digits.trim_ascii_end();
    if digits.is_empty() || digits.len() > 15 {
        return Err(BodyError::Malformed("a chunk size is empty or too large"));
    }
    let mut size = 0u64;
    for &digit in digits {
        let value = (digit as char)
            .to_digit(16)
            .ok_or(BodyError::Malformed("a chunk size is not hexadecimal"))?;
        size = size * 16 + u64::from(value);
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes_are_strict_hexadecimal() {
        assert_eq!(chunk_size(b"1a").unwrap(), 26);
        assert_eq!(chunk_size(b"0").unwrap(), 0);
        assert_eq!(chunk_size(b"A;name=value").unwrap(), 10);
        assert_eq!(chunk_size(b"a ;ext").unwrap(), 10);
        for bad in [
            &b""[..],
            b" a",
            b"-1",
            b"0x10",
            b"+5",
            b"1 2",
            b"g",
            b"ffffffffffffffff",
        ] {
            assert!(
                chunk_size(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
