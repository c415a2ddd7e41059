//! An endpoint's `tls:` at delivery time: the CA certificates it trusts and the client
//! certificate it presents (mTLS), read from PEM files and read again when a file changes
//! (a renewed certificate is used from the next connection, without a restart), and the
//! lowest TLS version it accepts, checked on each new connection before anything is sent.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use pingora::protocols::tls::CaType;
use pingora::upstreams::peer::HttpPeer;
use pingora::utils::tls::{parse_x509, CertKey, WrappedX509};

use crate::config::{EgressTls, TlsVersion};
use crate::pem::pem_blocks;

pub struct ClientTls {
    config: EgressTls,
    loaded: Mutex<Option<Loaded>>,
}

/// What the files held when last read, and when each was last changed.
#[derive(Clone)]
struct Loaded {
    stamps: Vec<Option<SystemTime>>,
    ca: Option<Arc<CaType>>,
    client: Option<Arc<CertKey>>,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl ClientTls {
    pub fn new(config: EgressTls) -> Self {
        ClientTls {
            config,
            loaded: Mutex::default(),
        }
    }

    fn files(&self) -> Vec<&PathBuf> {
        let mut files: Vec<&PathBuf> = self.config.ca.iter().collect();
        if let Some((cert, key)) = &self.config.client {
            files.extend([cert, key]);
        }
        files
    }

    /// The CA certificates and client certificate, as the files hold them now.
    fn load(&self) -> Result<Loaded, String> {
        let stamps: Vec<Option<SystemTime>> = self.files().iter().map(|p| modified(p)).collect();
        let mut cached = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(loaded) = cached.as_ref().filter(|l| l.stamps == stamps) {
            return Ok(loaded.clone());
        }
        let ca = match &self.config.ca {
            None => None,
            Some(path) => {
                let certs: Vec<WrappedX509> = pem_blocks(path, "CERTIFICATE")?
                    .into_iter()
                    .map(|der| {
                        check_certificate(&der, path)?;
                        Ok(WrappedX509::new(der, parse_x509))
                    })
                    .collect::<Result<_, String>>()?;
                Some(Arc::<CaType>::from(certs))
            }
        };
        let client = match &self.config.client {
            None => None,
            Some((cert, key)) => {
                let chain = pem_blocks(cert, "CERTIFICATE")?;
                for der in &chain {
                    check_certificate(der, cert)?;
                }
                let key = pem_blocks(key, "PRIVATE KEY")?.remove(0);
                Some(Arc::new(CertKey::new(chain, key)))
            }
        };
        let loaded = Loaded { stamps, ca, client };
        *cached = Some(loaded.clone());
        Ok(loaded)
    }

    /// Sets the receiver's CAs and the client certificate on `peer`.
    pub fn apply(&self, peer: &mut HttpPeer) -> Result<(), String> {
        let loaded = self.load()?;
        peer.options.ca = loaded.ca;
        peer.client_cert_key = loaded.client;
        Ok(())
    }

    /// Whether a connection's TLS version (as rustls names it: `TLSv1_3`) is allowed.
    pub fn check_version(&self, negotiated: &str) -> Result<(), String> {
        let version = match negotiated {
            "TLSv1_3" => TlsVersion::V1_3,
            "TLSv1_2" => TlsVersion::V1_2,
            other => return Err(format!("TLS version {other:?} is not accepted")),
        };
        if version < self.config.min_version {
            let wanted = match self.config.min_version {
                TlsVersion::V1_2 => "1.2",
                TlsVersion::V1_3 => "1.3",
            };
            return Err(format!(
                "the receiver negotiated {negotiated}; this endpoint requires TLS {wanted} or later"
            ));
        }
        Ok(())
    }
}

/// Checks a DER block is a certificate (Pingora's parser panics on anything else).
fn check_certificate(der: &[u8], path: &Path) -> Result<(), String> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    X509Certificate::from_der(der)
        .map(|_| ())
        .map_err(|_| format!("{}: a CERTIFICATE block does not parse", path.display()))
}
