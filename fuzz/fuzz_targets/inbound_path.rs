#![no_main]
// The path check's promise: a path it accepts means the same thing to any normaliser the
// app may run (RFC 3986 dot-segment removal, percent-decoding, `\` as `/`, `;` parameters
// stripped, `//` merged). Here one of each is applied to the raw path, and the resulting
// segments must be the raw path's own segments, each percent-decoded.
use hookgate::inbound::path;

fn decode(segment: &str) -> Vec<u8> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}

/// What a lenient app makes of a path: decode, then split on `/` and `\`, drop `;` params
/// and empty segments, resolve `.` and `..`.
fn normalised(path: &str) -> Vec<Vec<u8>> {
    let decoded = decode(path);
    let mut segments: Vec<Vec<u8>> = Vec::new();
    for segment in decoded.split(|b| *b == b'/' || *b == b'\\') {
        let segment = segment.split(|b| *b == b';').next().unwrap_or_default();
        match segment {
            b"" | b"." => {}
            b".." => {
                segments.pop();
            }
            s => segments.push(s.to_vec()),
        }
    }
    segments
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else { return };
    if path::check(raw).is_err() {
        return;
    }
    let own: Vec<Vec<u8>> = raw
        .split('/')
        .filter(|s| !s.is_empty())
        .map(decode)
        .collect();
    assert_eq!(normalised(raw), own, "{raw:?} means something else once normalised");
});
