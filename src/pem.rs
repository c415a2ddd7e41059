//! PEM files as the TLS settings give them: certificate chains and private keys.

use std::path::Path;

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The DER blocks of one kind (`CERTIFICATE`, or any `PRIVATE KEY`: PKCS#8, PKCS#1 or
/// SEC1) in a PEM file, read by rustls-pki-types' PEM reader.
pub fn pem_blocks(path: &Path, kind: &str) -> Result<Vec<Vec<u8>>, String> {
    let unreadable = |e: pem::Error| format!("{}: {e}", path.display());
    let blocks: Vec<Vec<u8>> = if kind == "CERTIFICATE" {
        CertificateDer::pem_file_iter(path)
            .map_err(unreadable)?
            .map(|c| c.map(|c| c.to_vec()).map_err(unreadable))
            .collect::<Result<_, _>>()?
    } else {
        match PrivateKeyDer::from_pem_file(path) {
            Ok(key) => vec![key.secret_der().to_vec()],
            Err(pem::Error::NoItemsFound) => Vec::new(),
            Err(e) => return Err(unreadable(e)),
        }
    };
    if blocks.is_empty() {
        return Err(format!("{} holds no {kind} block", path.display()));
    }
    Ok(blocks)
}
