//! Answers on HTTP/1: the app's answer head read from its connection, and the heads
//! hookgate writes to its clients, its own or relayed from the app.

use std::ops::Range;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::body::{parse_length, Framing};
use super::{head_may_end, Connection};

/// Most header fields, and bytes of head, taken from the app.
const MAX_FIELDS: usize = 128;
const MAX_HEAD: usize = 64 * 1024;

/// Fields that describe one connection, not the answer (RFC 9110 §7.6.1); framing fields
/// are handled apart.
const HOP_BY_HOP: [&[u8]; 6] = [
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"te",
    b"trailer",
    b"upgrade",
];

/// The app's answer head.
pub struct AppAnswer {
    pub status: u16,
    head: Bytes,
    /// The fields passed on to the client: not hop-by-hop, not framing (unless the answer
    /// has no body, whose `Content-Length` describes what a GET would get).
    relayed: Vec<(Range<usize>, Range<usize>)>,
    pub framing: Framing,
    /// The app keeps the connection open for another request after this answer.
    pub reusable: bool,
}

impl AppAnswer {
    /// The fields passed on to the client, as names (lowercase or as the app wrote them)
    /// and values.
    pub fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.relayed
            .iter()
            .map(|(name, value)| (&self.head[name.clone()], &self.head[value.clone()]))
    }
}

#[derive(Debug)]
pub enum AnswerError {
    /// The app closed before a whole answer head.
    Closed,
    Io(std::io::Error),
    Malformed(String),
}

impl AnswerError {
    pub fn describe(&self) -> String {
        match self {
            AnswerError::Closed => "the app closed the connection without answering".into(),
            AnswerError::Io(e) => format!("reading the app's answer failed: {}", e.kind()),
            AnswerError::Malformed(why) => format!("the app's answer is not valid HTTP/1.1: {why}"),
        }
    }
}

/// Reads the app's answer head to a request (a `HEAD` one if `head_request`), past any
/// interim (1xx) answers.
pub async fn read(conn: &mut Connection, head_request: bool) -> Result<AppAnswer, AnswerError> {
    let mut searched: usize = 0;
    loop {
        // As for requests: parsed again only once a blank line may have arrived.
        let from = searched.saturating_sub(3);
        let parsed = match head_may_end(&conn.read[from..]) {
            true => parse(&conn.read, head_request)?,
            false => Parsed::Partial,
        };
        searched = conn.read.len();
        match parsed {
            Parsed::Partial if conn.read.len() > MAX_HEAD => {
                return Err(AnswerError::Malformed("the head is too large".into()))
            }
            Parsed::Partial => match conn.fill().await {
                Ok(true) => {}
                Ok(false) => return Err(AnswerError::Closed),
                Err(e) => return Err(AnswerError::Io(e)),
            },
            Parsed::Interim(len) => {
                conn.read.advance(len);
                searched = 0;
            }
            Parsed::Final(mut answer, len) => {
                answer.head = conn.read.split_to(len).freeze();
                return Ok(answer);
            }
        }
    }
}

enum Parsed {
    Partial,
    Interim(usize),
    /// The answer (its head not taken from the buffer yet) and the head's length.
    Final(AppAnswer, usize),
}

fn parse(read: &[u8], head_request: bool) -> Result<Parsed, AnswerError> {
    if read.is_empty() {
        return Ok(Parsed::Partial);
    }
    let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
    let mut response = httparse::Response::new(&mut fields);
    let len = match response.parse(read) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(e) => return Err(AnswerError::Malformed(e.to_string())),
    };
    let status = response.code.unwrap_or_default();
    if status == 101 {
        return Err(AnswerError::Malformed(
            "an upgrade was not asked for".into(),
        ));
    }
    if (100..200).contains(&status) {
        return Ok(Parsed::Interim(len));
    }
    let base = read.as_ptr() as usize;
    let at = |s: &[u8]| {
        let start = s.as_ptr() as usize - base;
        start..start + s.len()
    };
    let mut length = None;
    let mut chunked = None;
    let mut close = false;
    let mut keep_alive = false;
    // Other fields the app's `Connection` names are hop-by-hop too (RFC 9110 §7.6.1).
    let mut named_by_connection: Vec<&[u8]> = Vec::new();
    for field in response.headers.iter() {
        let name = field.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            // Repeated with the same value is tolerated from the app (RFC 9110 §8.6).
            match parse_length(field.value.trim_ascii()) {
                Some(len) if length.is_none_or(|earlier| earlier == len) => length = Some(len),
                _ => return Err(AnswerError::Malformed("an invalid Content-Length".into())),
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // The last coding decides; anything but chunked runs until the close.
            let last = field
                .value
                .rsplit(|&b| b == b',')
                .next()
                .unwrap_or_default();
            chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case(b"connection") {
            for option in field.value.split(|&b| b == b',') {
                let option = option.trim_ascii();
                if option.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if option.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive = true;
                } else {
                    named_by_connection.push(option);
                }
            }
        }
    }
    let no_body = head_request || status == 204 || status == 304;
    let framing = match (chunked, length) {
        _ if no_body => Framing::Empty,
        (Some(true), _) => Framing::Chunked,
        (Some(false), _) => Framing::UntilClose,
        (None, Some(len)) => Framing::Length(len),
        (None, None) => Framing::UntilClose,
    };
    let http10 = response.version == Some(0);
    let reusable = !close
        && (!http10 || keep_alive)
        && framing != Framing::UntilClose
        // Both framings at once: what follows the answer cannot be trusted.
        && !(chunked.is_some() && length.is_some());
    let relayed = response
        .headers
        .iter()
        .filter(|f| {
            let name = f.name.as_bytes();
            let framing_field = name.eq_ignore_ascii_case(b"transfer-encoding")
                || (name.eq_ignore_ascii_case(b"content-length") && !no_body);
            !framing_field
                && !HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
                && !named_by_connection
                    .iter()
                    .any(|o| name.eq_ignore_ascii_case(o))
        })
        .map(|f| (at(f.name.as_bytes()), at(f.value)))
        .collect();
    Ok(Parsed::Final(
        AppAnswer {
            status,
            head: Bytes::new(),
            relayed,
            framing,
            reusable,
        },
        len,
    ))
}

/// How the body of an answer written to a client is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body, and no framing field added (a relayed `HEAD`, 204 or 304 answer).
    None,
    Length(usize),
    Chunked,
    /// Until hookgate closes the connection (an HTTP/1.0 client, a body of unknown length).
    UntilClose,
}

/// An answer head for a client, written field by field.
pub struct Head {
    bytes: BytesMut,
}

impl Head {
    pub fn new(status: u16, capacity: usize) -> Self {
        let mut bytes = BytesMut::with_capacity(256 + capacity);
        let reason = http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        bytes.put_slice(b"HTTP/1.1 ");
        // Statuses are three digits (httparse checks the app's, hookgate's own are).
        let digits = [status / 100 % 10, status / 10 % 10, status % 10].map(|d| b'0' + d as u8);
        bytes.put_slice(&digits);
        bytes.put_u8(b' ');
        bytes.put_slice(reason.as_bytes());
        bytes.put_slice(b"\r\n");
        Head { bytes }
    }

    pub fn field(&mut self, name: &[u8], value: &[u8]) {
        for part in [name, b": ", value, b"\r\n"] {
            self.bytes.put_slice(part);
        }
    }

    /// Ends the head with its framing and connection fields; the body is written after it.
    pub fn end(mut self, framing: BodyFraming, keep_alive: bool, http10_client: bool) -> BytesMut {
        match framing {
            BodyFraming::None | BodyFraming::UntilClose => {}
            BodyFraming::Length(len) => self.field(b"Content-Length", len.to_string().as_bytes()),
            BodyFraming::Chunked => self.field(b"Transfer-Encoding", b"chunked"),
        }
        if !keep_alive || framing == BodyFraming::UntilClose {
            self.field(b"Connection", b"close");
        } else if http10_client {
            self.field(b"Connection", b"keep-alive");
        }
        self.bytes.put_slice(b"\r\n");
        self.bytes
    }
}

/// A whole answer of hookgate's own, head (with `Date`) and body, as the bytes to write.
pub fn whole(
    status: u16,
    fields: &[(&str, &str)],
    body: &[u8],
    keep_alive: bool,
    http10_client: bool,
) -> BytesMut {
    let mut head = Head::new(status, body.len());
    head.field(
        b"Date",
        pingora::protocols::http::date::get_cached_date().as_bytes(),
    );
    for (name, value) in fields {
        head.field(name.as_bytes(), value.as_bytes());
    }
    let framing = if matches!(status, 204 | 304) {
        BodyFraming::None
    } else {
        BodyFraming::Length(body.len())
    };
    let mut wire = head.end(framing, keep_alive, http10_client);
    wire.extend_from_slice(body);
    wire
}

/// Appends `data` as one chunk of a chunked body (nothing for no data: that would end it).
pub fn put_chunk(out: &mut BytesMut, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    out.put_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

/// The end of a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(wire: &[u8], head_request: bool) -> Result<AppAnswer, AnswerError> {
        match parse(wire, head_request)? {
            Parsed::Final(mut answer, len) => {
                answer.head = Bytes::copy_from_slice(&wire[..len]);
                Ok(answer)
            }
            _ => panic!("not a final answer"),
        }
    }

    fn names(answer: &AppAnswer) -> Vec<String> {
        answer
            .fields()
            .map(|(n, _)| String::from_utf8_lossy(n).to_ascii_lowercase())
            .collect()
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let cases: [(&[u8], bool, Framing, bool); 8] = [
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n",
                false,
                Framing::Length(2),
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                false,
                Framing::Chunked,
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                false,
                Framing::UntilClose,
                false,
            ),
            (
                b"HTTP/1.1 200 OK\r\n\r\n",
                false,
                Framing::UntilClose,
                false,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
                true,
                Framing::Empty,
                true,
            ),
            (
                b"HTTP/1.1 204 No Content\r\n\r\n",
                false,
                Framing::Empty,
                true,
            ),
            (
                b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n",
                false,
                Framing::Length(2),
                false,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n",
                false,
                Framing::Length(2),
                false,
            ),
        ];
        for (wire, head_request, framing, reusable) in cases {
            let parsed = answer(wire, head_request).unwrap();
            let text = String::from_utf8_lossy(wire);
            assert_eq!(parsed.framing, framing, "{text}");
            assert_eq!(parsed.reusable, reusable, "{text}");
        }
    }

    #[test]
    fn conflicting_lengths_are_refused() {
        for wire in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\n",
        ] {
            assert!(
                answer(wire, false).is_err(),
                "{}",
                String::from_utf8_lossy(wire)
            );
        }
        let both = answer(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!(both.framing, Framing::Chunked);
        assert!(!both.reusable);
    }

    #[test]
    fn hop_by_hop_and_framing_fields_are_not_relayed() {
        let parsed = answer(
            b"HTTP/1.1 200 OK\r\nX-A: 1\r\nConnection: keep-alive, X-Private\r\nX-Private: 2\r\nKeep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\nUpgrade: h2c\r\nDate: x\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!(names(&parsed), ["x-a", "date"]);
        // A HEAD answer's length describes the GET's body, and is passed on.
        let parsed = answer(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true).unwrap();
        assert_eq!(names(&parsed), ["content-length"]);
    }

    #[test]
    fn interim_answers_are_skipped() {
        assert!(matches!(
            parse(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n", false),
            Ok(Parsed::Interim(25))
        ));
        assert!(parse(b"HTTP/1.1 101 Switching Protocols\r\n\r\n", false).is_err());
    }
}
