//! `inbound:`: the listener, its limits, and the routes with their verification, dedupe
//! and rate limits.

use super::*;

/// `verify:` keys every scheme takes; `hmac` takes [`HMAC_KEYS`] as well.
/// Keys a route's rate limit holds at most in this process: about 10 MB at 100 bytes each.
const DEFAULT_RATE_LIMIT_KEYS: usize = 100_000;

const VERIFY_KEYS: &[&str] = &["scheme", "secrets", "tolerance", "url", "keep_credentials"];
const HMAC_KEYS: &[&str] = &[
    "header",
    "algorithm",
    "encoding",
    "prefix",
    "timestamp_header",
    "id_header",
    "signed_content",
    "secret_encoding",
    "timestamp_format",
];

/// What a route's handshake needs and the route lacks: Slack's and Zoom's are signed with
/// their scheme, X's answer is an HMAC with the route's secret, Meta's compares a token.
fn handshake_lacks(
    handshake: Option<Handshake>,
    verify: &Verify,
    verify_token: bool,
) -> Option<String> {
    let scheme = match verify {
        Verify::Scheme(v) => Some(v.scheme_name()),
        Verify::None => None,
    };
    match handshake {
        Some(h @ (Handshake::Slack | Handshake::Zoom)) if scheme != Some(h.name()) => {
            Some(format!(
                "handshake: {0} needs verify with scheme {0} (its handshake is signed)",
                h.name()
            ))
        }
        Some(Handshake::X) if scheme.is_none() => Some(
            "handshake: x needs verify with the consumer secret (its answer is an HMAC)".into(),
        ),
        Some(Handshake::Meta) if !verify_token => {
            Some("handshake: meta needs verify_token (Meta's hub.verify_token)".into())
        }
        Some(Handshake::Meta) => None,
        _ if verify_token => Some("verify_token is only for handshake: meta".into()),
        _ => None,
    }
}

impl Loader<'_> {
    pub(super) fn inbound(&mut self, node: &Node, path: &str) -> Option<InboundConfig> {
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
        let (upstream, mut routes) = (upstream?, routes?);
        for route in &mut routes {
            if let Deliver::Queue(queued) = &mut route.deliver {
                if queued.upstream.port == 0 {
                    queued.upstream = upstream.clone();
                }
            }
        }
        Some(InboundConfig {
            limits,
            listen: listen?,
            tls: tls?,
            upstream,
            max_body: max_body?,
            body_timeout: body_timeout?,
            connect_timeout: connect_timeout?,
            upstream_timeout: upstream_timeout?,
            routes,
        })
    }

    /// A PEM certificate chain and key, checked now so a bad file stops the start, not one listener.
    pub(super) fn tls(&mut self, node: &Node, path: &str) -> Option<TlsConfig> {
        let f = self.fields(node, path, &["cert", "key"])?;
        let cert = self
            .required(&f, "cert")
            .and_then(|n| self.string(n, &f.path("cert")));
        let key = self
            .required(&f, "key")
            .and_then(|n| self.string(n, &f.path("key")));
        let (cert, key) = (cert?, key?);
        match pingora::tls::load_certs_and_key_files(&cert, &key) {
            Ok(Some(_)) => {
                let now = crate::clock::unix_now() as i64;
                if let Err(e) =
                    crate::pem::check_chain(Path::new(&cert), Some(Path::new(&key)), now)
                {
                    self.error(f.at, path, e);
                    return None;
                }
                Some(TlsConfig {
                    cert: PathBuf::from(cert),
                    key: PathBuf::from(key),
                })
            }
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

    pub(super) fn upstream(&mut self, node: &Node, path: &str) -> Option<Upstream> {
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

    pub(super) fn routes(&mut self, node: &Node, path: &str) -> Option<Vec<RouteConfig>> {
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

    pub(super) fn route(&mut self, node: &Node, path: &str) -> Option<RouteConfig> {
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
                "allow_underscore_headers",
                "handshake",
                "verify_token",
                "deliver",
                "ack_status",
                "upstream",
                "queue",
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
        let allow_underscore_headers =
            self.with_default(&f, "allow_underscore_headers", false, Self::boolean);
        let handshake = self.optional(&f, "handshake", |l, n, p| {
            l.parsed(n, p, |s| {
                Handshake::ALL
                    .into_iter()
                    .find(|h| h.name() == s)
                    .ok_or_else(|| {
                        let names: Vec<&str> = Handshake::ALL.iter().map(|h| h.name()).collect();
                        format!("expected one of {}, found {s:?}", names.join(", "))
                    })
            })
        });
        let verify_token = self.optional(&f, "verify_token", Self::secret);
        let deliver = self.deliver(&f, name.as_deref().unwrap_or_default());
        let (verify, handshake, verify_token) = (verify?, handshake?, verify_token?);
        if let Some(why) = handshake_lacks(handshake, &verify, verify_token.is_some()) {
            let key = if f.get("verify_token").is_some() && handshake != Some(Handshake::Meta) {
                "verify_token"
            } else {
                "handshake"
            };
            let at = f.get(key).map_or(f.at, |n| n.at);
            self.error(at, &f.path(key), why);
            return None;
        }
        Some(RouteConfig {
            deliver: deliver?,
            handshake,
            verify_token,
            allow_underscore_headers: allow_underscore_headers?,
            name: name?,
            path: route_path?,
            max_body: max_body?,
            verify,
            dedupe: dedupe?,
            rate_limit: rate_limit?,
            on_store_error: on_store_error?,
        })
    }

    /// `deliver: proxy | queue`, and for `queue` its `ack_status`, `upstream` and `queue:`
    /// settings. The route's own upstream is filled in from `inbound.upstream` afterwards.
    fn deliver(&mut self, f: &Fields, name: &str) -> Option<Deliver> {
        let queued = self.with_default(f, "deliver", false, |l, n, p| {
            l.parsed(n, p, |s| match s {
                "proxy" => Ok(false),
                "queue" => Ok(true),
                other => Err(format!("expected proxy or queue, found {other:?}")),
            })
        })?;
        if !queued {
            for key in ["ack_status", "upstream", "queue"] {
                if let Some(node) = f.get(key) {
                    self.error(node.at, &f.path(key), "only applies with deliver: queue");
                }
            }
            return Some(Deliver::Proxy);
        }
        let ack_status = self.with_default(f, "ack_status", 200, |l, n, p| {
            l.whole(n, p, 200..=299).map(|s| s as u16)
        });
        let upstream = self.optional(f, "upstream", Self::upstream);
        let empty = Node {
            value: Value::Map(Vec::new()),
            at: f.at,
        };
        let node = f.get("queue").unwrap_or(&empty);
        let q = self.fields(
            node,
            &f.path("queue"),
            &[
                "retry",
                "concurrency",
                "rate_limit",
                "circuit",
                "timeout",
                "dead_on_4xx",
                "max_depth",
                "order",
            ],
        )?;
        let policy = self.policy(&q);
        let timeout = self.optional(&q, "timeout", Self::positive_duration);
        let dead_on_4xx = self.with_default(&q, "dead_on_4xx", true, Self::boolean);
        let max_depth = self.optional(&q, "max_depth", |l, n, p| l.whole(n, p, 1..=u32::MAX));
        let order = self.optional(&q, "order", |l, n, p| {
            l.parsed(n, p, |s| {
                if s == "route" {
                    Ok(OrderSource::Route)
                } else if let Some(name) =
                    s.strip_prefix("header:").filter(|h| valid_header_name(h))
                {
                    Ok(OrderSource::Header(name.to_ascii_lowercase()))
                } else if let Some(pointer) = s.strip_prefix("json:").filter(|p| p.starts_with('/'))
                {
                    Ok(OrderSource::Json(pointer.to_string()))
                } else {
                    Err(format!(
                        "expected header:NAME, json:/pointer or route, found {s:?}"
                    ))
                }
            })
        });
        let mut policy = policy?;
        if let Some(timeout) = timeout? {
            policy.retry.timeout = timeout;
        }
        Some(Deliver::Queue(Box::new(QueuedRoute {
            name: name.to_string(),
            // Until `inbound.upstream` fills it in.
            upstream: upstream?.unwrap_or(Upstream {
                tls: false,
                host: String::new(),
                port: 0,
            }),
            policy,
            dead_on_4xx: dead_on_4xx?,
            ack_status: ack_status?,
            max_depth: max_depth?.map(u64::from),
            order: order?,
        })))
    }

    pub(super) fn verify(&mut self, node: &Node, path: &str) -> Option<Verify> {
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
        let f = self.fields(node, path, &[VERIFY_KEYS, HMAC_KEYS].concat())?;
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

    pub(super) fn hmac_options(&mut self, f: &Fields) -> Option<HmacOptions> {
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
        let timestamp_format = self.with_default(
            f,
            "timestamp_format",
            TimestampFormat::UnixSeconds,
            |l, n, p| l.parsed(n, p, TimestampFormat::parse_name),
        );
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
            timestamp_format: timestamp_format?,
            signature_list: None,
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

    pub(super) fn dedupe(&mut self, node: &Node, path: &str) -> Option<DedupeConfig> {
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

    pub(super) fn rate_limit(&mut self, node: &Node, path: &str) -> Option<RateLimitConfig> {
        let f = self.fields(node, path, &["key", "limit", "burst", "max_keys"])?;
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
        let max_keys = self.with_default(&f, "max_keys", DEFAULT_RATE_LIMIT_KEYS, |l, n, p| {
            l.whole(n, p, 1..=100_000_000).map(|n| n as usize)
        });
        let (limit, burst, max_keys) = (limit?, burst?, max_keys?);
        // A limiter holds up to `burst` requests' worth of time: keep it within MAX_DURATION.
        let capacity = burst.unwrap_or(limit.count);
        let window = limit.per_request().checked_mul(capacity);
        if window.is_none_or(|w| w > MAX_DURATION) {
            let at = f.get("burst").map_or(f.at, |n| n.at);
            self.error(
                at,
                &f.path("burst"),
                format!("a burst of {capacity} at this rate takes longer than 365d to earn back"),
            );
            return None;
        }
        Some(RateLimitConfig {
            key: key?,
            limit,
            burst,
            max_keys,
        })
    }
}
