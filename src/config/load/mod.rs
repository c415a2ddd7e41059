//! Converts the YAML node tree into [`Config`], collecting every problem with its
//! file, line, column and key path instead of stopping at the first.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod admin;
mod auth;
mod catalog;
mod inbound;
mod operational;
mod outbound;
mod readers;
mod store;
mod subscription;
mod telemetry;

pub use crate::config::values::parse_destination;
use readers::{header_name, join, route_name, valid_header_name, Fields};

use super::retry;
use super::values::{
    host_and_port, http_scheme, interpolate, parse_duration, parse_rate, parse_size, redact_url,
    MAX_DURATION,
};
use super::yaml::{self, Key, Node, Position, Value};
use super::*;
use crate::schemes::crypto::{Algorithm, Encoding};
use crate::schemes::{self, HmacOptions, SecretEncoding, Template, TimestampFormat, SCHEME_NAMES};

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

/// Every problem found in a config file, in file order, one a line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", lines(.0))]
pub struct ConfigErrors(pub Vec<ConfigError>);

fn lines(errors: &[ConfigError]) -> String {
    let lines: Vec<String> = errors.iter().map(ConfigError::to_string).collect();
    lines.join("\n")
}

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

/// A delivery policy from JSON sent to the admin API (`retry`, `concurrency`, `rate_limit`
/// and `circuit`, as an endpoint's keys in the YAML; JSON is YAML). `${VAR}` is not read
/// from the environment here. The error is the first problem, with its key path.
pub fn delivery_policy_json(fields: &serde_json::Value) -> Result<DeliveryPolicy, ConfigError> {
    let mut loader = Loader {
        file: "request",
        env: &|_| None,
        errors: Vec::new(),
    };
    let policy = match yaml::parse(&fields.to_string()) {
        Ok(node) => loader
            .fields(
                &node,
                "",
                &["retry", "concurrency", "rate_limit", "circuit"],
            )
            .and_then(|f| loader.policy(&f)),
        Err(e) => {
            loader.error(e.at, "", e.message);
            None
        }
    };
    match (policy, loader.errors.into_iter().next()) {
        (Some(policy), None) => Ok(policy),
        (_, error) => Err(error.unwrap_or_else(|| ConfigError {
            file: "request".into(),
            line: 0,
            column: 0,
            path: String::new(),
            message: "not a delivery policy".into(),
        })),
    }
}

struct Loader<'a> {
    file: &'a str,
    env: &'a dyn Fn(&str) -> Option<String>,
    errors: Vec<ConfigError>,
}

const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9901";
const DEFAULT_MAX_BODY: u64 = 1 << 20;
/// Bodies are held in memory while they are verified; beyond this a sidecar is the wrong tool.
const MAX_BODY_LIMIT: u64 = 64 << 20;

impl Loader<'_> {
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
            &[
                "server",
                "admin",
                "store",
                "inbound",
                "outbound",
                "telemetry",
            ],
        )?;
        let telemetry = self.section(&top, "telemetry", Self::telemetry);
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
        let (inbound, mut outbound) = (inbound?, outbound?);
        // The `deliver: queue` routes are delivered by the outbound worker, which runs
        // without a listener when there is no `outbound:` section.
        let queued: Vec<QueuedRoute> = inbound
            .iter()
            .flat_map(|i| &i.routes)
            .filter_map(|r| match &r.deliver {
                Deliver::Queue(q) => Some((**q).clone()),
                Deliver::Proxy => None,
            })
            .collect();
        if !queued.is_empty() && outbound.is_none() {
            let mut worker_only = self.section(&top, "outbound", Self::outbound)?;
            worker_only.listen = None;
            outbound = Some(worker_only);
        }
        if let Some(outbound) = &mut outbound {
            outbound.routes = queued;
        }
        let config = Config {
            server: server?,
            admin: admin?,
            store: store.as_ref()?.0.clone(),
            store_encryption: store?.1,
            inbound,
            outbound,
            telemetry: telemetry?,
        };
        self.check_listeners(&config, &top);
        self.check_portal(&config, &top);
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
        let f = self.fields(
            node,
            path,
            &[
                "threads",
                "grace_period",
                "shutdown_timeout",
                "reload_settle",
            ],
        )?;
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
        // Long enough for an editor or a script that writes the file in place to finish.
        let reload_settle =
            self.with_default(&f, "reload_settle", Duration::from_secs(2), Self::duration);
        Some(ServerSettings {
            threads: threads?,
            grace_period: grace_period?,
            shutdown_timeout: shutdown_timeout?,
            reload_settle: reload_settle?,
        })
    }

    /// Two services cannot share one address.
    fn check_listeners(&mut self, config: &Config, top: &Fields) {
        let mut seen: Vec<(&str, SocketAddr)> = vec![("admin.listen", config.admin.listen)];
        if let Some(inbound) = &config.inbound {
            seen.push(("inbound.listen", inbound.listen));
        }
        if let Some(listen) = config.outbound.as_ref().and_then(|o| o.listen) {
            seen.push(("outbound.listen", listen));
        }
        if let Some(listen) = config.admin.portal.as_ref().and_then(|p| p.listen) {
            seen.push(("admin.portal.listen", listen));
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
            "http://h/a b",
            "http://h/a\r\nX-Injected: 1",
            "http://h/\"q\"",
            "http://h/<script>",
            "http://h/caf\u{e9}",
            "http://h/%zz",
            "http://h/p#frag",
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
                "test.yaml:8:7: inbound.routes[0].verfy: unknown key (expected one of: name, path, max_body, verify, dedupe, rate_limit, on_store_error, allow_underscore_headers, handshake, verify_token, deliver, ack_status, upstream, queue)",
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

    #[test]
    fn no_endpoint_may_take_the_per_request_destinations_name() {
        let text = "outbound:\n  endpoints:\n    - { name: dynamic, url: \"http://x/\", sign: { scheme: rejento, secret: s } }\n";
        let errs: Vec<String> = load(text)
            .unwrap_err()
            .0
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(
            errs[0].contains("outbound.endpoints[0].name: \"dynamic\" is reserved"),
            "{errs:?}"
        );
    }
}
