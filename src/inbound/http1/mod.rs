//! HTTP/1.1 on the inbound side, as hookgate's own code: the client's requests and the app's
//! answers are parsed with `httparse` from one buffer per connection, and answers are
//! written as bytes in one write.
//!
//! Pingora's HTTP/1 sessions build every head into header maps twice (value and case),
//! allocate a body buffer per message and write a head and its body separately: for a
//! forwarded webhook, half of hookgate's instructions. h2 streams still go through Pingora.
//!
//! [`request`] reads a client's request head (limits, framing, smuggling checks), [`body`]
//! decodes a message body (length, chunked, until close), [`answer`] reads the app's
//! answer head and writes answers to the client.

pub mod answer;
pub mod body;
pub mod request;

use bytes::BytesMut;
use pingora::protocols::Stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How much more is asked of the socket per read.
const READ_SIZE: usize = 16 * 1024;

/// One connection and what was read from it but not yet consumed: the rest of a head, a
/// body, or a pipelined request.
pub struct Connection {
    stream: Stream,
    read: BytesMut,
}

impl Connection {
    pub fn new(stream: Stream) -> Self {
        Connection {
            stream,
            read: BytesMut::new(),
        }
    }

    pub fn stream(&self) -> &Stream {
        &self.stream
    }

    /// Nothing was read that is not consumed yet.
    pub fn is_drained(&self) -> bool {
        self.read.is_empty()
    }

    /// Reads what the peer sent next into the buffer; `false` once the peer closed.
    pub async fn fill(&mut self) -> std::io::Result<bool> {
        if self.read.capacity() - self.read.len() < READ_SIZE / 4 {
            self.read.reserve(READ_SIZE);
        }
        Ok(self.stream.read_buf(&mut self.read).await? > 0)
    }

    /// Writes `bytes` whole and flushes them.
    pub async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// The connection without its buffer, when nothing is left in it.
    pub fn into_idle_stream(self) -> Option<Stream> {
        self.is_drained().then_some(self.stream)
    }
}

/// Whether `bytes` hold the blank line that ends a head (CRLF CRLF, or bare LFs).
pub fn head_may_end(bytes: &[u8]) -> bool {
    let mut rest = bytes;
    while let Some(at) = rest.iter().position(|&b| b == b'\n') {
        rest = &rest[at + 1..];
        if rest.starts_with(b"\n") || rest.starts_with(b"\r\n") {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_ends_only_at_a_blank_line() {
        assert!(head_may_end(b"POST / HTTP/1.1\r\nA: b\r\n\r\n"));
        assert!(head_may_end(b"GET / HTTP/1.1\n\n"));
        assert!(!head_may_end(b"POST / HTTP/1.1\r\nA: b\r\n"));
        assert!(!head_may_end(b"POST / HTTP/1.1\r\nA: b\r\n\r"));
    }
}
