//! PEM files as the TLS settings give them: certificate chains and private keys, and the
//! checks that find, when the config is loaded, what rustls would refuse only at the first
//! handshake.

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

/// A chain (and with `key`, its private key) that rustls can use at `now` (unix seconds):
/// every certificate X.509 v3 and within its validity, and the key the leaf's.
pub fn check_chain(cert: &Path, key: Option<&Path>, now: i64) -> Result<(), String> {
    use x509_parser::prelude::{FromDer, X509Certificate, X509Version};
    let chain = pem_blocks(cert, "CERTIFICATE")?;
    for (i, der) in chain.iter().enumerate() {
        let which = format!(
            "{}: certificate {} of {}",
            cert.display(),
            i + 1,
            chain.len()
        );
        let (_, parsed) =
            X509Certificate::from_der(der).map_err(|_| format!("{which} does not parse"))?;
        if parsed.version() != X509Version::V3 {
            return Err(format!(
                "{which} is X.509 v{}: rustls accepts v3 only (re-issue it with extensions, e.g. openssl x509 -req ... -extfile)",
                parsed.version().0 + 1
            ));
        }
        let validity = parsed.validity();
        if validity.not_after.timestamp() < now {
            return Err(format!("{which} expired on {}", validity.not_after));
        }
        if validity.not_before.timestamp() > now {
            return Err(format!(
                "{which} is not valid before {}",
                validity.not_before
            ));
        }
    }
    let Some(key) = key else {
        return Ok(());
    };
    let der = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&der)
        .map_err(|e| format!("{}: not a key rustls can use: {e}", key.display()))?;
    let chain = chain.into_iter().map(CertificateDer::from).collect();
    match rustls::sign::CertifiedKey::new(chain, signing).keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(()),
        Err(_) => Err(format!(
            "{} is not the key of {}'s certificate",
            key.display(),
            cert.display()
        )),
    }
}
