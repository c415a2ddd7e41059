//! The client side of one inbound request, whichever protocol carries it: hookgate's own
//! HTTP/1 ([`super::http1`]) or an h2 stream of Pingora's. The stages read the request and
//! answer through this, and never see which.

use std::net::IpAddr;

use bytes::{Bytes, BytesMut};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::ServerSession;

use super::http1::answer::{self, AppAnswer, BodyFraming, Head};
use super::http1::body::{Body, Framing};
use super::http1::request::Request;
use super::http1::Connection;
use crate::http_io::BodySource;

// The HTTP/1 variant is the common one and is not boxed: a box would be an allocation per
// request, while a client is held once, by its request's future.
#[allow(clippy::large_enum_variant)]
pub enum Client<'c> {
    Http1(Http1Exchange<'c>),
    Http2(Box<ServerSession>, Source),
}

/// Where a connection comes from, its address formatted once for `X-Forwarded-For`.
pub struct Source {
    pub ip: Option<IpAddr>,
    text: Option<String>,
}

impl Source {
    pub fn of(addr: Option<&pingora::protocols::l4::socket::SocketAddr>) -> Self {
        let ip = addr.and_then(|a| a.as_inet()).map(|a| a.ip());
        Source {
            ip,
            text: ip.map(|ip| ip.to_string()),
        }
    }

    /// The source of an inbound connection.
    pub fn of_stream(stream: &pingora::protocols::Stream) -> Self {
        let digest = stream.get_socket_digest();
        Source::of(digest.as_ref().and_then(|d| d.peer_addr()))
    }
}

/// One request and its answer on an HTTP/1 connection.
pub struct Http1Exchange<'c> {
    conn: &'c mut Connection,
    source: &'c Source,
    request: Request,
    body: Body,
    /// The connection may carry the next request after this answer.
    keep_alive: bool,
    /// The answer being relayed is chunked.
    chunked_answer: bool,
}

/// The client went away (or broke the protocol) while hookgate was answering it.
#[derive(Debug)]
pub struct Gone;

impl<'c> Client<'c> {
    pub fn http1(conn: &'c mut Connection, source: &'c Source, request: Request) -> Self {
        Client::Http1(Http1Exchange {
            conn,
            source,
            body: Body::new(request.framing),
            keep_alive: request.keep_alive,
            request,
            chunked_answer: false,
        })
    }

    pub fn req_header(&self) -> &RequestHeader {
        match self {
            Client::Http1(h1) => &h1.request.header,
            Client::Http2(session, _) => session.req_header(),
        }
    }

    pub fn http2(session: ServerSession) -> Self {
        let source = Source::of(session.client_addr());
        Client::Http2(Box::new(session), source)
    }

    fn source(&self) -> &Source {
        match self {
            Client::Http1(h1) => h1.source,
            Client::Http2(_, source) => source,
        }
    }

    pub fn client_ip(&self) -> Option<IpAddr> {
        self.source().ip
    }

    /// The client's address as text.
    pub fn client_ip_text(&self) -> Option<&str> {
        self.source().text.as_deref()
    }

    pub fn is_tls(&self) -> bool {
        match self {
            Client::Http1(h1) => h1.conn.stream().get_ssl_digest().is_some(),
            Client::Http2(session, _) => session
                .digest()
                .and_then(|d| d.ssl_digest.as_ref())
                .is_some(),
        }
    }

    pub fn is_http2(&self) -> bool {
        matches!(self, Client::Http2(..))
    }

    /// Whether the connection may carry another request after this one's answer.
    pub fn set_keepalive(&mut self, keepalive: Option<u64>) {
        match self {
            Client::Http1(h1) => h1.keep_alive &= keepalive.is_some(),
            Client::Http2(session, _) => session.set_keepalive(keepalive),
        }
    }

    /// Answers with a whole response of hookgate's own; the connection is closed after it
    /// unless `keepalive`.
    pub async fn respond(
        &mut self,
        status: u16,
        fields: &[(&str, &str)],
        body: &[u8],
        keepalive: bool,
    ) -> Result<(), Gone> {
        if !keepalive || crate::drain::is_stopping() {
            self.set_keepalive(None);
        }
        let no_body = matches!(status, 204 | 304);
        match self {
            Client::Http1(h1) => {
                let wire = answer::whole(status, fields, body, h1.keep_alive, h1.http10());
                h1.conn.write(&wire).await.map_err(|_| Gone)
            }
            Client::Http2(session, _) => {
                let mut header =
                    ResponseHeader::build(status, Some(fields.len() + 1)).map_err(|_| Gone)?;
                for (name, value) in fields {
                    header
                        .insert_header(name.to_string(), *value)
                        .map_err(|_| Gone)?;
                }
                if !no_body {
                    header
                        .insert_header("Content-Length", body.len().to_string())
                        .map_err(|_| Gone)?;
                }
                session
                    .write_response_header(Box::new(header))
                    .await
                    .map_err(|_| Gone)?;
                session
                    .write_response_body(Bytes::copy_from_slice(body), true)
                    .await
                    .map_err(|_| Gone)
            }
        }
    }

    /// Starts relaying the app's `answer`: its head with `extra` fields, and `start` of its
    /// body, which is the whole body if `finished`.
    pub async fn relay_head(
        &mut self,
        answer: &AppAnswer,
        extra: &[(&'static str, String)],
        start: Bytes,
        finished: bool,
    ) -> Result<(), Gone> {
        match self {
            Client::Http1(h1) => {
                let mut head = Head::new(answer.status, start.len());
                for (name, value) in answer.fields() {
                    head.field(name, value);
                }
                for (name, value) in extra {
                    head.field(name.as_bytes(), value.as_bytes());
                }
                let framing = match answer.framing {
                    Framing::Empty => BodyFraming::None,
                    _ if finished => BodyFraming::Length(start.len()),
                    _ if h1.http10() => BodyFraming::UntilClose,
                    _ => BodyFraming::Chunked,
                };
                // Stopping: the client takes its next request elsewhere.
                if framing == BodyFraming::UntilClose || crate::drain::is_stopping() {
                    h1.keep_alive = false;
                }
                h1.chunked_answer = framing == BodyFraming::Chunked;
                let mut wire = head.end(framing, h1.keep_alive, h1.http10());
                if h1.chunked_answer {
                    answer::put_chunk(&mut wire, &start);
                } else {
                    wire.extend_from_slice(&start);
                }
                h1.conn.write(&wire).await.map_err(|_| Gone)
            }
            Client::Http2(session, _) => {
                let mut header = ResponseHeader::build(answer.status, None).map_err(|_| Gone)?;
                for (name, value) in answer.fields() {
                    let name = http::HeaderName::from_bytes(name).map_err(|_| Gone)?;
                    let value = http::HeaderValue::from_bytes(value).map_err(|_| Gone)?;
                    header.append_header(name, value).map_err(|_| Gone)?;
                }
                for (name, value) in extra {
                    header
                        .insert_header(*name, value.as_str())
                        .map_err(|_| Gone)?;
                }
                session
                    .write_response_header(Box::new(header))
                    .await
                    .map_err(|_| Gone)?;
                if start.is_empty() {
                    return Ok(());
                }
                session
                    .write_response_body(start, false)
                    .await
                    .map_err(|_| Gone)
            }
        }
    }

    /// Relays the next piece of the app's answer body.
    pub async fn relay_body(&mut self, piece: Bytes) -> Result<(), Gone> {
        match self {
            Client::Http1(h1) if h1.chunked_answer => {
                let mut wire = BytesMut::with_capacity(piece.len() + 16);
                answer::put_chunk(&mut wire, &piece);
                h1.conn.write(&wire).await.map_err(|_| Gone)
            }
            Client::Http1(h1) => h1.conn.write(&piece).await.map_err(|_| Gone),
            Client::Http2(session, _) => session
                .write_response_body(piece, false)
                .await
                .map_err(|_| Gone),
        }
    }

    /// Ends the relayed answer.
    pub async fn relay_end(&mut self) -> Result<(), Gone> {
        match self {
            Client::Http1(h1) if h1.chunked_answer => {
                h1.conn.write(answer::LAST_CHUNK).await.map_err(|_| Gone)
            }
            Client::Http1(_) => Ok(()),
            Client::Http2(session, _) => session.finish_body().await.map_err(|_| Gone),
        }
    }

    /// After the answer: whether the connection carries the next request (HTTP/1), or the
    /// h2 stream's end.
    pub async fn finish(self) -> bool {
        match self {
            Client::Http1(h1) => h1.keep_alive && h1.body.is_done(),
            Client::Http2(session, _) => {
                let _ = session.finish().await;
                false
            }
        }
    }
}

impl BodySource for Client<'_> {
    fn declared_length(&self) -> Option<u64> {
        match self {
            Client::Http1(h1) => match h1.request.framing {
                Framing::Length(len) => Some(len),
                _ => None,
            },
            Client::Http2(session, _) => session.declared_length(),
        }
    }

    fn expects_continue(&self) -> bool {
        match self {
            Client::Http1(h1) => h1.request.expects_continue && !h1.body.is_done(),
            Client::Http2(session, _) => session.expects_continue(),
        }
    }

    async fn send_continue(&mut self) -> Result<(), ()> {
        match self {
            Client::Http1(h1) => h1
                .conn
                .write(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .map_err(|_| ()),
            Client::Http2(session, _) => session.send_continue().await,
        }
    }

    /// On HTTP/1 a body that arrived whole is one piece, not a copy.
    async fn next_body_piece(&mut self) -> Result<Option<Bytes>, String> {
        match self {
            Client::Http1(h1) => h1.body.next(h1.conn).await.map_err(|e| e.describe()),
            Client::Http2(session, _) => session.next_body_piece().await,
        }
    }
}

impl Http1Exchange<'_> {
    fn http10(&self) -> bool {
        self.request.header.version == http::Version::HTTP_10
    }
}
