//! `outbound.proxy`: every delivery leaves through one HTTP CONNECT proxy (so receivers see
//! one static IP), except destinations that `no_proxy` names.
//!
//! Pingora's connector speaks CONNECT only to a proxy on a Unix socket. hookgate binds one
//! of its own and relays each connection made to it, byte for byte, to the configured
//! proxy over TCP: Pingora writes the `CONNECT host:port` (with `Proxy-Authorization`),
//! the proxy answers, then TLS and HTTP run through the tunnel as they would directly.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pingora::upstreams::peer::{HttpPeer, Proxy};

use crate::config::{Cidr, Destination, ProxyConfig};
use crate::logging::Throttle;
use crate::schemes::crypto::base64_encode;

/// How deliveries reach the proxy.
pub struct ProxyRoute {
    relay: Relay,
    headers: BTreeMap<String, Vec<u8>>,
    no_proxy: Vec<Bypass>,
}

/// A `no_proxy` entry.
enum Bypass {
    Everything,
    /// A host and its subdomains (`example.com`, `.example.com`).
    Domain(String),
    Network(Cidr),
}

impl Bypass {
    fn parse(pattern: &str) -> Self {
        let pattern = pattern.trim().to_ascii_lowercase();
        if pattern == "*" {
            return Bypass::Everything;
        }
        if let Ok(cidr) = Cidr::parse(&pattern) {
            return Bypass::Network(cidr);
        }
        if let Ok(ip) = pattern.parse::<IpAddr>() {
            let bits = if ip.is_ipv4() { 32 } else { 128 };
            if let Ok(cidr) = Cidr::parse(&format!("{ip}/{bits}")) {
                return Bypass::Network(cidr);
            }
        }
        Bypass::Domain(pattern.trim_start_matches('.').to_string())
    }

    fn covers(&self, host: &str) -> bool {
        match self {
            Bypass::Everything => true,
            Bypass::Network(cidr) => host
                .trim_matches(['[', ']'])
                .parse::<IpAddr>()
                .is_ok_and(|ip| cidr.contains(ip)),
            Bypass::Domain(domain) => {
                let host = host.to_ascii_lowercase();
                host == *domain || host.ends_with(&format!(".{domain}"))
            }
        }
    }
}

impl ProxyRoute {
    /// Binds the relay's socket and starts relaying to the proxy.
    pub fn start(config: &ProxyConfig) -> Result<Arc<Self>, String> {
        let mut headers = BTreeMap::new();
        if let Some((user, password)) = &config.credentials {
            let token = base64_encode(format!("{user}:{}", password.expose()).as_bytes());
            headers.insert(
                "Proxy-Authorization".to_string(),
                format!("Basic {token}").into_bytes(),
            );
        }
        Ok(Arc::new(ProxyRoute {
            relay: Relay::start(config.host.clone(), config.port)?,
            headers,
            no_proxy: config.no_proxy.iter().map(|p| Bypass::parse(p)).collect(),
        }))
    }

    /// Sends `peer`'s connection through the proxy, unless `no_proxy` covers its host.
    pub fn apply(&self, peer: &mut HttpPeer, destination: &Destination) {
        if self.no_proxy.iter().any(|b| b.covers(&destination.host)) {
            return;
        }
        peer.proxy = Some(Proxy {
            next_hop: self.relay.path.clone().into_boxed_path(),
            host: destination.host.clone(),
            port: destination.port,
            headers: self.headers.clone(),
        });
    }
}

/// The Unix socket Pingora connects to, relayed to the proxy by a thread of its own.
struct Relay {
    path: PathBuf,
}

impl Relay {
    fn start(host: String, port: u16) -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!(
            "hookgate-{}-{}",
            std::process::id(),
            crate::ids::random_hex(6)
        ));
        std::fs::create_dir(&dir).map_err(|e| format!("outbound.proxy: {e}"))?;
        let path = dir.join("proxy.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path)
            .map_err(|e| format!("outbound.proxy: cannot bind {}: {e}", path.display()))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("outbound.proxy: {e}"))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("outbound.proxy: {e}"))?;
        std::thread::Builder::new()
            .name("hookgate-proxy".into())
            .spawn(move || runtime.block_on(relay(listener, host, port)))
            .map_err(|e| format!("outbound.proxy: {e}"))?;
        Ok(Relay { path })
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = self.path.parent().map(std::fs::remove_dir);
    }
}

/// After a failed accept, the relay waits this long, doubling up to the maximum.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Accepts Pingora's connections and pipes each to a new connection to the proxy.
async fn relay(listener: std::os::unix::net::UnixListener, host: String, port: u16) {
    let Ok(listener) = tokio::net::UnixListener::from_std(listener) else {
        tracing::error!("outbound.proxy: the relay socket cannot be used");
        return;
    };
    let mut backoff = ACCEPT_BACKOFF_MIN;
    let logged = Throttle::new();
    loop {
        let mut local = match listener.accept().await {
            Ok((local, _)) => {
                backoff = ACCEPT_BACKOFF_MIN;
                local
            }
            // Out of descriptors (EMFILE) or memory: accepting again at once would spin a
            // core until some are freed. Wait, longer each time, and say so once a second.
            Err(e) => {
                if let Some(skipped) = logged.allow(crate::clock::now_ms()) {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, skipped, "outbound.proxy: the relay cannot accept connections");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        let host = host.clone();
        tokio::spawn(async move {
            match tokio::net::TcpStream::connect((host.as_str(), port)).await {
                Ok(mut proxy) => {
                    let _ = proxy.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut local, &mut proxy).await;
                }
                // Pingora sees the socket close before the proxy's answer: the attempt fails
                // with that, and this says why.
                Err(e) => {
                    tracing::warn!(proxy = %host, port, error = %e, "cannot reach outbound.proxy")
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proxy_takes_domains_their_subdomains_addresses_and_networks() {
        let covers = |pattern: &str, host: &str| Bypass::parse(pattern).covers(host);
        assert!(covers("example.com", "example.com"));
        assert!(covers(".example.com", "hooks.example.com"));
        assert!(covers("example.com", "Hooks.Example.com"));
        assert!(!covers("example.com", "badexample.com"));
        assert!(covers("10.0.0.0/8", "10.1.2.3"));
        assert!(!covers("10.0.0.0/8", "11.1.2.3"));
        assert!(covers("127.0.0.1", "127.0.0.1"));
        assert!(covers("::1", "[::1]"));
        assert!(covers("*", "anything.example"));
    }

    #[test]
    fn the_relay_socket_is_removed_with_it() {
        let relay = Relay::start("127.0.0.1".into(), 9).unwrap();
        let path = relay.path.clone();
        assert!(path.exists());
        drop(relay);
        assert!(!path.exists());
    }
}
