// Shared by the header-parser targets: split the input into header values and a body,
// and run a scheme's verify on them. Any panic is a bug; errors are expected.
use hookgate::schemes::{Request, SchemeSpec, Verifier};
use http::{HeaderMap, HeaderName, HeaderValue};

pub fn verify(scheme: &str, secret: &str, header_names: &[&'static str], data: &[u8]) {
    let verifier = Verifier::new(&SchemeSpec::Named(scheme.into()), &[secret], None).unwrap();
    // Input layout: header values separated by 0x00, then the body after the last 0x00.
    let mut pieces = data.split(|b| *b == 0);
    let mut headers = HeaderMap::new();
    for name in header_names {
        if let Some(value) = pieces.next() {
            if let Ok(value) = HeaderValue::from_bytes(value) {
                headers.append(HeaderName::from_static(name), value);
            }
        }
    }
    let body = pieces.next().unwrap_or_default();
    let url = std::str::from_utf8(pieces.next().unwrap_or_default()).ok();
    let _ = verifier.verify(
        &Request {
            method: "POST",
            url,
            headers: &headers,
            body,
        },
        1_700_000_000,
    );
}
