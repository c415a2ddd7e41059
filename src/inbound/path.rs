//! Stage 0 of the inbound path: refuse request paths that the app (or a proxy in front of
//! it) could read differently from hookgate's router.
//!
//! Routing matches the path and forwarding passes the same bytes on, so the two can only
//! disagree when the app *normalises* the path afterwards: resolves `..`, decodes `%2e` or
//! `%2f`, treats `\` as `/`, strips `;params`, merges `//`. `POST /public/../hooks/x` would
//! route to an unsigned `/public/*` route and reach the app's `/hooks/x` handler. Instead
//! of guessing each app's normaliser, hookgate accepts only paths that every normaliser
//! leaves alone, and answers `400 ambiguous_path` to the rest. Real providers never send
//! such paths.

use crate::error_response::ErrorResponse;

/// Why a path was refused; the message goes to the client and the log.
pub fn check(path: &str) -> Result<(), ErrorResponse> {
    problem(path.as_bytes()).map_or(Ok(()), |why| {
        Err(ErrorResponse::new(
            400,
            "ambiguous_path",
            format!("the request path is ambiguous: {why}"),
        ))
    })
}

fn problem(path: &[u8]) -> Option<&'static str> {
    if path.first() != Some(&b'/') {
        return Some("it does not start with /");
    }
    let mut i = 0;
    while i < path.len() {
        match path[i] {
            b'\\' => return Some("it contains a backslash"),
            b';' => return Some("it contains a ; parameter"),
            b'/' if path.get(i + 1) == Some(&b'/') => {
                return Some("it contains an empty segment (//)")
            }
            b'%' => {
                let decoded = path
                    .get(i + 1..i + 3)
                    .and_then(|hex| std::str::from_utf8(hex).ok())
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok());
                match decoded {
                    None => return Some("it has a % not followed by two hex digits"),
                    Some(b'/' | b'\\') => return Some("it contains an encoded slash"),
                    Some(b'%') => return Some("it contains an encoded % (double encoding)"),
                    Some(b';') => return Some("it contains an encoded ;"),
                    Some(byte) if byte < 0x20 || byte == 0x7f => {
                        return Some("it contains an encoded control character")
                    }
                    // `%2e`, `%41`: the app decodes them to a different path than the one routed.
                    Some(byte) if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) => {
                        return Some("it percent-encodes a character that needs no encoding")
                    }
                    Some(_) => i += 2,
                }
            }
            byte if byte < 0x20 || byte == 0x7f => return Some("it contains a control character"),
            _ => {}
        }
        i += 1;
    }
    if path
        .split(|&b| b == b'/')
        .any(|segment| segment == b"." || segment == b"..")
    {
        return Some("it contains a . or .. segment");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_paths_pass() {
        for path in [
            "/",
            "/hooks/rejento",
            "/hooks/rejento/",
            "/hooks/a.b/c..d/.e/f.",
            "/hooks/%20space/%C3%A9t%C3%A9/%3A",
            "/hooks/~user/a-b_c",
        ] {
            assert!(check(path).is_ok(), "{path} should pass");
        }
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        for path in [
            "",
            "hooks",
            "/public/../hooks/rejento",
            "/public/./../hooks",
            "/public/..",
            "/public/.",
            "/public/%2e%2e/hooks",
            "/public/%2E%2e/hooks",
            "/public/..%2fhooks",
            "/public/..%2Fhooks",
            "/public%5c..%5chooks",
            "/public\\..\\hooks",
            "/public/x;/../hooks",
            "/hooks/rejento;jsessionid=1",
            "/hooks/rej%65nto",
            "/hooks/%252e%252e/x",
            "/hooks//rejento",
            "//hooks/rejento",
            "/hooks/%00",
            "/hooks/\0",
            "/hooks/%zz",
            "/hooks/%2",
            "/hooks/%",
        ] {
            let refused = check(path).unwrap_err();
            assert_eq!(
                (refused.status, refused.code),
                (400, "ambiguous_path"),
                "{path:?}"
            );
        }
    }
}
