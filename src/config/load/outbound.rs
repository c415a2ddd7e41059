//! `outbound:`: the listener, endpoints, signing and retry policies.

use super::*;

const DEFAULT_OUTBOUND_LISTEN: &str = "127.0.0.1:9090";
/// Deliveries in flight at once over all endpoints: enough to keep a fast receiver busy
/// while the queue commits, small enough that memory and sockets stay modest.
const DEFAULT_OUTBOUND_CONCURRENCY: u32 = 256;
/// Dead letters are kept two weeks unless `dead_letter_ttl` says otherwise.
const DEAD_LETTER_TTL: Duration = Duration::from_secs(14 * 24 * 3600);

impl Loader<'_> {
    pub(super) fn outbound(&mut self, node: &Node, path: &str) -> Option<OutboundConfig> {
        let f = self.fields(
            node,
            path,
            &[
                "listen",
                "max_body",
                "endpoints",
                "secrets",
                "allow_private_destinations",
                "concurrency",
                "destinations",
                "events",
                "subscriptions",
                "proxy",
                "no_proxy",
                "event_types",
                "operational",
                "history",
                "dead_letter_ttl",
            ],
        )?;
        let proxy = self.proxy(&f);
        let event_types = self.with_default(&f, "event_types", Vec::new(), Self::event_types);
        let subscriptions = self.with_default(&f, "subscriptions", Vec::new(), |l, n, p| {
            let items = l.list(n, p)?;
            let subscriptions: Vec<_> = items
                .iter()
                .enumerate()
                .map(|(i, item)| l.subscription(item, &format!("{p}[{i}]")))
                .collect();
            let subscriptions = subscriptions.into_iter().collect::<Option<Vec<_>>>()?;
            for (i, s) in subscriptions.iter().enumerate() {
                if subscriptions[..i].iter().any(|o| o.id == s.id) {
                    l.error(
                        items[i].at,
                        &format!("{p}[{i}].id"),
                        "duplicate subscription id",
                    );
                }
            }
            Some(subscriptions)
        });
        let events = self.with_default(&f, "events", EventsConfig::default(), Self::events);
        let destinations = self.with_default(
            &f,
            "destinations",
            (DeliveryPolicy::default(), None, true, None),
            |l, n, p| {
                let f = l.fields(
                    n,
                    p,
                    &[
                        "retry",
                        "concurrency",
                        "rate_limit",
                        "circuit",
                        "tls",
                        "trace_propagation",
                        "auth",
                    ],
                )?;
                let tls = l.optional(&f, "tls", Self::egress_tls);
                let propagate = l.with_default(&f, "trace_propagation", true, Self::boolean);
                let auth = l.optional(&f, "auth", Self::receiver_auth);
                Some((l.policy(&f)?, tls?, propagate?, auth?))
            },
        );
        let concurrency = self.with_default(
            &f,
            "concurrency",
            DEFAULT_OUTBOUND_CONCURRENCY,
            |l, n, p| l.whole(n, p, 1..=65_536),
        );
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
        let operational =
            self.with_default(&f, "operational", Default::default(), Self::operational);
        let (operational, operational_endpoint) = operational?;
        let history = self.with_default(&f, "history", Default::default(), Self::history)?;
        let dead_letter_ttl = self.duration_or(&f, "dead_letter_ttl", DEAD_LETTER_TTL)?;
        if let (Some(events), Some(types), Some(subscriptions)) =
            (&events, &event_types, &subscriptions)
        {
            self.check_catalog(&f, events, types, subscriptions);
        }
        let mut endpoints = endpoints?;
        if let Some(endpoint) = operational_endpoint {
            if endpoints.iter().any(|e| e.name == endpoint.name) {
                let at = f.get("operational").map_or(f.at, |n| n.at);
                let message = "an endpoint is named operational: outbound.operational's endpoint takes that name";
                self.error(at, &f.path("operational"), message);
                return None;
            }
            endpoints.push(endpoint);
        }
        Some(OutboundConfig {
            listen: Some(listen?),
            operational,
            history,
            dead_letter_ttl,
            routes: Vec::new(),
            event_types: event_types?,
            secrets: secrets?,
            allow_private_destinations: allow?,
            max_body: max_body?,
            concurrency: concurrency?,
            destinations: destinations.as_ref()?.0.clone(),
            destinations_tls: destinations.as_ref()?.1.clone(),
            destinations_trace_propagation: destinations.as_ref()?.2,
            destinations_auth: destinations?.3,
            endpoints,
            events: events?,
            subscriptions: subscriptions?,
            proxy: proxy?,
        })
    }

    /// `proxy` (a secret: it may hold credentials) and `no_proxy`; without `proxy`, the
    /// standard `HTTPS_PROXY` (or `HTTP_PROXY`) and `NO_PROXY` variables.
    fn proxy(&mut self, f: &Fields) -> Option<Option<ProxyConfig>> {
        let no_proxy = self.optional(f, "no_proxy", |l, n, p| l.each(n, p, Self::string))?;
        let (url, at, path) = match f.get("proxy") {
            Some(node) => (
                self.secret(node, &f.path("proxy"))?,
                node.at,
                f.path("proxy"),
            ),
            None => {
                let env = |name: &str| (self.env)(name).filter(|v| !v.is_empty());
                let Some(url) = ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"]
                    .into_iter()
                    .find_map(env)
                else {
                    return Some(None);
                };
                (Secret::new(url), f.at, "HTTPS_PROXY".to_string())
            }
        };
        let no_proxy = no_proxy.unwrap_or_else(|| {
            ["NO_PROXY", "no_proxy"]
                .into_iter()
                .find_map(|name| (self.env)(name))
                .map(|list| {
                    list.split(',')
                        .map(str::trim)
                        .filter(|p| !p.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        });
        match ProxyConfig::parse(url.expose(), no_proxy) {
            Ok(proxy) => Some(Some(proxy)),
            Err(e) => {
                // The message never repeats the URL: it may hold a password.
                self.error(at, &path, e);
                None
            }
        }
    }

    /// `events`: `type` and `tenant` (lists of sources), `labels` (a mapping of names to
    /// sources).
    fn events(&mut self, node: &Node, path: &str) -> Option<EventsConfig> {
        let f = self.fields(node, path, &["type", "tenant", "labels", "validate"])?;
        let validate = self.with_default(&f, "validate", false, Self::boolean);
        let defaults = EventsConfig::default();
        let sources = |l: &mut Self, n: &Node, p: &str| {
            let list = l.each(n, p, |l, item, p| l.parsed(item, p, EventSource::parse))?;
            if list.is_empty() {
                l.error(n.at, p, "give at least one source");
                return None;
            }
            Some(list)
        };
        let event_type = self.with_default(&f, "type", defaults.event_type, sources);
        let tenant = self.with_default(&f, "tenant", defaults.tenant, sources);
        let labels = self.with_default(&f, "labels", Vec::new(), |l, n, p| {
            let Value::Map(entries) = &n.value else {
                l.error(
                    n.at,
                    p,
                    format!(
                        "expected a mapping of label names to sources, found {}",
                        n.value.kind()
                    ),
                );
                return None;
            };
            let labels: Vec<_> = entries
                .iter()
                .map(|(k, v)| {
                    l.parsed(v, &join(p, &k.name), EventSource::parse)
                        .map(|s| (k.name.to_ascii_lowercase(), s))
                })
                .collect();
            labels.into_iter().collect::<Option<Vec<_>>>()
        });
        Some(EventsConfig {
            event_type: event_type?,
            tenant: tenant?,
            labels: labels?,
            validate: validate?,
        })
    }

    pub(super) fn endpoint(&mut self, node: &Node, path: &str) -> Option<EndpointConfig> {
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
                "tls",
                "trace_propagation",
                "auth",
            ],
        )?;
        let trace_propagation = self.with_default(&f, "trace_propagation", true, Self::boolean);
        let auth = self.optional(&f, "auth", Self::receiver_auth);
        let policy = self.policy(&f);
        let tls = self.optional(&f, "tls", Self::egress_tls);
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
            .and_then(|n| self.parsed(n, &f.path("name"), endpoint_name));
        let url = self
            .required(&f, "url")
            .and_then(|n| self.parsed(n, &f.path("url"), parse_destination));
        let sign = self
            .required(&f, "sign")
            .and_then(|n| self.sign(n, &f.path("sign")));
        let mode = self.mode(&f);
        Some(EndpointConfig {
            name: name?,
            url: url?,
            url_match: url_match?,
            sign: sign?,
            policy: policy?,
            mode: mode?,
            tls: tls?,
            trace_propagation: trace_propagation?,
            auth: auth?,
        })
    }

    /// An endpoint's `tls`: `ca`, `cert` with `key`, `min_version`. The files must be
    /// readable PEM now; they are read again when they change.
    pub(super) fn egress_tls(&mut self, node: &Node, path: &str) -> Option<EgressTls> {
        let f = self.fields(node, path, &["ca", "cert", "key", "min_version"])?;
        let file = |l: &mut Self, n: &Node, p: &str| {
            let text = l.string(n, p)?;
            match std::fs::read_to_string(&text) {
                Ok(pem) if pem.contains("-----BEGIN ") => Some(PathBuf::from(text)),
                Ok(_) => {
                    l.error(n.at, p, format!("{text} holds no PEM block"));
                    None
                }
                Err(e) => {
                    l.error(n.at, p, format!("cannot read {text}: {e}"));
                    None
                }
            }
        };
        let ca = self.optional(&f, "ca", file);
        let cert = self.optional(&f, "cert", file);
        let key = self.optional(&f, "key", file);
        let min_version = self.with_default(&f, "min_version", TlsVersion::V1_2, |l, n, p| {
            l.parsed(n, p, |s| match s {
                "1.2" => Ok(TlsVersion::V1_2),
                "1.3" => Ok(TlsVersion::V1_3),
                other => Err(format!("expected \"1.2\" or \"1.3\", found {other:?}")),
            })
        });
        let (ca, cert, key, min_version) = (ca?, cert?, key?, min_version?);
        let client = match (cert, key) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => {
                self.error(f.at, path, "cert and key go together");
                return None;
            }
        };
        // What rustls would refuse only at the first delivery: found now.
        let now = crate::clock::unix_now() as i64;
        let checks = ca.iter().map(|ca| (ca, None, "ca"));
        let checks = checks.chain(client.iter().map(|(cert, key)| (cert, Some(key), "cert")));
        for (file, key, name) in checks {
            if let Err(e) = crate::pem::check_chain(file, key.map(PathBuf::as_path), now) {
                let at = f.get(name).map_or(f.at, |n| n.at);
                self.error(at, &f.path(name), e);
                return None;
            }
        }
        Some(EgressTls {
            ca,
            client,
            min_version,
        })
    }

    /// `retry`, `concurrency`, `rate_limit` and `circuit` of an endpoint, or of
    /// `outbound.destinations` (the policy of every per-request destination).
    pub(super) fn policy(&mut self, f: &Fields) -> Option<DeliveryPolicy> {
        let defaults = DeliveryPolicy::default();
        let concurrency = self.with_default(f, "concurrency", defaults.concurrency, |l, n, p| {
            l.whole(n, p, 1..=1024)
        });
        let rate_limit = self.optional(f, "rate_limit", |l, n, p| l.parsed(n, p, parse_rate));
        let circuit = self.with_default(f, "circuit", defaults.circuit, |l, n, p| {
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
        let retry = self.with_default(f, "retry", defaults.retry, Self::retry);
        Some(DeliveryPolicy {
            retry: retry?,
            concurrency: concurrency?,
            rate_limit: rate_limit?,
            circuit: circuit?,
        })
    }

    /// `mode: async | sync`, with `sync_attempts`, `sync_budget` and `sync_fallback`
    /// for sync endpoints only.
    pub(super) fn mode(&mut self, f: &Fields) -> Option<DeliveryMode> {
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

    pub(super) fn sign(&mut self, node: &Node, path: &str) -> Option<SignConfig> {
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

    pub(super) fn retry(&mut self, node: &Node, path: &str) -> Option<RetryPolicy> {
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
}

/// An endpoint's name: a route name, other than the one messages to per-request
/// destinations are filed under.
fn endpoint_name(s: &str) -> Result<String, String> {
    if s == DYNAMIC_ENDPOINT {
        return Err(format!(
            "{DYNAMIC_ENDPOINT:?} is reserved for per-request destinations; choose another name"
        ));
    }
    if s == SUBSCRIPTIONS_ENDPOINT || s == EVENTS_PATH {
        return Err(format!(
            "{s:?} is reserved for subscriptions (POST /events); choose another name"
        ));
    }
    route_name(s)
}
