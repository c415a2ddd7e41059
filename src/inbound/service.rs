//! The inbound side as a Pingora service: its listener (plain, or TLS with h2), in front
//! of the [`InboundApp`] wrapped in the connection limits.

use std::sync::Arc;

use pingora::listeners::tls::TlsSettings;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::services::listening::Service;

use super::connection::InboundService;
use super::refusals::RecentRefusals;
use super::tls_certificate::ReloadingCertificate;
use super::InboundApp;
use crate::config::InboundConfig;
use crate::store::Store;

/// Buffers of one client connection on the inbound port. Pingora's default read buffer is
/// 64 KiB, allocated for the connection's whole life and filled by any large body; webhook
/// heads and bodies are a few KiB, and a flood of connections multiplies it.
const CLIENT_BUFFERS: L4BufferSettings = L4BufferSettings {
    read: Some(16 * 1024),
    write: None,
};

/// The inbound service, its dedupe and rate limits kept in `store`; and its app, which a
/// config reload gives new routes.
pub fn service(
    config: &InboundConfig,
    store: &Store,
    refusals: Arc<RecentRefusals>,
) -> Result<(Service<InboundService>, Arc<InboundApp>), String> {
    let app = Arc::new(InboundApp::new(config.clone(), store, refusals)?);
    let mut service = Service::new("inbound".to_string(), InboundService::new(app.clone()));
    match &config.tls {
        None => service
            .add_listener(ListenerConfig::tcp(config.listen.to_string()).l4_buffer(CLIENT_BUFFERS)),
        Some(tls) => {
            let certificate = ReloadingCertificate::new(&tls.cert, &tls.key)
                .map_err(|e| format!("inbound.tls: {e}"))?;
            let path = |p: &std::path::Path| p.to_string_lossy().into_owned();
            let mut settings = TlsSettings::intermediate(&path(&tls.cert), &path(&tls.key))
                .map_err(|e| format!("inbound.tls: {e}"))?;
            // Served instead of the files Pingora would read once.
            settings.set_cert_resolver(Arc::new(certificate));
            settings.enable_h2();
            service.add_tls_with_settings(&config.listen.to_string(), None, settings);
        }
    }
    Ok((service, app))
}
