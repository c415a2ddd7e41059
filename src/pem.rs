//! PEM files as the TLS settings give them: certificate chains and private keys.

use std::path::Path;

use crate::schemes::crypto::base64_decode_lenient;

/// The DER blocks of one kind (`CERTIFICATE`, or any `PRIVATE KEY`) in a PEM file.
pub fn pem_blocks(path: &Path, kind: &str) -> Result<Vec<Vec<u8>>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut blocks = Vec::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + 11..];
        let label_end = after.find("-----").ok_or("a PEM header is not closed")?;
        let label = &after[..label_end];
        let end_marker = format!("-----END {label}-----");
        let body_start = label_end + 5;
        let body_end = after[body_start..]
            .find(&end_marker)
            .ok_or_else(|| format!("{}: a PEM block is not closed", path.display()))?;
        if label.ends_with(kind) {
            let base64: String = after[body_start..body_start + body_end]
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            let der = base64_decode_lenient(&base64)
                .map_err(|_| format!("{}: a PEM block is not base64", path.display()))?;
            blocks.push(der);
        }
        rest = &after[body_start + body_end + end_marker.len()..];
    }
    if blocks.is_empty() {
        return Err(format!("{} holds no {kind} block", path.display()));
    }
    Ok(blocks)
}
