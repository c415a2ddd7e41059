//! `telemetry:`: where traces go, how many are kept, and what the resource says. The
//! standard `OTEL_*` variables apply to whatever the file leaves out.

use super::*;

const DEFAULT_SERVICE_NAME: &str = "hookgate";
const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// Set by `hookgate inject` from the downward API.
const POD_NAME_VAR: &str = "HOOKGATE_POD_NAME";
const POD_NAMESPACE_VAR: &str = "HOOKGATE_POD_NAMESPACE";

impl Loader<'_> {
    pub(super) fn telemetry(&mut self, node: &Node, path: &str) -> Option<TelemetryConfig> {
        let f = self.fields(
            node,
            path,
            &["otlp", "sampling", "service_name", "resource"],
        )?;
        let otlp = match f.get("otlp") {
            Some(node) => self.otlp(node, &f.path("otlp")),
            None => self.otlp_from_env(f.at, &f.path("otlp")),
        };
        let env_sampling = (self.env)("OTEL_TRACES_SAMPLER_ARG");
        let sampling = match (f.get("sampling"), env_sampling) {
            (Some(node), _) => self.ratio(node, &f.path("sampling")),
            (None, Some(value)) => match value.trim().parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => Some(r),
                _ => {
                    self.error(
                        f.at,
                        &f.path("sampling"),
                        format!("OTEL_TRACES_SAMPLER_ARG: expected a ratio from 0.0 to 1.0, found {value:?}"),
                    );
                    None
                }
            },
            (None, None) => Some(1.0),
        };
        let service_name = match f.get("service_name") {
            Some(node) => self.string(node, &f.path("service_name")),
            None => Some(
                (self.env)("OTEL_SERVICE_NAME")
                    .filter(|s| !s.trim().is_empty())
                    .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_string()),
            ),
        };
        let mut resource = vec![
            ("service.name".to_string(), service_name?),
            (
                "service.version".to_string(),
                env!("CARGO_PKG_VERSION").to_string(),
            ),
        ];
        for (var, key) in [
            (POD_NAME_VAR, "k8s.pod.name"),
            (POD_NAMESPACE_VAR, "k8s.namespace.name"),
        ] {
            if let Some(value) = (self.env)(var).filter(|v| !v.is_empty()) {
                resource.push((key.to_string(), value));
            }
        }
        if let Some(list) = (self.env)("OTEL_RESOURCE_ATTRIBUTES") {
            resource.extend(key_value_list(&list));
        }
        let configured = self.with_default(&f, "resource", Vec::new(), |l, n, p| {
            let Value::Map(entries) = &n.value else {
                l.error(
                    n.at,
                    p,
                    format!(
                        "expected a mapping of attribute names to values, found {}",
                        n.value.kind()
                    ),
                );
                return None;
            };
            let pairs: Vec<_> = entries
                .iter()
                .map(|(k, v)| l.string(v, &join(p, &k.name)).map(|v| (k.name.clone(), v)))
                .collect();
            pairs.into_iter().collect::<Option<Vec<_>>>()
        });
        resource.extend(configured?);
        // A later value for a key wins; service.name is decided above.
        let mut unique: Vec<(String, String)> = Vec::new();
        for (key, value) in resource {
            match unique.iter_mut().find(|(k, _)| *k == key) {
                Some(_) if key == "service.name" => {}
                Some(existing) => existing.1 = value,
                None => unique.push((key, value)),
            }
        }
        Some(TelemetryConfig {
            otlp: otlp?,
            sampling: sampling?,
            resource: unique,
        })
    }

    /// `telemetry.otlp`: `endpoint` (or the environment's), `headers`, `timeout`.
    fn otlp(&mut self, node: &Node, path: &str) -> Option<Option<OtlpConfig>> {
        let f = self.fields(node, path, &["endpoint", "headers", "timeout"])?;
        let endpoint = match f.get("endpoint") {
            Some(node) => self
                .parsed(node, &f.path("endpoint"), |s| traces_url(s, true))
                .map(Some),
            None => self.endpoint_from_env(f.at, &f.path("endpoint")),
        };
        let headers = match f.get("headers") {
            Some(node) => {
                let p = f.path("headers");
                let Value::Map(entries) = &node.value else {
                    self.error(
                        node.at,
                        &p,
                        format!(
                            "expected a mapping of header names to values, found {}",
                            node.value.kind()
                        ),
                    );
                    return None;
                };
                let headers: Vec<_> = entries
                    .iter()
                    .map(|(k, v)| {
                        if !valid_header_name(&k.name) {
                            self.error(k.at, &join(&p, &k.name), "not a valid header name");
                        }
                        self.secret(v, &join(&p, &k.name))
                            .map(|s| (k.name.clone(), s))
                    })
                    .collect();
                headers.into_iter().collect::<Option<Vec<_>>>()
            }
            None => Some(self.headers_from_env()),
        };
        let timeout = match f.get("timeout") {
            Some(node) => self.positive_duration(node, &f.path("timeout")),
            None => Some(self.timeout_from_env()),
        };
        let Some(endpoint) = endpoint? else {
            self.error(
                f.at,
                &f.path("endpoint"),
                "give the collector's URL (or set OTEL_EXPORTER_OTLP_ENDPOINT)",
            );
            return None;
        };
        Some(Some(OtlpConfig {
            endpoint,
            headers: headers?,
            timeout: timeout?,
        }))
    }

    /// Export configured by the environment alone, or none.
    fn otlp_from_env(&mut self, at: Position, path: &str) -> Option<Option<OtlpConfig>> {
        let Some(endpoint) = self.endpoint_from_env(at, &join(path, "endpoint"))? else {
            return Some(None);
        };
        Some(Some(OtlpConfig {
            endpoint,
            headers: self.headers_from_env(),
            timeout: self.timeout_from_env(),
        }))
    }

    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as it is) or `OTEL_EXPORTER_OTLP_ENDPOINT`
    /// (a base, `/v1/traces` added).
    fn endpoint_from_env(&mut self, at: Position, path: &str) -> Option<Option<Destination>> {
        let env = |var: &str| (self.env)(var).filter(|v| !v.trim().is_empty());
        let (var, url, base) = match (
            env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            env("OTEL_EXPORTER_OTLP_ENDPOINT"),
        ) {
            (Some(url), _) => ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", url, false),
            (None, Some(url)) => ("OTEL_EXPORTER_OTLP_ENDPOINT", url, true),
            (None, None) => return Some(None),
        };
        match traces_url(url.trim(), base) {
            Ok(d) => Some(Some(d)),
            Err(e) => {
                self.error(at, path, format!("{var}: {e}"));
                None
            }
        }
    }

    fn headers_from_env(&self) -> Vec<(String, Secret)> {
        let list = (self.env)("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
            .or_else(|| (self.env)("OTEL_EXPORTER_OTLP_HEADERS"))
            .unwrap_or_default();
        key_value_list(&list)
            .into_iter()
            .filter(|(k, _)| valid_header_name(k))
            .map(|(k, v)| (k, Secret::new(v)))
            .collect()
    }

    /// `OTEL_EXPORTER_OTLP_TIMEOUT`, in milliseconds.
    fn timeout_from_env(&self) -> Duration {
        (self.env)("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
            .or_else(|| (self.env)("OTEL_EXPORTER_OTLP_TIMEOUT"))
            .and_then(|ms| ms.trim().parse::<u64>().ok())
            .filter(|ms| *ms > 0)
            .map_or(DEFAULT_EXPORT_TIMEOUT, Duration::from_millis)
    }

    /// A number from 0.0 to 1.0.
    fn ratio(&mut self, node: &Node, path: &str) -> Option<f64> {
        let ratio = match node.value {
            Value::Float(f) => f,
            Value::Int(i) => i as f64,
            _ => f64::NAN,
        };
        if (0.0..=1.0).contains(&ratio) {
            Some(ratio)
        } else {
            self.error(node.at, path, "expected a ratio from 0.0 to 1.0");
            None
        }
    }
}

/// The URL spans are posted to: a base URL gets `/v1/traces` after its path.
fn traces_url(url: &str, base: bool) -> Result<Destination, String> {
    let mut destination = parse_destination(url)?;
    if destination.path.contains('?') {
        return Err("an OTLP endpoint takes no query".into());
    }
    if base {
        destination.path = format!("{}/v1/traces", destination.path.trim_end_matches('/'));
    }
    Ok(destination)
}

/// `key1=value1,key2=value2`, values percent-decoded (the OTel environment format).
fn key_value_list(list: &str) -> Vec<(String, String)> {
    list.split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| {
            let value = percent_encoding::percent_decode_str(v.trim()).decode_utf8_lossy();
            (k.trim().to_string(), value.into_owned())
        })
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::load_str;

    fn load(text: &str, vars: &[(&str, &str)]) -> Result<crate::config::Config, Vec<String>> {
        let env = |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        };
        load_str("t.yaml", text, &env).map_err(|e| e.0.iter().map(|e| e.to_string()).collect())
    }

    const BASE: &str = "outbound: {endpoints: []}\n";

    #[test]
    fn no_endpoint_means_no_export() {
        let config = load(BASE, &[]).unwrap();
        assert!(config.telemetry.otlp.is_none());
        assert_eq!(config.telemetry.sampling, 1.0);
        assert_eq!(
            config.telemetry.resource[0],
            ("service.name".into(), "hookgate".into())
        );
    }

    #[test]
    fn the_file_takes_a_base_url_headers_sampling_and_resource() {
        let text = format!(
            "{BASE}telemetry:\n  otlp:\n    endpoint: http://collector:4318/otel/\n    headers: {{x-api-key: \"${{KEY}}\"}}\n    timeout: 2s\n  sampling: 0.25\n  resource: {{deployment.environment: prod}}\n"
        );
        let config = load(&text, &[("KEY", "k-1"), ("HOOKGATE_POD_NAME", "app-7")]).unwrap();
        let otlp = config.telemetry.otlp.unwrap();
        assert_eq!(
            otlp.endpoint.to_string(),
            "http://collector:4318/otel/v1/traces"
        );
        assert_eq!(otlp.headers[0].1.expose(), "k-1");
        assert_eq!(otlp.timeout, std::time::Duration::from_secs(2));
        assert_eq!(config.telemetry.sampling, 0.25);
        let resource = config.telemetry.resource;
        assert!(resource.contains(&("k8s.pod.name".into(), "app-7".into())));
        assert!(resource.contains(&("deployment.environment".into(), "prod".into())));
    }

    #[test]
    fn the_standard_variables_turn_export_on() {
        let config = load(
            BASE,
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
                (
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "authorization=Bearer%20t,x-b=2",
                ),
                ("OTEL_SERVICE_NAME", "checkout-hooks"),
                ("OTEL_TRACES_SAMPLER_ARG", "0.5"),
                (
                    "OTEL_RESOURCE_ATTRIBUTES",
                    "team=payments,service.name=ignored",
                ),
            ],
        )
        .unwrap();
        let t = config.telemetry;
        let otlp = t.otlp.unwrap();
        assert_eq!(otlp.endpoint.to_string(), "http://127.0.0.1:4318/v1/traces");
        assert_eq!(otlp.headers[0].1.expose(), "Bearer t");
        assert_eq!(t.sampling, 0.5);
        assert_eq!(
            t.resource[0],
            ("service.name".into(), "checkout-hooks".into())
        );
        assert!(t.resource.contains(&("team".into(), "payments".into())));
        // The traces variable is a whole URL.
        let config = load(
            BASE,
            &[(
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "https://otel.example.com/in/traces",
            )],
        )
        .unwrap();
        assert_eq!(
            config.telemetry.otlp.unwrap().endpoint.to_string(),
            "https://otel.example.com:443/in/traces"
        );
    }

    #[test]
    fn bad_values_are_reported_with_their_source() {
        let text = format!("{BASE}telemetry:\n  sampling: 1.5\n  otlp: {{endpoint: ftp://x}}\n");
        let errors = load(&text, &[]).unwrap_err().join("\n");
        assert!(errors.contains("telemetry.sampling"), "{errors}");
        assert!(errors.contains("telemetry.otlp.endpoint"), "{errors}");
        let errors = load(BASE, &[("OTEL_EXPORTER_OTLP_ENDPOINT", "not a url")])
            .unwrap_err()
            .join("\n");
        assert!(errors.contains("OTEL_EXPORTER_OTLP_ENDPOINT"), "{errors}");
        let errors = load(
            &format!("{BASE}telemetry: {{otlp: {{timeout: 1s}}}}\n"),
            &[],
        )
        .unwrap_err()
        .join("\n");
        assert!(errors.contains("OTEL_EXPORTER_OTLP_ENDPOINT"), "{errors}");
    }
}
