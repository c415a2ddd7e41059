//! The inbound side as a Pingora service: its listener (plain, or TLS with h2), in front
//! of the [`InboundApp`] wrapped in the connection limits.

use std::sync::Arc;

use pingora::listeners::tls::TlsSettings;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::services::listening::Service;

use super::connection::InboundService;
use super::tls_certificate::ReloadingCertificate;
use super::InboundApp;
use crate::config::InboundConfig;
use crate::recent::RecentRefusals;
use crate::store::Store;

/// Buffers of one client connection on the inbound port: none. hookgate's HTTP/1 reads into
/// a buffer of its own and writes each answer in one write, so a Pingora buffer would only
/// add a copy per read (and its default read buffer is 64 KiB, held for the connection's
/// whole life, multiplied by a flood of connections). TLS and h2 keep buffers of their own.
const CLIENT_BUFFERS: L4BufferSettings = L4BufferSettings {
    read: Some(0),
    write: Some(0),
};

/// The inbound service, its dedupe and rate limits kept in `store` (and `deliver: queue`
/// routes' webhooks in `queue`); and its app, which a
/// config reload gives new routes.
pub fn service(
    config: &InboundConfig,
    store: &Store,
    refusals: Arc<RecentRefusals>,
    queue: Option<super::QueueHandle>,
) -> Result<(Service<InboundService>, Arc<InboundApp>), String> {
    let app = Arc::new(InboundApp::new(config.clone(), store, refusals, queue)?);
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
