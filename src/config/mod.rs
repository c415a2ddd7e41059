//! hookgate's one internal configuration. The YAML file is parsed into a position-aware
//! tree ([`yaml`]) and converted into [`Config`] by [`load`], which validates everything
//! and reports every problem at once.

pub mod auth;
pub mod encryption;
mod load;
pub mod notices;
pub mod operational;
pub mod portal;
pub mod protection;
pub mod retry;
mod route_delivery;
pub mod values;
pub mod yaml;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use auth::ReceiverAuth;
pub use encryption::{StoreEncryption, StoreKey};
pub use load::{
    delivery_policy_json, load_file, load_str, parse_destination, ConfigError, ConfigErrors,
};
pub use operational::{HistoryConfig, OperationalConfig};
pub use portal::PortalConfig;
pub use retry::RetryPolicy;
pub use route_delivery::{Deliver, Handshake, OrderSource, QueuedRoute};
pub use values::{Cidr, Rate};

use crate::schemes::SchemeSpec;

#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerSettings,
    pub admin: AdminConfig,
    pub store: StoreConfig,
    /// `store.encryption`: none leaves what the store holds in clear.
    pub store_encryption: Option<StoreEncryption>,
    pub inbound: Option<InboundConfig>,
    pub outbound: Option<OutboundConfig>,
    pub telemetry: TelemetryConfig,
}

/// `telemetry:`: OpenTelemetry traces. Without an OTLP endpoint nothing is traced.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    pub otlp: Option<OtlpConfig>,
    /// The share of new traces recorded, 0.0 to 1.0; a caller's sampled flag is followed.
    pub sampling: f64,
    /// Resource attributes, `service.name` first.
    pub resource: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct OtlpConfig {
    /// The traces URL: the configured base with `/v1/traces`.
    pub endpoint: Destination,
    /// Sent with every export (a collector's API key): secrets.
    pub headers: Vec<(String, Secret)>,
    /// For one export request, connecting included.
    pub timeout: Duration,
}

/// Process-wide settings: Pingora's worker threads and the shutdown timings.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Worker threads per service.
    pub threads: usize,
    /// After SIGTERM: how long listeners stay open for in-flight work to finish.
    pub grace_period: Duration,
    /// After the grace period: how long runtimes get to wind down before exit.
    pub shutdown_timeout: Duration,
    /// A changed config file is applied once its content stayed the same this long.
    pub reload_settle: Duration,
}

#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    pub token: Option<Secret>,
    /// Inbound refusals kept in memory for the console and `/admin/refusals` (0: none).
    pub recent_refusals: usize,
    pub portal: Option<PortalConfig>,
}

#[derive(Debug, Clone)]
pub enum StoreConfig {
    Embedded {
        path: PathBuf,
        /// Most delivery ids held at once; claims beyond it are refused (503), never forgotten.
        max_ids: usize,
    },
    Redis(RedisConfig),
}

/// `store: { kind: redis, ... }`: dedupe, rate limits and the outbound queue shared by
/// every replica that points at the same Redis and prefix.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port/db` or `rediss://` (TLS).
    pub url: Secret,
    /// PEM CA certificates to trust for `rediss://` instead of the system's (a private CA).
    pub tls_ca: Option<PathBuf>,
    /// `url` is one node of a Redis Cluster; the others are discovered from it.
    pub cluster: bool,
    /// Every key starts with this, so several deployments can share one Redis.
    pub key_prefix: String,
    /// Multiplexed connections used round-robin.
    pub pool_size: u32,
    pub connect_timeout: Duration,
    /// A command that takes longer fails (and follows the route's `on_store_error`).
    pub command_timeout: Duration,
}

/// What a route does when the shared store fails (Redis down or slow).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStoreError {
    /// 503 + Retry-After: the provider retries later; nothing unverified-unique reaches the app.
    FailClosed,
    /// Skip dedupe and rate limiting for the request and forward it.
    FailOpen,
}

#[derive(Debug, Clone)]
pub struct InboundConfig {
    pub listen: SocketAddr,
    /// Terminate TLS on `listen` (edge mode): PEM certificate chain and private key.
    pub tls: Option<TlsConfig>,
    pub upstream: Upstream,
    pub max_body: u64,
    /// Whole-body read deadline for slow senders.
    pub body_timeout: Duration,
    pub connect_timeout: Duration,
    /// How long the app may take to answer, its answer's body included.
    pub upstream_timeout: Duration,
    pub limits: ConnectionLimits,
    pub routes: Vec<RouteConfig>,
}

/// What one client connection may hold on the inbound port.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// A request head must arrive whole within this of the connection opening (or, on a
    /// kept-alive connection, of the previous answer plus `idle_timeout`).
    pub header_timeout: Duration,
    /// How long a kept-alive connection may sit idle between requests.
    pub idle_timeout: Duration,
    /// Open client connections at once; more are answered 503 and closed. By default,
    /// as many as the open-files limit leaves room for (at most 10,000).
    pub max_connections: Option<u32>,
    /// Open client connections from one address; unlimited when `None` (behind a load
    /// balancer every client has its address).
    pub max_connections_per_ip: Option<u32>,
    /// Longest request target, in bytes (414 above it).
    pub max_url: u64,
    /// Most request header fields (431 above it).
    pub max_headers: usize,
    /// Largest request head, in bytes (431 above it).
    pub max_header_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The app behind the inbound side, from `http://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

#[derive(Debug, Clone)]
pub struct RouteConfig {
    pub name: String,
    pub path: PathMatch,
    pub max_body: Option<u64>,
    pub verify: Verify,
    pub dedupe: Option<DedupeConfig>,
    pub rate_limit: Option<RateLimitConfig>,
    pub on_store_error: OnStoreError,
    /// Pass on request headers whose names hold `_` (never ones that read as hookgate's).
    pub allow_underscore_headers: bool,
    /// The provider's ownership check hookgate answers itself.
    pub handshake: Option<Handshake>,
    /// Meta's `hub.verify_token`, for `handshake: meta`.
    pub verify_token: Option<Secret>,
    /// How a verified webhook reaches the app.
    pub deliver: Deliver,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    Exact(String),
    /// From `path: /hooks/*`: holds `/hooks/`.
    Prefix(String),
}

impl PathMatch {
    /// The order routes are tried in (lowest first): exact paths, then prefixes from the
    /// longest to the shortest, so `/hooks/github` wins over `/hooks/*` whatever the order
    /// in the file.
    pub fn precedence(&self) -> (u8, usize) {
        match self {
            PathMatch::Exact(_) => (0, 0),
            PathMatch::Prefix(p) => (1, usize::MAX - p.len()),
        }
    }

    /// Matches ignoring ASCII case, and an exact path also with a trailing `/`: apps that
    /// route case-insensitively (ASP.NET) or ignore a trailing slash would otherwise reach a
    /// signed route's handler through a looser route that caught the variant.
    pub fn matches(&self, path: &str) -> bool {
        let path = path.as_bytes();
        match self {
            PathMatch::Exact(p) => {
                let p = p.as_bytes();
                let path = path
                    .strip_suffix(b"/")
                    .filter(|_| path.len() > 1)
                    .unwrap_or(path);
                p.eq_ignore_ascii_case(path)
            }
            PathMatch::Prefix(prefix) => {
                let prefix = prefix.as_bytes();
                path.get(..prefix.len())
                    .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
                    || path.eq_ignore_ascii_case(&prefix[..prefix.len() - 1])
            }
        }
    }
}

#[derive(Debug, Clone)]
pub enum Verify {
    /// `verify: none`: the route deliberately accepts unsigned requests.
    None,
    Scheme(Box<VerifyConfig>),
}

#[derive(Debug, Clone)]
pub struct VerifyConfig {
    pub scheme: SchemeSpec,
    /// Every secret verifies (rotation); the first one signs.
    pub secrets: Vec<Secret>,
    /// Replay window for schemes with timestamps; `None` means the 5-minute default.
    pub tolerance: Option<Duration>,
    /// The public URL the sender signs (Twilio, Square, `{url}`); by default it is
    /// rebuilt from the request's Host, X-Forwarded-Proto and path.
    pub url: Option<String>,
    /// Forward static credentials (bearer, basic, GitLab token) to the app instead of stripping them.
    pub keep_credentials: bool,
}

impl VerifyConfig {
    /// The scheme's name as configured, for headers, logs and metrics.
    pub fn scheme_name(&self) -> &str {
        match &self.scheme {
            SchemeSpec::Named(name) => name,
            SchemeSpec::Hmac(_) => "hmac",
        }
    }
}

#[derive(Debug, Clone)]
pub struct DedupeConfig {
    pub id: IdSource,
    pub ttl: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdSource {
    Header(String),
    /// A JSON pointer into the body, e.g. `/id`.
    Json(String),
    /// The delivery id the signature scheme carries.
    Scheme,
}

#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    pub key: KeySource,
    pub limit: Rate,
    pub burst: Option<u32>,
    /// Keys one route's limiter holds at most (the embedded store).
    pub max_keys: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Header(String),
    ClientIp,
    Route,
}

#[derive(Debug, Clone)]
pub struct OutboundConfig {
    /// `None` when there is no `outbound:` section and the worker only delivers the
    /// `deliver: queue` routes' webhooks.
    pub listen: Option<SocketAddr>,
    /// Named secrets a per-request destination may refer to with `Hookgate-Secret-Ref`.
    pub secrets: Vec<(String, Secret)>,
    /// Internal networks per-request destinations may reach (the SSRF guard's exceptions).
    pub allow_private_destinations: Vec<Cidr>,
    /// Largest message an app may post.
    pub max_body: u64,
    /// Deliveries in flight at once over all endpoints (each endpoint's own limit holds too).
    pub concurrency: u32,
    /// `destinations`: the policy each per-request destination gets, for itself.
    pub destinations: DeliveryPolicy,
    /// `proxy` and `no_proxy` (or `HTTPS_PROXY`, `HTTP_PROXY` and `NO_PROXY`): the HTTP
    /// CONNECT proxy every delivery goes through, and the destinations that bypass it.
    pub proxy: Option<ProxyConfig>,
    /// `destinations.tls`: what every per-request destination gets (a private CA, mTLS).
    pub destinations_tls: Option<EgressTls>,
    /// `outbound.destinations.trace_propagation`.
    pub destinations_trace_propagation: bool,
    /// `outbound.destinations.auth`: what every per-request destination sends.
    pub destinations_auth: Option<ReceiverAuth>,
    pub endpoints: Vec<EndpointConfig>,
    /// `events`: how `POST /events` reads an event's type, tenant and labels.
    pub events: EventsConfig,
    /// `subscriptions`: written in the file (for small setups), kept in the store beside
    /// those made through the admin API, which shows them but cannot change them.
    pub subscriptions: Vec<SubscriptionConfig>,
    /// The inbound routes with `deliver: queue`: the worker delivers their webhooks.
    pub routes: Vec<QueuedRoute>,
    /// `event_types`: the catalog of the events the app publishes.
    pub event_types: Vec<EventTypeConfig>,
    /// `operational`: when hookgate's own events say a delivery is failing (their
    /// endpoint, if any, is among `endpoints`).
    pub operational: OperationalConfig,
    /// `history`: how long delivered messages are kept, and within what size.
    pub history: HistoryConfig,
    /// Dead letters accepted longer ago than this are deleted.
    pub dead_letter_ttl: Duration,
}

/// One entry of `outbound.event_types`.
#[derive(Debug, Clone)]
pub struct EventTypeConfig {
    pub name: String,
    pub description: String,
    /// JSON Schema of the payload, checked when the file is loaded.
    pub schema: Option<serde_json::Value>,
    pub example: Option<serde_json::Value>,
    pub deprecated: bool,
}

/// A subscription written in the config file.
#[derive(Debug, Clone)]
pub struct SubscriptionConfig {
    pub id: String,
    pub tenant: Option<String>,
    pub url: String,
    pub event_types: Vec<String>,
    pub filters: std::collections::BTreeMap<String, String>,
    pub sign: SignConfig,
    /// `retry`, `rate_limit`, `concurrency` as written (JSON), checked like the API's.
    pub policy: serde_json::Map<String, serde_json::Value>,
    pub description: String,
    /// `tls`, as an endpoint's: host files, so only the config file may name them.
    pub tls: Option<EgressTls>,
    pub trace_propagation: bool,
    pub auth: Option<ReceiverAuth>,
}

/// Where a published event's type, tenant and labels come from; each source list is tried
/// in order and the first that gives a value wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsConfig {
    pub event_type: Vec<EventSource>,
    pub tenant: Vec<EventSource>,
    /// Labels read from the body, besides the `Hookgate-Label-<name>` headers.
    pub labels: Vec<(String, EventSource)>,
    /// `validate`: a published payload must pass its type's schema in the catalog.
    pub validate: bool,
}

impl Default for EventsConfig {
    fn default() -> Self {
        let parse = |s: &str| EventSource::parse(s).expect("valid default");
        EventsConfig {
            event_type: ["header:Hookgate-Event-Type", "json:/event", "json:/type"]
                .map(parse)
                .to_vec(),
            tenant: vec![parse("header:Hookgate-Tenant")],
            labels: Vec::new(),
            validate: false,
        }
    }
}

/// One place a value of a published event is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventSource {
    /// `header:NAME` (the name lowercased).
    Header(String),
    /// `json:/pointer` into the body (RFC 6901); a string, number or boolean.
    Pointer(String),
    /// `"{/event_type}.{/action}"`: text with pointers in braces, all of which must resolve.
    Template(Vec<TemplatePart>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    Text(String),
    Pointer(String),
}

impl EventSource {
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Some(name) = s.strip_prefix("header:") {
            let name = name.trim().to_ascii_lowercase();
            return match http::HeaderName::from_bytes(name.as_bytes()) {
                Ok(_) => Ok(EventSource::Header(name)),
                Err(_) => Err(format!("{name:?} is not a header name")),
            };
        }
        if let Some(pointer) = s.strip_prefix("json:") {
            return pointer_text(pointer).map(EventSource::Pointer);
        }
        if s.contains('{') {
            let mut parts = Vec::new();
            let mut rest = s;
            while let Some(open) = rest.find('{') {
                if open > 0 {
                    parts.push(TemplatePart::Text(rest[..open].to_string()));
                }
                let close = rest[open..]
                    .find('}')
                    .ok_or_else(|| format!("{s:?}: a {{ is not closed"))?;
                parts.push(TemplatePart::Pointer(pointer_text(
                    &rest[open + 1..open + close],
                )?));
                rest = &rest[open + close + 1..];
            }
            if !rest.is_empty() {
                parts.push(TemplatePart::Text(rest.to_string()));
            }
            return Ok(EventSource::Template(parts));
        }
        Err(format!(
            "expected header:NAME, json:/pointer or a template such as \"{{/event_type}}.{{/action}}\", found {s:?}"
        ))
    }
}

/// A JSON pointer: empty (the whole document) or starting with `/`.
fn pointer_text(p: &str) -> Result<String, String> {
    if p.is_empty() || p.starts_with('/') {
        Ok(p.to_string())
    } else {
        Err(format!("a JSON pointer starts with /, found {p:?}"))
    }
}

/// The endpoint name messages to per-request destinations are filed under; no configured
/// endpoint may take it.
pub const DYNAMIC_ENDPOINT: &str = "dynamic";

/// The endpoint name subscriptions' deliveries are filed under (in queue depths and
/// metrics: one label for every subscription); no configured endpoint may take it.
pub const SUBSCRIPTIONS_ENDPOINT: &str = "subscriptions";

/// The ids of subscriptions written in the config file start with this (`cfg_<id>`), so
/// they never meet the admin API's (`sub_...`).
pub const CONFIG_SUBSCRIPTION_PREFIX: &str = "cfg_";

/// `POST /events` on the outbound listener publishes an event; no endpoint may take the name.
pub const EVENTS_PATH: &str = "events";

/// How deliveries to one receiver are retried and paced.
#[derive(Debug, Clone)]
pub struct DeliveryPolicy {
    pub retry: RetryPolicy,
    /// Deliveries in flight at once; more wait in the queue.
    pub concurrency: u32,
    /// Deliveries per period; more wait in the queue.
    pub rate_limit: Option<Rate>,
    pub circuit: CircuitConfig,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        DeliveryPolicy {
            retry: retry::preset("standard-webhooks").expect("preset"),
            concurrency: 16,
            rate_limit: None,
            circuit: CircuitConfig::default(),
        }
    }
}

/// A receiver the app sends to by name: `POST http://<outbound.listen>/<name>`.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    pub name: String,
    pub url: Destination,
    /// Forward-proxy mode: requests to URLs matching this (`http://host/*`) come here.
    pub url_match: Option<String>,
    pub sign: SignConfig,
    pub policy: DeliveryPolicy,
    pub mode: DeliveryMode,
    /// `tls`: private CAs, a client certificate, the lowest TLS version.
    pub tls: Option<EgressTls>,
    /// Send the attempt's `traceparent` to the receiver (`trace_propagation`, default true).
    pub trace_propagation: bool,
    /// `auth`: headers, Basic or OAuth2 the receiver asks for on top of the signature.
    pub auth: Option<ReceiverAuth>,
}

/// How the app's POST is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryMode {
    /// Stored durably, answered `202 {"delivery_id"}`, delivered by the worker.
    Async,
    /// Delivered while the app waits; the app gets the receiver's real answer.
    Sync(SyncConfig),
}

/// `mode: sync`: a short retry budget spent while the app waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncConfig {
    /// `sync_attempts`: attempts at most before giving up (or falling back).
    pub attempts: u32,
    /// `sync_budget`: the whole exchange, attempts and pauses, ends within this.
    pub budget: Duration,
    /// `sync_fallback: queue`: when the budget is spent, queue the message (202) and
    /// go on with the endpoint's retry schedule instead of answering with the failure.
    pub fallback_queue: bool,
}

/// When to stop hammering a failing endpoint, and when to probe it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CircuitConfig {
    /// Open after this many failed attempts in a row...
    pub failures: u32,
    /// ...or after failing without a success for this long.
    pub streak: Option<Duration>,
    /// Stay open this long, then let one attempt probe the endpoint.
    pub pause: Duration,
}

impl Default for CircuitConfig {
    fn default() -> Self {
        CircuitConfig {
            failures: 10,
            streak: None,
            pause: Duration::from_secs(60),
        }
    }
}

/// An HTTP CONNECT proxy for deliveries: `http://[user:password@]host:port`.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub host: String,
    pub port: u16,
    pub credentials: Option<(String, Secret)>,
    /// Hosts (`example.com` and its subdomains), addresses, CIDRs, or `*`.
    pub no_proxy: Vec<String>,
}

impl ProxyConfig {
    /// Reads `http://[user:password@]host:port` (user and password percent-encoded; the
    /// port 80 unless given, as for any http URL).
    pub fn parse(url: &str, no_proxy: Vec<String>) -> Result<Self, String> {
        let expected = || {
            "expected http://[user:password@]host:port, such as http://proxy.internal:3128"
                .to_string()
        };
        let rest = url.strip_prefix("http://").ok_or_else(expected)?;
        let rest = rest.trim_end_matches('/');
        let (credentials, authority) = match rest.rsplit_once('@') {
            Some((userinfo, authority)) => {
                let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                let decode = |s: &str| {
                    percent_encoding::percent_decode_str(s)
                        .decode_utf8_lossy()
                        .into_owned()
                };
                (
                    Some((decode(user), Secret::new(decode(password)))),
                    authority,
                )
            }
            None => (None, rest),
        };
        if authority.contains('/') {
            return Err(expected());
        }
        let (host, port) = values::host_and_port(authority).ok_or_else(expected)?;
        Ok(ProxyConfig {
            host: host.to_string(),
            port: port.unwrap_or(80),
            credentials,
            no_proxy,
        })
    }
}

/// `tls:` of an endpoint: how hookgate connects to a receiver over HTTPS, beyond the
/// system's CAs. The files are read again when they change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressTls {
    /// PEM CA certificates to trust for this receiver (instead of the system's).
    pub ca: Option<PathBuf>,
    /// A PEM client certificate (chain) and its key, for receivers that require mTLS.
    pub client: Option<(PathBuf, PathBuf)>,
    /// The lowest TLS version accepted: `1.2` (the default) or `1.3`.
    pub min_version: TlsVersion,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum TlsVersion {
    #[default]
    V1_2,
    V1_3,
}

#[derive(Debug, Clone)]
pub struct SignConfig {
    pub scheme: SchemeSpec,
    /// Each signs where the format carries several signatures; otherwise the first.
    pub secrets: Vec<Secret>,
}

/// Where a message goes: `https://host:port/path?query`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Path and query, at least `/`.
    pub path: String,
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}:{}{}", self.host, self.port, self.path)
    }
}

/// A secret value: never printed by `Debug`, never logged. Serialized only where the
/// store keeps it (a subscription's `auth`).
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proxy_url_gives_its_host_port_and_decoded_credentials() {
        let proxy =
            ProxyConfig::parse("http://hook:p%40ss+word@proxy.internal:3128/", vec![]).unwrap();
        assert_eq!((proxy.host.as_str(), proxy.port), ("proxy.internal", 3128));
        let (user, password) = proxy.credentials.unwrap();
        assert_eq!((user.as_str(), password.expose()), ("hook", "p@ss+word"));
        let bare = ProxyConfig::parse("http://10.0.0.8", vec![]).unwrap();
        assert_eq!((bare.port, bare.credentials.is_none()), (80, true));
        assert!(ProxyConfig::parse("https://proxy:3128", vec![]).is_err());
        assert!(ProxyConfig::parse("http://proxy:3128/path", vec![]).is_err());
    }
}
