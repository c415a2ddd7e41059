//! Converts the YAML node tree into [`Config`], collecting every problem with its
//! file, line, column and key path instead of stopping at the first.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::values::{
    host_and_port, http_scheme, interpolate, parse_duration, parse_rate, parse_size, redact_url,
};
use super::yaml::{self, Key, Node, Position, Value};
use super::*;
use crate::outbound::retry::{self, RetryPolicy};
use crate::outbound::ssrf::Cidr;
use crate::schemes::crypto::{Algorithm, Encoding};
use crate::schemes::{self, HmacOptions, SecretEncoding, Template, SCHEME_NAMES};

const VERIFY_KEYS: &[&str] = &[
    "scheme",
    "secrets",
    "tolerance",
    "url",
    "keep_credentials",
    "header",
    "algorithm",
    "encoding",
    "prefix",
    "timestamp_header",
    "id_header",
    "signed_content",
    "secret_encoding",
];
const HMAC_KEYS: &[&str] = &[
    "header",
    "algorithm",
    "encoding",
    "prefix",
    "timestamp_header",
    "id_header",
    "signed_content",
    "secret_encoding",
];

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: u64,
    pub column: u64,
    /// Key path such as `inbound.routes[2].verify.secrets`; empty for the whole file.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in a config file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Loads and validates a config file, substituting `${VAR}` from the process environment.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: name.clone(),
            line: 0,
            column: 0,
            path: String::new(),
            message: format!("cannot read config file: {e}"),
        }])
    })?;
    load_str(&name, &text, &|var| std::env::var(var).ok())
}

/// Loads and validates config text; `file` names it in messages, `env` resolves `${VAR}`.
pub fn load_str(
    file: &str,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    let mut loader = Loader {
        file,
        env,
        errors: Vec::new(),
    };
    let config = match yaml::parse(text) {
        Ok(root) => loader.config(&root),
        Err(e) => {
            loader.error(e.at, "", format!("invalid YAML: {}", e.message));
            None
        }
    };
    match config {
        Some(config) if loader.errors.is_empty() => Ok(config),
        _ => {
            let mut errors = loader.errors;
            errors.sort_by_key(|e| (e.line, e.column));
            Err(ConfigErrors(errors))
        }
    }
}

struct Loader<'a> {
    file: &'a str,
    env: &'a dyn Fn(&str) -> Option<String>,
    errors: Vec<ConfigError>,
}

/// The entries of one YAML mapping, already checked for unknown keys.
struct Fields<'n> {
    entries: &'n [(Key, Node)],
    at: Position,
    path: String,
}

impl<'n> Fields<'n> {
    /// The value of `key`; an explicit null counts as absent.
    fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, v)| k.name == key && !matches!(v.value, Value::Null))
            .map(|(_, v)| v)
    }

    fn path(&self, key: &str) -> String {
        join(&self.path, key)
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9901";
const DEFAULT_OUTBOUND_LISTEN: &str = "127.0.0.1:9090";
const DEFAULT_STORE_PATH: &str = "./hookgate-data";
const DEFAULT_MAX_BODY: u64 = 1 << 20;
/// Bodies are held in memory while they are verified; beyond this a sidecar is the wrong tool.
const MAX_BODY_LIMIT: u64 = 64 << 20;

impl Loader<'_> {
    fn error(&mut self, at: Position, path: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.to_string(),
            line: at.line,
            column: at.column,
            path: path.to_string(),
            message: message.into(),
        });
    }

    /// A mapping whose keys must all be in `allowed`; unknown keys are reported one by one.
    fn fields<'n>(&mut self, node: &'n Node, path: &str, allowed: &[&str]) -> Option<Fields<'n>> {
        let Value::Map(entries) = &node.value else {
            self.error(
                node.at,
                path,
                format!(
                    "expected a mapping with keys {}, found {}",
                    allowed.join(", "),
                    node.value.kind()
                ),
            );
            return None;
        };
        for (key, _) in entries {
            if !allowed.contains(&key.name.as_str()) {
                self.error(
                    key.at,
                    &join(path, &key.name),
                    format!("unknown key (expected one of: {})", allowed.join(", ")),
                );
            }
        }
        Some(Fields {
            entries,
            at: node.at,
            path: path.to_string(),
        })
    }

    fn required<'n>(&mut self, fields: &Fields<'n>, key: &str) -> Option<&'n Node> {
        let node = fields.get(key);
        if node.is_none() {
            self.error(fields.at, &fields.path(key), "missing required key");
        }
        node
    }

    /// A scalar as text, with `${VAR}` substituted.
    fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        let raw = match &node.value {
            Value::Str(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Bool(b) => b.to_string(),
            other => {
                self.error(
                    node.at,
                    path,
                    format!("expected a string, found {}", other.kind()),
                );
                return None;
            }
        };
        match interpolate(&raw, self.env) {
            Ok(s) => Some(s),
            Err(message) => {
                self.error(node.at, path, message);
                None
            }
        }
    }

    /// A secret: a string, `${VAR}`, or `file:/path` to read it from a mounted file.
    fn secret(&mut self, node: &Node, path: &str) -> Option<Secret> {
        let value = self.string(node, path)?;
        let value = match value.strip_prefix("file:") {
            Some(file) => match std::fs::read_to_string(file) {
                Ok(content) => content.trim_end_matches(['\r', '\n']).to_string(),
                Err(e) => {
                    self.error(
                        node.at,
                        path,
                        format!("cannot read secret file {file}: {e}"),
                    );
                    return None;
                }
            },
            None => value,
        };
        if value.is_empty() {
            self.error(node.at, path, "secret is empty");
            return None;
        }
        Some(Secret::new(value))
    }

    fn parsed<T>(
        &mut self,
        node: &Node,
        path: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        let text = self.string(node, path)?;
        match parse(&text) {
            Ok(v) => Some(v),
            Err(message) => {
                self.error(node.at, path, message);
                None
            }
        }
    }

    fn duration(&mut self, node: &Node, path: &str) -> Option<Duration> {
        self.parsed(node, path, parse_duration)
    }

    fn size(&mut self, node: &Node, path: &str) -> Option<u64> {
        let size = self.parsed(node, path, parse_size)?;
        if size == 0 || size > MAX_BODY_LIMIT {
            self.error(node.at, path, "expected a size between 1B and 64MiB");
            return None;
        }
        Some(size)
    }

    fn socket_addr(&mut self, node: &Node, path: &str) -> Option<SocketAddr> {
        self.parsed(node, path, |s| {
            s.parse::<SocketAddr>().map_err(|_| {
                format!("expected an address such as 127.0.0.1:9901 or [::]:8000, found {s:?}")
            })
        })
    }

    fn list<'n>(&mut self, node: &'n Node, path: &str) -> Option<&'n [Node]> {
        match &node.value {
            Value::Seq(items) => Some(items),
            other => {
                self.error(
                    node.at,
                    path,
                    format!("expected a list, found {}", other.kind()),
                );
                None
            }
        }
    }

    fn optional<T>(
        &mut self,
        fields: &Fields,
        key: &str,
        read: impl FnOnce(&mut Self, &Node, &str) -> Option<T>,
    ) -> Option<Option<T>> {
        match fields.get(key) {
            None => Some(None),
            Some(node) => read(self, node, &fields.path(key)).map(Some),
        }
    }

    fn with_default<T>(
        &mut self,
        fields: &Fields,
        key: &str,
        default: T,
        read: impl FnOnce(&mut Self, &Node, &str) -> Option<T>,
    ) -> Option<T> {
        self.optional(fields, key, read)
            .map(|v| v.unwrap_or(default))
    }

    /// A positive duration at `key`, or `default` when the key is absent.
    fn duration_or(&mut self, fields: &Fields, key: &str, default: Duration) -> Option<Duration> {
        self.with_default(fields, key, default, Self::positive_duration)
    }

    fn config(&mut self, root: &Node) -> Option<Config> {
        let empty = Node {
            value: Value::Map(Vec::new()),
            at: root.at,
        };
        let root = if matches!(root.value, Value::Null) {
            &empty
        } else {
            root
        };
        let top = self.fields(
            root,
            "",
            &["server", "admin", "store", "inbound", "outbound"],
        )?;
        let server = self.section(&top, "server", Self::server);
        let admin = self.section(&top, "admin", Self::admin);
        let store = self.section(&top, "store", Self::store);
        let inbound = self.optional(&top, "inbound", Self::inbound);
        let outbound = self.optional(&top, "outbound", Self::outbound);
        if top.get("inbound").is_none() && top.get("outbound").is_none() {
            self.error(
                top.at,
                "",
                "nothing to serve: configure inbound, outbound or both",
            );
        }
        let config = Config {
            server: server?,
            admin: admin?,
            store: store?,
            inbound: inbound?,
            outbound: outbound?,
        };
        self.check_listeners(&config, &top);
        Some(config)
    }

    /// A section that may be left out entirely, in which case all its defaults apply.
    fn section<T>(
        &mut self,
        top: &Fields,
        key: &str,
        read: impl FnOnce(&mut Self, &Node, &str) -> Option<T>,
    ) -> Option<T> {
        let empty = Node {
            value: Value::Map(Vec::new()),
            at: top.at,
        };
        let node = top.get(key).unwrap_or(&empty);
        read(self, node, key)
    }

    fn server(&mut self, node: &Node, path: &str) -> Option<ServerSettings> {
        let f = self.fields(node, path, &["threads", "grace_period", "shutdown_timeout"])?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = self.with_default(&f, "threads", cores, |l, n, p| {
            l.whole(n, p, 1..=256).map(|t| t as usize)
        });
        let grace_period =
            self.with_default(&f, "grace_period", Duration::from_secs(5), Self::duration);
        let shutdown_timeout = self.with_default(
            &f,
            "shutdown_timeout",
            Duration::from_secs(5),
            Self::duration,
        );
        Some(ServerSettings {
            threads: threads?,
            grace_period: grace_period?,
            shutdown_timeout: shutdown_timeout?,
        })
    }

    fn admin(&mut self, node: &Node, path: &str) -> Option<AdminConfig> {
        let f = self.fields(node, path, &["listen", "token"])?;
        let default_listen = DEFAULT_ADMIN_LISTEN.parse().expect("valid default");
        let listen = self.with_default(&f, "listen", default_listen, Self::socket_addr);
        let token = self.optional(&f, "token", Self::secret);
        Some(AdminConfig {
            listen: listen?,
            token: token?,
        })
    }

    fn store(&mut self, node: &Node, path: &str) -> Option<StoreConfig> {
        let f = self.fields(
            node,
            path,
            &[
                "kind",
                "path",
                "max_ids",
                "url",
                "key_prefix",
                "pool_size",
                "connect_timeout",
                "command_timeout",
                "tls_ca",
                "cluster",
            ],
        )?;
        let kind = self.with_default(&f, "kind", "embedded".to_string(), Self::string)?;
        match kind.as_str() {
            "embedded" => {
                self.not_allowed(
                    &f,
                    &[
                        "url",
                        "key_prefix",
                        "pool_size",
                        "connect_timeout",
                        "command_timeout",
                        "tls_ca",
                        "cluster",
                    ],
                    "with kind: embedded",
                );
                let dir =
                    self.with_default(&f, "path", DEFAULT_STORE_PATH.to_string(), Self::string)?;
                let max_ids = self.with_default(&f, "max_ids", 1_000_000, |l, n, p| {
                    l.whole(n, p, 1..=u32::MAX).map(|m| m as usize)
                })?;
                Some(StoreConfig::Embedded {
                    path: PathBuf::from(dir),
                    max_ids,
                })
            }
            "redis" => {
                self.not_allowed(&f, &["path", "max_ids"], "with kind: redis");
                let url = self
                    .required(&f, "url")
                    .and_then(|n| self.secret(n, &f.path("url")));
                let key_prefix =
                    self.with_default(&f, "key_prefix", "hookgate:".to_string(), Self::string);
                if let Some(url) = &url {
                    // The same parser `run` uses, so `check` passes only what `run` accepts.
                    let problem = if !(url.expose().starts_with("redis://")
                        || url.expose().starts_with("rediss://"))
                    {
                        Some("expected a URL starting with redis:// or rediss://".to_string())
                    } else {
                        redis::IntoConnectionInfo::into_connection_info(url.expose())
                            .err()
                            // The error names the part that is wrong, never the URL itself.
                            .map(|e| {
                                format!(
                                    "not a valid Redis URL: {}",
                                    e.detail().unwrap_or("it does not parse")
                                )
                            })
                    };
                    if let Some(problem) = problem {
                        let at = f.get("url").map_or(f.at, |n| n.at);
                        self.error(at, &f.path("url"), problem);
                    }
                }
                let pool_size =
                    self.with_default(&f, "pool_size", 4, |l, n, p| l.whole(n, p, 1..=64));
                let connect_timeout =
                    self.duration_or(&f, "connect_timeout", Duration::from_secs(2));
                let command_timeout =
                    self.duration_or(&f, "command_timeout", Duration::from_secs(1));
                let tls = url
                    .as_ref()
                    .is_some_and(|u| u.expose().starts_with("rediss://"));
                let tls_ca = self.optional(&f, "tls_ca", |l, n, p| {
                    l.parsed(n, p, |s| {
                        if !tls {
                            return Err("only applies to a rediss:// url".to_string());
                        }
                        std::fs::metadata(s)
                            .map(|_| PathBuf::from(s))
                            .map_err(|e| format!("cannot read {s}: {e}"))
                    })
                });
                let cluster = self.with_default(&f, "cluster", false, Self::boolean);
                Some(StoreConfig::Redis(RedisConfig {
                    url: url?,
                    tls_ca: tls_ca?,
                    cluster: cluster?,
                    key_prefix: key_prefix?,
                    pool_size: pool_size?,
                    connect_timeout: connect_timeout?,
                    command_timeout: command_timeout?,
                }))
            }
            other => {
                let at = f.get("kind").map_or(f.at, |n| n.at);
                self.error(
                    at,
                    &f.path("kind"),
                    format!("expected embedded or redis, found {other:?}"),
                );
                None
            }
        }
    }

    fn not_allowed(&mut self, f: &Fields, keys: &[&str], why: &str) {
        for key in keys {
            if let Some(node) = f.get(key) {
                self.error(node.at, &f.path(key), format!("not used {why}"));
            }
        }
    }

    fn inbound(&mut self, node: &Node, path: &str) -> Option<InboundConfig> {
        let f = self.fields(
            node,
            path,
            &[
                "listen",
                "tls",
                "upstream",
                "max_body",
                "body_timeout",
                "connect_timeout",
                "upstream_timeout",
                "header_timeout",
                "idle_timeout",
                "max_connections",
                "max_connections_per_ip",
                "max_url",
                "max_headers",
                "max_header_bytes",
                "routes",
            ],
        )?;
        let listen = self
            .required(&f, "listen")
            .and_then(|n| self.socket_addr(n, &f.path("listen")));
        let tls = self.optional(&f, "tls", Self::tls);
        let upstream = self
            .required(&f, "upstream")
            .and_then(|n| self.upstream(n, &f.path("upstream")));
        let max_body = self.with_default(&f, "max_body", DEFAULT_MAX_BODY, Self::size);
        let body_timeout = self.duration_or(&f, "body_timeout", Duration::from_secs(10));
        let connect_timeout = self.duration_or(&f, "connect_timeout", Duration::from_secs(2));
        let upstream_timeout = self.duration_or(&f, "upstream_timeout", Duration::from_secs(30));
        let header_timeout = self.duration_or(&f, "header_timeout", Duration::from_secs(10));
        let idle_timeout = self.duration_or(&f, "idle_timeout", Duration::from_secs(60));
        let max_connections =
            self.optional(&f, "max_connections", |l, n, p| l.whole(n, p, 1..=u32::MAX));
        let max_connections_per_ip = self.optional(&f, "max_connections_per_ip", |l, n, p| {
            l.whole(n, p, 1..=u32::MAX)
        });
        let max_url = self.with_default(&f, "max_url", 8 * 1024, Self::size);
        let max_headers =
            self.with_default(&f, "max_headers", 100, |l, n, p| l.whole(n, p, 1..=250));
        let max_header_bytes = self.with_default(&f, "max_header_bytes", 64 * 1024, Self::size);
        let routes = self
            .required(&f, "routes")
            .and_then(|n| self.routes(n, &f.path("routes")));
        let limits = ConnectionLimits {
            header_timeout: header_timeout?,
            idle_timeout: idle_timeout?,
            max_connections: max_connections?,
            max_connections_per_ip: max_connections_per_ip?,
            max_url: max_url?,
            max_headers: max_headers? as usize,
            max_header_bytes: max_header_bytes?,
        };
        Some(InboundConfig {
            limits,
            listen: listen?,
            tls: tls?,
            upstream: upstream?,
            max_body: max_body?,
            body_timeout: body_timeout?,
            connect_timeout: connect_timeout?,
            upstream_timeout: upstream_timeout?,
            routes: routes?,
        })
    }

    /// A PEM certificate chain and key, checked now so a bad file stops the start, not one listener.
    fn tls(&mut self, node: &Node, path: &str) -> Option<TlsConfig> {
        let f = self.fields(node, path, &["cert", "key"])?;
        let cert = self
            .required(&f, "cert")
            .and_then(|n| self.string(n, &f.path("cert")));
        let key = self
            .required(&f, "key")
            .and_then(|n| self.string(n, &f.path("key")));
        let (cert, key) = (cert?, key?);
        match pingora::tls::load_certs_and_key_files(&cert, &key) {
            Ok(Some(_)) => Some(TlsConfig {
                cert: PathBuf::from(cert),
                key: PathBuf::from(key),
            }),
            Ok(None) => {
                self.error(f.at, path, format!("no certificate in {cert}"));
                None
            }
            Err(e) => {
                self.error(
                    f.at,
                    path,
                    format!("cannot load the certificate and key: {e}"),
                );
                None
            }
        }
    }

    /// Every item of a list, read with `read`. All items are read, so each bad one is reported.
    fn each<T>(
        &mut self,
        node: &Node,
        path: &str,
        mut read: impl FnMut(&mut Self, &Node, &str) -> Option<T>,
    ) -> Option<Vec<T>> {
        let items = self.list(node, path)?;
        let read: Vec<Option<T>> = items
            .iter()
            .enumerate()
            .map(|(i, item)| read(self, item, &format!("{path}[{i}]")))
            .collect();
        read.into_iter().collect()
    }

    /// A whole number within `range`.
    fn whole(
        &mut self,
        node: &Node,
        path: &str,
        range: std::ops::RangeInclusive<u32>,
    ) -> Option<u32> {
        self.parsed(node, path, |s| match s.parse::<u32>() {
            Ok(v) if range.contains(&v) => Ok(v),
            _ if *range.end() == u32::MAX => Err(format!(
                "expected a whole number of at least {}, found {s:?}",
                range.start()
            )),
            _ => Err(format!(
                "expected a whole number from {} to {}, found {s:?}",
                range.start(),
                range.end()
            )),
        })
    }

    fn positive_duration(&mut self, node: &Node, path: &str) -> Option<Duration> {
        let d = self.duration(node, path)?;
        if d.is_zero() {
            self.error(node.at, path, "must be longer than 0s");
            return None;
        }
        Some(d)
    }

    fn upstream(&mut self, node: &Node, path: &str) -> Option<Upstream> {
        self.parsed(node, path, |s| {
            let expected = format!(
                "expected a URL such as http://127.0.0.1:8080, found {:?}",
                redact_url(s)
            );
            let (tls, rest) = http_scheme(s).ok_or_else(|| expected.clone())?;
            let authority = rest.strip_suffix('/').unwrap_or(rest);
            if authority.contains('/') {
                return Err(format!("{expected} (no path: requests keep their own)"));
            }
            let (host, port) = host_and_port(authority).ok_or_else(|| expected.clone())?;
            let port = port.unwrap_or(if tls { 443 } else { 80 });
            Ok(Upstream {
                tls,
                host: host.to_string(),
                port,
            })
        })
    }

    fn routes(&mut self, node: &Node, path: &str) -> Option<Vec<RouteConfig>> {
        let items = self.list(node, path)?;
        if items.is_empty() {
            self.error(node.at, path, "at least one route is needed");
            return None;
        }
        let mut routes = Vec::new();
        let mut complete = true;
        for (i, item) in items.iter().enumerate() {
            let route_path = format!("{path}[{i}]");
            match self.route(item, &route_path) {
                Some(route) => {
                    if let Some(other) = routes
                        .iter()
                        .position(|r: &RouteConfig| r.name == route.name)
                    {
                        self.error(
                            item.at,
                            &join(&route_path, "name"),
                            format!("duplicate route name (also {path}[{other}])"),
                        );
                    }
                    if let Some(other) = routes
                        .iter()
                        .position(|r: &RouteConfig| r.path == route.path)
                    {
                        self.error(
                            item.at,
                            &join(&route_path, "path"),
                            format!("duplicate path (also {path}[{other}])"),
                        );
                    }
                    routes.push(route);
                }
                None => complete = false,
            }
        }
        complete.then_some(routes)
    }

    fn route(&mut self, node: &Node, path: &str) -> Option<RouteConfig> {
        let f = self.fields(
            node,
            path,
            &[
                "name",
                "path",
                "max_body",
                "verify",
                "dedupe",
                "rate_limit",
                "on_store_error",
            ],
        )?;
        let name = self
            .required(&f, "name")
            .and_then(|n| self.parsed(n, &f.path("name"), route_name));
        let route_path = self.required(&f, "path").and_then(|n| {
            self.parsed(n, &f.path("path"), |s| {
                if !s.starts_with('/') {
                    return Err(format!("expected a path starting with '/', found {s:?}"));
                }
                match s.strip_suffix('*') {
                    Some(prefix) if prefix.ends_with('/') && !prefix.contains('*') => {
                        Ok(PathMatch::Prefix(prefix.to_string()))
                    }
                    None if !s.contains('*') => Ok(PathMatch::Exact(s.to_string())),
                    _ => Err(format!(
                        "'*' may only end a prefix such as /hooks/*, found {s:?}"
                    )),
                }
            })
        });
        let max_body = self.optional(&f, "max_body", Self::size);
        let verify = self
            .required(&f, "verify")
            .and_then(|n| self.verify(n, &f.path("verify")));
        let dedupe = self.optional(&f, "dedupe", Self::dedupe);
        let rate_limit = self.optional(&f, "rate_limit", Self::rate_limit);
        let on_store_error =
            self.with_default(&f, "on_store_error", OnStoreError::FailClosed, |l, n, p| {
                l.parsed(n, p, |s| match s {
                    "fail_closed" => Ok(OnStoreError::FailClosed),
                    "fail_open" => Ok(OnStoreError::FailOpen),
                    other => Err(format!(
                        "expected fail_closed or fail_open, found {other:?}"
                    )),
                })
            });
        Some(RouteConfig {
            name: name?,
            path: route_path?,
            max_body: max_body?,
            verify: verify?,
            dedupe: dedupe?,
            rate_limit: rate_limit?,
            on_store_error: on_store_error?,
        })
    }

    fn verify(&mut self, node: &Node, path: &str) -> Option<Verify> {
        if let Value::Str(s) = &node.value {
            if s == "none" {
                return Some(Verify::None);
            }
            self.error(
                node.at,
                path,
                format!("expected none or a mapping with scheme and secrets, found {s:?}"),
            );
            return None;
        }
        let f = self.fields(node, path, VERIFY_KEYS)?;
        let scheme_name = self.required(&f, "scheme").and_then(|n| {
            self.parsed(n, &f.path("scheme"), |s| {
                if SCHEME_NAMES.contains(&s) {
                    Ok(s.to_string())
                } else {
                    Err(format!(
                        "unknown scheme {s:?} (known: {})",
                        SCHEME_NAMES.join(", ")
                    ))
                }
            })
        })?;
        let spec = if scheme_name == "hmac" {
            SchemeSpec::Hmac(self.hmac_options(&f)?)
        } else {
            self.not_allowed(&f, HMAC_KEYS, "unless scheme is hmac");
            SchemeSpec::Named(scheme_name)
        };
        let scheme = schemes::build(&spec)
            .map_err(|e| self.error(f.at, path, e))
            .ok()?;
        let secrets = self.required(&f, "secrets").and_then(|n| {
            let p = f.path("secrets");
            let items = self.list(n, &p)?;
            if items.is_empty() {
                self.error(n.at, &p, "at least one secret is needed");
                return None;
            }
            self.each(n, &p, |l, item, item_path| {
                let secret = l.secret(item, item_path)?;
                // The scheme decides what a valid secret is (e.g. whsec_ base64).
                match scheme.key(secret.expose()) {
                    Ok(_) => Some(secret),
                    Err(e) => {
                        l.error(item.at, item_path, e);
                        None
                    }
                }
            })
        });
        let tolerance = self.optional(&f, "tolerance", Self::positive_duration);
        let url = self.optional(&f, "url", |l, n, p| {
            l.parsed(n, p, |s| {
                if s.starts_with("https://") || s.starts_with("http://") {
                    Ok(s.to_string())
                } else {
                    Err(format!(
                        "expected the full URL the sender signs, found {:?}",
                        redact_url(s)
                    ))
                }
            })
        });
        let keep_credentials = self.with_default(&f, "keep_credentials", false, Self::boolean);
        Some(Verify::Scheme(Box::new(VerifyConfig {
            scheme: spec,
            secrets: secrets?,
            tolerance: tolerance?,
            url: url?,
            keep_credentials: keep_credentials?,
        })))
    }

    fn hmac_options(&mut self, f: &Fields) -> Option<HmacOptions> {
        let header = self.required(f, "header").and_then(|n| {
            self.parsed(n, &f.path("header"), |s| {
                header_name(s).ok_or_else(|| format!("expected a header name, found {s:?}"))
            })
        });
        let algorithm = self.with_default(f, "algorithm", Algorithm::Sha256, |l, n, p| {
            l.parsed(n, p, Algorithm::parse)
        });
        let encoding = self.with_default(f, "encoding", Encoding::Hex, |l, n, p| {
            l.parsed(n, p, Encoding::parse)
        });
        let prefix = self.with_default(f, "prefix", String::new(), Self::string);
        let optional_header = |l: &mut Self, n: &Node, p: &str| {
            l.parsed(n, p, |s| {
                header_name(s).ok_or_else(|| format!("expected a header name, found {s:?}"))
            })
        };
        let timestamp_header = self.optional(f, "timestamp_header", optional_header);
        let id_header = self.optional(f, "id_header", optional_header);
        let template = self.with_default(
            f,
            "signed_content",
            Template::parse("{body}").expect("valid"),
            |l, n, p| l.parsed(n, p, Template::parse),
        );
        let secret_encoding =
            self.with_default(f, "secret_encoding", SecretEncoding::Utf8, |l, n, p| {
                l.parsed(n, p, SecretEncoding::parse)
            });
        let options = HmacOptions {
            header: header?,
            algorithm: algorithm?,
            encoding: encoding?,
            prefix: prefix?,
            timestamp_header: timestamp_header?,
            id_header: id_header?,
            template: template?,
            secret_encoding: secret_encoding?,
            body_timestamp_ms: None,
        };
        if options.template.uses_timestamp() && options.timestamp_header.is_none() {
            let at = f.get("signed_content").map_or(f.at, |n| n.at);
            self.error(
                at,
                &f.path("signed_content"),
                "{timestamp} needs timestamp_header",
            );
            return None;
        }
        if options.template.uses_id() && options.id_header.is_none() {
            let at = f.get("signed_content").map_or(f.at, |n| n.at);
            self.error(at, &f.path("signed_content"), "{id} needs id_header");
            return None;
        }
        Some(options)
    }

    fn boolean(&mut self, node: &Node, path: &str) -> Option<bool> {
        match node.value {
            Value::Bool(b) => Some(b),
            _ => {
                self.error(
                    node.at,
                    path,
                    format!("expected true or false, found {}", node.value.kind()),
                );
                None
            }
        }
    }

    fn dedupe(&mut self, node: &Node, path: &str) -> Option<DedupeConfig> {
        let f = self.fields(node, path, &["id", "ttl"])?;
        let id = self.required(&f, "id").and_then(|n| {
            self.parsed(n, &f.path("id"), |s| {
                if s == "scheme" {
                    Ok(IdSource::Scheme)
                } else if let Some(name) =
                    s.strip_prefix("header:").filter(|h| valid_header_name(h))
                {
                    Ok(IdSource::Header(name.to_ascii_lowercase()))
                } else if let Some(pointer) = s.strip_prefix("json:").filter(|p| p.starts_with('/'))
                {
                    Ok(IdSource::Json(pointer.to_string()))
                } else {
                    Err(format!(
                        "expected header:NAME, json:/pointer or scheme, found {s:?}"
                    ))
                }
            })
        });
        let ttl = self.duration_or(&f, "ttl", Duration::from_secs(86_400));
        Some(DedupeConfig { id: id?, ttl: ttl? })
    }

    fn rate_limit(&mut self, node: &Node, path: &str) -> Option<RateLimitConfig> {
        let f = self.fields(node, path, &["key", "limit", "burst"])?;
        let key = self.with_default(&f, "key", KeySource::ClientIp, |l, n, p| {
            l.parsed(n, p, |s| match s {
                "ip" => Ok(KeySource::ClientIp),
                "route" => Ok(KeySource::Route),
                _ => match s.strip_prefix("header:").filter(|h| valid_header_name(h)) {
                    Some(name) => Ok(KeySource::Header(name.to_ascii_lowercase())),
                    None => Err(format!("expected header:NAME, ip or route, found {s:?}")),
                },
            })
        });
        let limit = self
            .required(&f, "limit")
            .and_then(|n| self.parsed(n, &f.path("limit"), parse_rate));
        let burst = self.optional(&f, "burst", |l, n, p| l.whole(n, p, 1..=u32::MAX));
        Some(RateLimitConfig {
            key: key?,
            limit: limit?,
            burst: burst?,
        })
    }

    fn outbound(&mut self, node: &Node, path: &str) -> Option<OutboundConfig> {
        let f = self.fields(
            node,
            path,
            &[
                "listen",
                "max_body",
                "endpoints",
                "secrets",
                "allow_private_destinations",
            ],
        )?;
        let secrets = self.with_default(&f, "secrets", Vec::new(), |l, n, p| {
            let Value::Map(entries) = &n.value else {
                l.error(
                    n.at,
                    p,
                    format!(
                        "expected a mapping of names to secrets, found {}",
                        n.value.kind()
                    ),
                );
                return None;
            };
            let secrets: Vec<_> = entries
                .iter()
                .map(|(k, v)| l.secret(v, &join(p, &k.name)).map(|s| (k.name.clone(), s)))
                .collect();
            secrets.into_iter().collect::<Option<Vec<_>>>()
        });
        let allow = self.with_default(&f, "allow_private_destinations", Vec::new(), |l, n, p| {
            l.each(n, p, |l, item, p| l.parsed(item, p, Cidr::parse))
        });
        let default_listen = DEFAULT_OUTBOUND_LISTEN.parse().expect("valid default");
        let listen = self.with_default(&f, "listen", default_listen, Self::socket_addr);
        let max_body = self.with_default(&f, "max_body", DEFAULT_MAX_BODY, Self::size);
        let endpoints = self.with_default(&f, "endpoints", Vec::new(), |l, n, p| {
            let items = l.list(n, p)?;
            let endpoints: Vec<_> = items
                .iter()
                .enumerate()
                .map(|(i, item)| l.endpoint(item, &format!("{p}[{i}]")))
                .collect();
            let endpoints = endpoints
                .into_iter()
                .collect::<Option<Vec<EndpointConfig>>>()?;
            for (i, e) in endpoints.iter().enumerate() {
                if let Some(first) = endpoints[..i].iter().position(|o| o.name == e.name) {
                    l.error(
                        items[i].at,
                        &format!("{p}[{i}].name"),
                        format!("duplicate endpoint name (also {p}[{first}])"),
                    );
                }
            }
            Some(endpoints)
        });
        Some(OutboundConfig {
            listen: listen?,
            secrets: secrets?,
            allow_private_destinations: allow?,
            max_body: max_body?,
            endpoints: endpoints?,
        })
    }

    fn endpoint(&mut self, node: &Node, path: &str) -> Option<EndpointConfig> {
        let f = self.fields(
            node,
            path,
            &[
                "name",
                "url",
                "match",
                "sign",
                "retry",
                "mode",
                "concurrency",
                "rate_limit",
                "circuit",
                "sync_attempts",
                "sync_budget",
                "sync_fallback",
            ],
        )?;
        let concurrency =
            self.with_default(&f, "concurrency", 16, |l, n, p| l.whole(n, p, 1..=1024));
        let endpoint_rate = self.optional(&f, "rate_limit", |l, n, p| l.parsed(n, p, parse_rate));
        let circuit = self.with_default(&f, "circuit", CircuitConfig::default(), |l, n, p| {
            let c = l.fields(n, p, &["failures", "streak", "pause"])?;
            let defaults = CircuitConfig::default();
            let failures = l.with_default(&c, "failures", defaults.failures, |l, n, p| {
                l.whole(n, p, 1..=u32::MAX)
            });
            let streak = l.optional(&c, "streak", Self::positive_duration);
            let pause = l.duration_or(&c, "pause", defaults.pause);
            Some(CircuitConfig {
                failures: failures?,
                streak: streak?,
                pause: pause?,
            })
        });
        let url_match = self.optional(&f, "match", |l, n, p| {
            l.parsed(n, p, |s| {
                if s.starts_with("http://") || s.starts_with("https://") {
                    Ok(s.to_string())
                } else {
                    Err(format!("expected a URL or URL prefix ending in *, such as http://hooks.acme.example/*, found {:?}", redact_url(s)))
                }
            })
        });
        let name = self
            .required(&f, "name")
            .and_then(|n| self.parsed(n, &f.path("name"), route_name));
        let url = self
            .required(&f, "url")
            .and_then(|n| self.parsed(n, &f.path("url"), parse_destination));
        let sign = self
            .required(&f, "sign")
            .and_then(|n| self.sign(n, &f.path("sign")));
        let retry = self.with_default(
            &f,
            "retry",
            retry::preset("standard-webhooks").expect("preset"),
            Self::retry,
        );
        let mode = self.mode(&f);
        Some(EndpointConfig {
            name: name?,
            url: url?,
            url_match: url_match?,
            sign: sign?,
            retry: retry?,
            concurrency: concurrency?,
            rate_limit: endpoint_rate?,
            circuit: circuit?,
            mode: mode?,
        })
    }

    /// `mode: async | sync`, with `sync_attempts`, `sync_budget` and `sync_fallback`
    /// for sync endpoints only.
    fn mode(&mut self, f: &Fields) -> Option<DeliveryMode> {
        let sync = self.with_default(f, "mode", false, |l, n, p| {
            l.parsed(n, p, |s| match s {
                "async" => Ok(false),
                "sync" => Ok(true),
                other => Err(format!("expected async or sync, found {other:?}")),
            })
        })?;
        if !sync {
            for key in ["sync_attempts", "sync_budget", "sync_fallback"] {
                if let Some(node) = f.get(key) {
                    self.error(node.at, &f.path(key), "only applies with mode: sync");
                }
            }
            return Some(DeliveryMode::Async);
        }
        let attempts = self.with_default(f, "sync_attempts", 3, |l, n, p| l.whole(n, p, 1..=10));
        let budget = self.duration_or(f, "sync_budget", Duration::from_secs(10));
        let fallback_queue = self.with_default(f, "sync_fallback", false, |l, n, p| {
            l.parsed(n, p, |s| match s {
                "queue" => Ok(true),
                "none" => Ok(false),
                other => Err(format!("expected queue or none, found {other:?}")),
            })
        });
        Some(DeliveryMode::Sync(SyncConfig {
            attempts: attempts?,
            budget: budget?,
            fallback_queue: fallback_queue?,
        }))
    }

    fn sign(&mut self, node: &Node, path: &str) -> Option<SignConfig> {
        let f = self.fields(node, path, &["scheme", "secret", "secrets"])?;
        let name = self.with_default(&f, "scheme", "standard-webhooks".to_string(), |l, n, p| {
            l.parsed(n, p, |s| {
                if SCHEME_NAMES.contains(&s) && s != "hmac" {
                    Ok(s.to_string())
                } else {
                    Err(format!("expected a scheme name such as standard-webhooks or rejento, found {s:?}"))
                }
            })
        })?;
        let spec = SchemeSpec::Named(name);
        let scheme = schemes::build(&spec)
            .map_err(|e| self.error(f.at, path, e))
            .ok()?;
        let mut secrets = Vec::new();
        if let Some(n) = f.get("secret") {
            secrets.push((n, f.path("secret")));
        }
        if let Some(n) = f.get("secrets") {
            let p = f.path("secrets");
            for (i, item) in self.list(n, &p)?.iter().enumerate() {
                secrets.push((item, format!("{p}[{i}]")));
            }
        }
        if secrets.is_empty() {
            self.error(f.at, path, "give secret or secrets");
            return None;
        }
        let secrets: Vec<Option<Secret>> = secrets
            .into_iter()
            .map(|(n, p)| {
                let secret = self.secret(n, &p)?;
                match scheme.key(secret.expose()) {
                    Ok(_) => Some(secret),
                    Err(e) => {
                        self.error(n.at, &p, e);
                        None
                    }
                }
            })
            .collect();
        Some(SignConfig {
            scheme: spec,
            secrets: secrets.into_iter().collect::<Option<Vec<_>>>()?,
        })
    }

    fn retry(&mut self, node: &Node, path: &str) -> Option<RetryPolicy> {
        let f = self.fields(
            node,
            path,
            &[
                "preset",
                "schedule",
                "max_attempts",
                "timeout",
                "success_status",
                "max_retry_after",
                "jitter",
            ],
        )?;
        // Every key is read even when an earlier one is wrong, so each problem is reported;
        // a bad preset falls back to the default one for the other keys' defaults.
        let fallback = retry::preset("standard-webhooks").expect("preset");
        let base = self.with_default(&f, "preset", fallback.clone(), |l, n, p| {
            l.parsed(n, p, |s| {
                retry::preset(s).ok_or_else(|| {
                    format!(
                        "unknown preset {s:?} (known: {})",
                        retry::PRESETS.join(", ")
                    )
                })
            })
        });
        let defaults = base.clone().unwrap_or(fallback);
        let schedule = self.optional(&f, "schedule", |l, n, p| l.each(n, p, Self::duration));
        let explicit_attempts = self.optional(&f, "max_attempts", |l, n, p| l.whole(n, p, 1..=100));
        let timeout = self.duration_or(&f, "timeout", defaults.timeout);
        let success_status = self.optional(&f, "success_status", |l, n, p| {
            l.each(n, p, |l, item, p| {
                l.parsed(item, p, |s| match s.parse::<u16>() {
                    Ok(code) if (100..600).contains(&code) => Ok(code),
                    _ => Err(format!("expected an HTTP status, found {s:?}")),
                })
            })
        });
        let max_retry_after = self.with_default(
            &f,
            "max_retry_after",
            defaults.max_retry_after,
            Self::duration,
        );
        let jitter = self.with_default(&f, "jitter", defaults.jitter, |l, n, p| {
            l.parsed(n, p, |s| {
                match s.strip_suffix('%').unwrap_or(s).parse::<u32>() {
                    Ok(pct) if pct <= 100 && s.ends_with('%') => Ok(pct),
                    _ => Err(format!("expected a percentage such as 10%, found {s:?}")),
                }
            })
        });
        let (base, schedule, explicit_attempts, success_status) =
            (base?, schedule?, explicit_attempts?, success_status?);
        // A schedule of its own implies one attempt per delay plus the first, unless capped.
        let max_attempts = explicit_attempts
            .or(schedule.as_ref().map(|s| s.len() as u32 + 1))
            .unwrap_or(base.max_attempts);
        Some(RetryPolicy {
            schedule: schedule.unwrap_or(base.schedule),
            max_attempts,
            timeout: timeout?,
            success_status: success_status.or(base.success_status),
            max_retry_after: max_retry_after?,
            jitter: jitter?,
        })
    }

    /// Two services cannot share one address.
    fn check_listeners(&mut self, config: &Config, top: &Fields) {
        let mut seen: Vec<(&str, SocketAddr)> = vec![("admin.listen", config.admin.listen)];
        if let Some(inbound) = &config.inbound {
            seen.push(("inbound.listen", inbound.listen));
        }
        if let Some(outbound) = &config.outbound {
            seen.push(("outbound.listen", outbound.listen));
        }
        for i in 1..seen.len() {
            if let Some((other, _)) = seen[..i].iter().find(|(_, addr)| {
                addr.port() == seen[i].1.port()
                    && (addr.ip() == seen[i].1.ip()
                        || addr.ip().is_unspecified()
                        || seen[i].1.ip().is_unspecified())
            }) {
                let (name, addr) = seen[i];
                let section = name.split('.').next().unwrap_or(name);
                let at = top
                    .get(section)
                    .and_then(|s| match &s.value {
                        Value::Map(entries) => entries
                            .iter()
                            .find(|(k, _)| k.name == "listen")
                            .map(|(_, v)| v.at),
                        _ => None,
                    })
                    .unwrap_or(top.at);
                self.error(at, name, format!("{addr} is already used by {other}"));
            }
        }
    }
}

/// A route or endpoint name: it appears in URLs, headers and metric labels.
fn route_name(s: &str) -> Result<String, String> {
    let valid = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if valid {
        Ok(s.to_string())
    } else {
        Err(format!(
            "expected a name of lowercase letters, digits, '-' and '_' (at most 64), found {s:?}"
        ))
    }
}

/// `https://host[:port]/path?query`; the scheme in any case, IPv6 hosts in brackets.
pub fn parse_destination(s: &str) -> Result<Destination, String> {
    let expected = || {
        format!(
            "expected a URL such as https://hooks.example.com/path, found {:?}",
            redact_url(s)
        )
    };
    let (tls, rest) = http_scheme(s).ok_or_else(expected)?;
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    let (host, port) = host_and_port(authority).ok_or_else(expected)?;
    if host.contains(['@', ' ', '[', ']']) {
        return Err(expected());
    }
    let path = match path {
        "" => "/".to_string(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_string(),
    };
    Ok(Destination {
        tls,
        host: host.to_string(),
        port: port.unwrap_or(if tls { 443 } else { 80 }),
        path,
    })
}

/// A header name, lower-cased, if it is one.
fn header_name(name: &str) -> Option<String> {
    valid_header_name(name).then(|| name.to_ascii_lowercase())
}

/// An HTTP header name (RFC 9110 token).
fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "REJENTO_SECRET" => Some("rj-secret".to_string()),
            _ => None,
        }
    }

    #[test]
    fn destinations_take_ipv6_without_a_port_and_any_case_of_scheme() {
        let d = parse_destination("HTTPS://[2001:db8::1]/hook").unwrap();
        assert_eq!(
            (d.tls, d.host.as_str(), d.port, d.path.as_str()),
            (true, "2001:db8::1", 443, "/hook")
        );
        let d = parse_destination("Http://[::1]:8080").unwrap();
        assert_eq!(
            (d.tls, d.host.as_str(), d.port, d.path.as_str()),
            (false, "::1", 8080, "/")
        );
        let d = parse_destination("http://example.com?x=1").unwrap();
        assert_eq!(
            (d.host.as_str(), d.port, d.path.as_str()),
            ("example.com", 80, "/?x=1")
        );
        for bad in [
            "ftp://x",
            "http://",
            "http://[::1",
            "http://a:b/",
            "http://u:p@h/",
        ] {
            let error = parse_destination(bad).unwrap_err();
            assert!(!error.contains(":p@"), "{error}");
        }
    }

    fn load(text: &str) -> Result<Config, ConfigErrors> {
        load_str("test.yaml", text, &env)
    }

    fn errors(text: &str) -> Vec<String> {
        load(text)
            .unwrap_err()
            .0
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    const MINIMAL: &str = "inbound:\n  listen: 127.0.0.1:8000\n  upstream: http://127.0.0.1:8080\n  routes:\n    - name: a\n      path: /hooks/a\n      verify: none\n";

    #[test]
    fn minimal_config_gets_defaults() {
        let config = load(MINIMAL).unwrap();
        assert_eq!(config.admin.listen.to_string(), "127.0.0.1:9901");
        assert!(matches!(config.store, StoreConfig::Embedded { .. }));
        let inbound = config.inbound.unwrap();
        assert_eq!(inbound.max_body, 1 << 20);
        assert_eq!(
            inbound.upstream,
            Upstream {
                tls: false,
                host: "127.0.0.1".into(),
                port: 8080
            }
        );
        assert_eq!(inbound.routes[0].path, PathMatch::Exact("/hooks/a".into()));
        assert!(config.outbound.is_none());
        assert_eq!(config.server.grace_period, Duration::from_secs(5));
    }

    #[test]
    fn every_problem_is_reported_with_position_and_path() {
        let text = "\
inbound:
  listen: 127.0.0.1:8000
  upstream: http://127.0.0.1:8080
  body_timeout: 10 seconds
  routes:
    - name: rejento
      path: /hooks/rejento
      verfy: none
      verify: { scheme: rejento, secrets: [\"${NOPE}\"] }
";
        assert_eq!(
            errors(text),
            vec![
                "test.yaml:4:17: inbound.body_timeout: expected a duration such as 500ms, 30s, 2m, 24h or 1h30m, found \"10 seconds\"",
                "test.yaml:8:7: inbound.routes[0].verfy: unknown key (expected one of: name, path, max_body, verify, dedupe, rate_limit, on_store_error)",
                "test.yaml:9:44: inbound.routes[0].verify.secrets[0]: environment variable NOPE is not set (write ${NOPE:-default} to give a default)",
            ]
        );
    }

    #[test]
    fn env_and_file_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "from-file\n").unwrap();
        let text = MINIMAL.replace(
            "verify: none",
            &format!("verify: {{ scheme: rejento, secrets: [\"${{REJENTO_SECRET}}\", \"file:{}\", \"${{OTHER:-fallback}}\"] }}", file.display()),
        );
        let config = load(&text).unwrap();
        let Verify::Scheme(verify) = &config.inbound.unwrap().routes[0].verify else {
            panic!("expected a scheme")
        };
        let values: Vec<_> = verify.secrets.iter().map(|s| s.expose()).collect();
        assert_eq!(values, ["rj-secret", "from-file", "fallback"]);
        assert!(!format!("{verify:?}").contains("rj-secret"));
    }

    #[test]
    fn route_rules() {
        let text = MINIMAL.replace("path: /hooks/a", "path: /hooks/*/x")
            + "    - name: A\n      path: nope\n";
        let errs = errors(&text);
        assert!(
            errs[0].contains("inbound.routes[0].path: '*' may only end a prefix"),
            "{errs:?}"
        );
        assert!(
            errs[1].contains("8:7: inbound.routes[1].verify: missing required key"),
            "{errs:?}"
        );
        assert!(
            errs[2].contains("inbound.routes[1].name: expected a name of lowercase"),
            "{errs:?}"
        );
        assert!(
            errs[3].contains("inbound.routes[1].path: expected a path starting with '/'"),
            "{errs:?}"
        );
    }

    #[test]
    fn prefix_paths_match_below_and_at_the_prefix() {
        let p = PathMatch::Prefix("/hooks/".into());
        assert!(p.matches("/hooks/github"));
        assert!(p.matches("/hooks"));
        assert!(!p.matches("/hooksx"));
        assert!(!PathMatch::Exact("/a".into()).matches("/a/b"));
        assert!(PathMatch::Exact("/a".into()).matches("/A/"));
        assert!(PathMatch::Exact("/".into()).matches("/"));
        assert!(p.matches("/HOOKS/x"));
    }

    #[test]
    fn shared_listen_address_is_refused() {
        let text = format!("admin: {{ listen: 127.0.0.1:8000 }}\n{MINIMAL}");
        let errs = errors(&text);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].contains("inbound.listen: 127.0.0.1:8000 is already used by admin.listen"),
            "{errs:?}"
        );
    }

    #[test]
    fn yaml_syntax_errors_have_a_position() {
        let errs = errors("inbound:\n  listen: [\n");
        assert!(errs[0].starts_with("test.yaml:"), "{errs:?}");
        assert!(errs[0].contains("invalid YAML"), "{errs:?}");
    }

    #[test]
    fn every_bad_retry_key_is_reported() {
        let text = "outbound:\n  endpoints:\n    - { name: e, url: \"http://x/\", sign: { scheme: rejento, secret: s }, retry: { preset: nope, schedule: [x], success_status: [99] } }\n";
        let errs = errors(text);
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs[0].contains("retry.preset: unknown preset"), "{errs:?}");
        assert!(
            errs[1].contains("retry.schedule[0]: expected a duration"),
            "{errs:?}"
        );
        assert!(
            errs[2].contains("retry.success_status[0]: expected an HTTP status"),
            "{errs:?}"
        );
    }

    #[test]
    fn sync_mode_takes_its_budget_and_fallback() {
        let endpoint = |extra: &str| {
            format!("outbound:\n  endpoints:\n    - {{ name: e, url: \"http://x/\", sign: {{ scheme: rejento, secret: s }}{extra} }}\n")
        };
        let config = load(&endpoint(
            ", mode: sync, sync_budget: 3s, sync_fallback: queue",
        ))
        .unwrap();
        assert_eq!(
            config.outbound.unwrap().endpoints[0].mode,
            DeliveryMode::Sync(SyncConfig {
                attempts: 3,
                budget: Duration::from_secs(3),
                fallback_queue: true
            })
        );
        let errs = errors(&endpoint(", sync_fallback: queue"));
        assert_eq!(
            errs,
            ["test.yaml:3:89: outbound.endpoints[0].sync_fallback: only applies with mode: sync"]
        );
        let errs = errors(&endpoint(", mode: later, "));
        assert!(
            errs[0].contains("mode: expected async or sync, found \"later\""),
            "{errs:?}"
        );
    }

    #[test]
    fn redis_store_settings_are_checked() {
        let store = |settings: &str| format!("store: {{ kind: redis, {settings} }}\n{MINIMAL}");
        let config = load(&store("url: \"rediss://:pw@redis:6380/2\", pool_size: 8")).unwrap();
        let StoreConfig::Redis(redis) = config.store else {
            panic!("expected redis");
        };
        assert_eq!(
            (redis.pool_size, redis.key_prefix.as_str()),
            (8, "hookgate:")
        );
        assert_eq!(redis.command_timeout, Duration::from_secs(1));
        let errs = errors(&store(
            "url: \"redis://redis:6379\", tls_ca: /nonexistent.pem, path: /data",
        ));
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs[0].contains("store.tls_ca: only applies to a rediss:// url"),
            "{errs:?}"
        );
        assert!(
            errs[1].contains("store.path: not used with kind: redis"),
            "{errs:?}"
        );
        let errs = errors(&store("url: \"http://redis\""));
        assert!(
            errs[0].contains("store.url: expected a URL starting with redis:// or rediss://"),
            "{errs:?}"
        );
    }

    #[test]
    fn empty_file_says_what_is_missing() {
        assert_eq!(
            errors(""),
            vec!["test.yaml:1:1: nothing to serve: configure inbound, outbound or both"]
        );
    }
}
