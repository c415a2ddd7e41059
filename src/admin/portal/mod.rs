//! The tenants' portal: a vendor issues one of its customers (a tenant) a signed, expiring
//! token (`POST /admin/tenants/{tenant}/portal`), and with it the customer manages its own
//! subscriptions and sees its own deliveries, at `/portal/` (the page) and `/portal/api/*`
//! ([`api`]), on the admin port or on `admin.portal.listen` alone. The operator's token
//! does not open the portal, and a tenant's token opens nothing else.

pub mod api;
mod token;
mod ui;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::{HttpServer, ServeHttp};
use pingora::protocols::http::ServerSession;
use pingora::services::listening::Service;
use serde_json::{json, Value};

use super::jobs::Jobs;
use super::subscriptions::{Answer, SubscriptionApi};
use crate::clock::{now_ms, unix_now};
use crate::config::values::{parse_duration, tenant as tenant_name};
use crate::config::PortalConfig;
use crate::error_response::{json_response, ErrorResponse};
use crate::http_io::read_body;
use crate::metrics::{PortalLabels, METRICS};
use crate::store::HistoryStore;
use token::{Claims, Signer, TokenError};

const DEFAULT_TTL: Duration = Duration::from_secs(3600);
const MAX_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

pub struct Portal {
    config: PortalConfig,
    signer: Signer,
    api: Arc<SubscriptionApi>,
    history: Arc<dyn HistoryStore>,
    jobs: Arc<Jobs>,
    /// Where the links point: `public_url`, or this portal's listener on http.
    base_url: String,
}

fn count(outcome: &'static str) {
    METRICS
        .portal_requests
        .get_or_create(&PortalLabels { outcome })
        .inc();
}

fn bad_ttl() -> ErrorResponse {
    ErrorResponse::new(
        400,
        "invalid_ttl",
        "ttl is a duration such as 1h, from 1s to 30d",
    )
    .with_field("ttl")
}

fn refused(outcome: &'static str, code: &'static str, message: impl Into<String>) -> ErrorResponse {
    count(outcome);
    ErrorResponse::new(401, code, message)
        .with_header("WWW-Authenticate", "Bearer realm=\"portal\"")
}

impl Portal {
    pub fn new(
        config: &PortalConfig,
        admin_listen: SocketAddr,
        api: Arc<SubscriptionApi>,
        (history, jobs): (Arc<dyn HistoryStore>, Arc<Jobs>),
    ) -> Self {
        let base_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}/portal/", config.listen.unwrap_or(admin_listen)));
        Portal {
            config: config.clone(),
            signer: Signer::new(&config.signing_key),
            api,
            history,
            jobs,
            base_url,
        }
    }

    /// `POST /admin/tenants/{tenant}/portal {"ttl":"1h","read_only":false}`: a new token and
    /// the link that carries it (in the fragment, which browsers never send or log).
    pub async fn issue(&self, tenant: &str, body: &[u8]) -> Answer {
        tenant_name(tenant).map_err(|e| ErrorResponse::new(400, "invalid_tenant", e))?;
        let fields = if body.iter().all(u8::is_ascii_whitespace) {
            Default::default()
        } else {
            crate::outbound::facade::subscription_fields(body)?
        };
        let (mut ttl, mut read_only) = (DEFAULT_TTL, false);
        for (key, value) in &fields {
            match (key.as_str(), value) {
                ("ttl", Value::String(text)) => {
                    ttl = parse_duration(text)
                        .ok()
                        .filter(|d| (Duration::from_secs(1)..=MAX_TTL).contains(d))
                        .ok_or_else(bad_ttl)?;
                }
                ("ttl", _) => return Err(bad_ttl()),
                ("read_only", Value::Bool(b)) => read_only = *b,
                ("read_only", _) => {
                    return Err(ErrorResponse::new(
                        400,
                        "invalid_field",
                        "read_only is true or false",
                    )
                    .with_field("read_only"))
                }
                (other, _) => {
                    return Err(ErrorResponse::new(
                        400,
                        "unknown_field",
                        format!("unknown field {other:?} (known: ttl, read_only)"),
                    )
                    .with_field(other))
                }
            }
        }
        // Issued after the tenant's last revocation, even within the same millisecond.
        let revoked = self
            .api
            .subscriptions
            .portal_tokens_revoked_at(tenant)
            .await?;
        let issued_ms = now_ms().max(revoked.map_or(0, |at| at + 1));
        // Whole seconds, rounded up: a token lives at least its ttl.
        let expires = (now_ms() + ttl.as_millis() as u64).div_ceil(1000);
        let token = self.signer.issue(&Claims {
            tenant: tenant.to_string(),
            issued_ms,
            expires,
            read_only,
        });
        tracing::info!(
            tenant,
            read_only,
            ttl_s = ttl.as_secs(),
            "portal token issued"
        );
        Ok((
            201,
            json!({
                "url": format!("{}#token={token}", self.base_url),
                "token": token,
                "tenant": tenant,
                "read_only": read_only,
                "expires_at": expires * 1000,
            }),
        ))
    }

    /// `POST /admin/tenants/{tenant}/portal/revoke`: every token issued to the tenant until
    /// now is refused from now on, on every replica.
    pub async fn revoke(&self, tenant: &str) -> Answer {
        tenant_name(tenant).map_err(|e| ErrorResponse::new(400, "invalid_tenant", e))?;
        let at = now_ms();
        self.api
            .subscriptions
            .revoke_portal_tokens(tenant, at)
            .await?;
        tracing::info!(tenant, "portal tokens revoked");
        Ok((200, json!({ "tenant": tenant, "revoked_at": at })))
    }

    /// `/portal`, `/portal/` and its files, and `/portal/api/*`.
    pub async fn serve(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_string();
        match path.strip_prefix("/portal/api/") {
            Some(call) => {
                let call = call.to_string();
                match self.api_call(session, &call).await {
                    Ok((status, body)) => json_response(status, body),
                    Err(e) => e.to_response(),
                }
            }
            None => {
                let _ = session.drain_request_body().await;
                ui::asset(&path, &self.config)
            }
        }
    }

    async fn api_call(&self, session: &mut ServerSession, call: &str) -> Answer {
        let claims = self.authorize(session).await?;
        let method = session.req_header().method.as_str().to_string();
        if claims.read_only && method != "GET" {
            count("read_only");
            return Err(ErrorResponse::new(
                403,
                "read_only_token",
                "this portal token may only look: ask for one that is not read_only",
            ));
        }
        let body = read_body(session, super::MAX_ADMIN_BODY, Duration::from_secs(10)).await?;
        if let Some(wrong) =
            super::openapi::method_not_allowed(&method, &format!("/portal/api/{call}"))
        {
            return Err(wrong);
        }
        let query = super::query_params(session.req_header())?;
        let param = |name: &str| {
            query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let segments = super::path_segments(call);
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        count("served");
        let tenant = api::TenantApi {
            api: &self.api,
            history: &*self.history,
            jobs: &self.jobs,
            tenant: &claims.tenant,
        };
        tenant.handle(&method, &segments, &param, &body).await
    }

    /// The request's token, signed by this key, unexpired and issued after the tenant's last
    /// revocation.
    async fn authorize(&self, session: &ServerSession) -> Result<Claims, ErrorResponse> {
        let presented = session
            .req_header()
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        let claims = match self.signer.verify(presented, unix_now()) {
            Ok(claims) => claims,
            Err(TokenError::Expired) => {
                return Err(refused("expired", "portal_token_expired", TokenError::Expired.to_string()))
            }
            Err(TokenError::Invalid) => {
                return Err(refused(
                    "invalid",
                    "invalid_portal_token",
                    "send Authorization: Bearer <a portal token from POST /admin/tenants/{tenant}/portal>",
                ))
            }
        };
        let revoked = self
            .api
            .subscriptions
            .portal_tokens_revoked_at(&claims.tenant)
            .await?;
        if revoked.is_some_and(|at| claims.issued_ms <= at) {
            return Err(refused(
                "revoked",
                "portal_token_revoked",
                "this portal token was revoked: ask for a new link",
            ));
        }
        Ok(claims)
    }
}

/// `admin.portal.listen`: the portal alone, without the admin API, `/metrics` or the console.
pub struct PortalListener(pub Arc<Portal>);

#[async_trait]
impl ServeHttp for PortalListener {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_string();
        if path == "/portal" || path.starts_with("/portal/") {
            return self.0.serve(session).await;
        }
        let _ = session.drain_request_body().await;
        match path.as_str() {
            "/healthz" | "/livez" => json_response(200, json!({ "status": "ok" })),
            _ => ErrorResponse::new(
                404,
                "not_found",
                "this listener serves the portal, at /portal/",
            )
            .to_response(),
        }
    }
}

pub fn service(listen: SocketAddr, portal: Arc<Portal>) -> Service<HttpServer<PortalListener>> {
    let mut service = Service::new(
        "portal".to_string(),
        HttpServer::new_app(PortalListener(portal)),
    );
    service.add_tcp(&listen.to_string());
    service.threads = Some(1);
    service
}
