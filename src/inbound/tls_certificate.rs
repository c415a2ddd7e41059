//! The inbound listener's certificate, read again when its files change: a renewed
//! certificate (cert-manager, a Vault agent) is served from the next handshake, without
//! a restart. The files are looked at no more than once a second.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use pingora::tls::sign::CertifiedKey;
use pingora::tls::{
    CertificateDer, ClientHello, CryptoProvider, PrivateKeyDer, ResolvesServerCert,
};

use crate::pem::pem_blocks;

const CHECK_EVERY: Duration = Duration::from_secs(1);

pub struct ReloadingCertificate {
    cert: PathBuf,
    key: PathBuf,
    current: Mutex<Current>,
}

struct Current {
    stamps: [Option<SystemTime>; 2],
    checked: Instant,
    key: Arc<CertifiedKey>,
}

impl fmt::Debug for ReloadingCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReloadingCertificate({})", self.cert.display())
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The chain and key in the files, ready to serve.
fn load(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, String> {
    let chain: Vec<CertificateDer<'static>> = pem_blocks(cert, "CERTIFICATE")?
        .into_iter()
        .map(CertificateDer::from)
        .collect();
    let der = pem_blocks(key, "PRIVATE KEY")?.remove(0);
    let der = PrivateKeyDer::try_from(der)
        .map_err(|_| format!("{}: not a private key", key.display()))?;
    pingora::tls::install_default_crypto_provider();
    let provider = CryptoProvider::get_default().ok_or("no TLS crypto provider")?;
    // Checks the key is the certificate's: a renewal caught between its two writes fails
    // here, and the previous pair is served until the next check.
    CertifiedKey::from_der(chain, der, provider)
        .map(Arc::new)
        .map_err(|e| format!("{}: {e}", key.display()))
}

impl ReloadingCertificate {
    /// Reads the files now: a listener never starts without a certificate.
    pub fn new(cert: &Path, key: &Path) -> Result<Self, String> {
        let stamps = [modified(cert), modified(key)];
        Ok(ReloadingCertificate {
            current: Mutex::new(Current {
                key: load(cert, key)?,
                stamps,
                checked: Instant::now(),
            }),
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
        })
    }
}

impl ResolvesServerCert for ReloadingCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if current.checked.elapsed() >= CHECK_EVERY {
            current.checked = Instant::now();
            let stamps = [modified(&self.cert), modified(&self.key)];
            if stamps != current.stamps {
                // A half-written pair fails to load: the next check tries again.
                match load(&self.cert, &self.key) {
                    Ok(key) => {
                        current.key = key;
                        current.stamps = stamps;
                        tracing::info!(cert = %self.cert.display(), "inbound TLS certificate read again");
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "inbound TLS certificate changed but cannot be read; serving the previous one")
                    }
                }
            }
        }
        Some(current.key.clone())
    }
}
