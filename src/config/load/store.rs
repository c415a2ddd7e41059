//! `store:`: the embedded files or Redis.

use super::*;

const DEFAULT_STORE_PATH: &str = "./hookgate-data";
const EMBEDDED_KEYS: &[&str] = &["path", "max_ids"];
const REDIS_KEYS: &[&str] = &[
    "url",
    "key_prefix",
    "pool_size",
    "connect_timeout",
    "command_timeout",
    "tls_ca",
    "cluster",
];

impl Loader<'_> {
    /// The store, and `encryption` (both kinds take it).
    pub(super) fn store(
        &mut self,
        node: &Node,
        path: &str,
    ) -> Option<(StoreConfig, Option<StoreEncryption>)> {
        let keys = [&["kind", "encryption"], EMBEDDED_KEYS, REDIS_KEYS].concat();
        let f = self.fields(node, path, &keys)?;
        let encryption = self.optional(&f, "encryption", Self::encryption);
        let store = self.store_kind(&f);
        Some((store?, encryption?))
    }

    /// `encryption: { keys: [...] }`: each a secret holding 32 bytes as base64.
    fn encryption(&mut self, node: &Node, path: &str) -> Option<StoreEncryption> {
        let f = self.fields(node, path, &["keys"])?;
        let list = self.required(&f, "keys")?;
        let keys = self.each(list, &f.path("keys"), |l, n, p| {
            let secret = l.secret(n, p)?;
            l.parsed(n, p, |_| StoreKey::parse(secret.expose()))
        })?;
        if keys.is_empty() {
            self.error(
                list.at,
                &f.path("keys"),
                "give at least one key (the first seals)",
            );
            return None;
        }
        if let Some(i) = (1..keys.len()).find(|&i| keys[..i].contains(&keys[i])) {
            self.error(
                list.at,
                &format!("{}[{i}]", f.path("keys")),
                "the same key twice",
            );
            return None;
        }
        Some(StoreEncryption { keys })
    }

    fn store_kind(&mut self, f: &Fields) -> Option<StoreConfig> {
        let kind = self.with_default(f, "kind", "embedded".to_string(), Self::string)?;
        match kind.as_str() {
            "embedded" => {
                self.not_allowed(f, REDIS_KEYS, "with kind: embedded");
                let dir =
                    self.with_default(f, "path", DEFAULT_STORE_PATH.to_string(), Self::string)?;
                let max_ids = self.with_default(f, "max_ids", 1_000_000, |l, n, p| {
                    l.whole(n, p, 1..=u32::MAX).map(|m| m as usize)
                })?;
                Some(StoreConfig::Embedded {
                    path: PathBuf::from(dir),
                    max_ids,
                })
            }
            "redis" => {
                self.not_allowed(f, EMBEDDED_KEYS, "with kind: redis");
                let url = self
                    .required(f, "url")
                    .and_then(|n| self.secret(n, &f.path("url")));
                let key_prefix =
                    self.with_default(f, "key_prefix", "hookgate:".to_string(), Self::string);
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
                    self.with_default(f, "pool_size", 4, |l, n, p| l.whole(n, p, 1..=64));
                let connect_timeout =
                    self.duration_or(f, "connect_timeout", Duration::from_secs(2));
                let command_timeout =
                    self.duration_or(f, "command_timeout", Duration::from_secs(1));
                let tls = url
                    .as_ref()
                    .is_some_and(|u| u.expose().starts_with("rediss://"));
                let tls_ca = self.optional(f, "tls_ca", |l, n, p| {
                    l.parsed(n, p, |s| {
                        if !tls {
                            return Err("only applies to a rediss:// url".to_string());
                        }
                        std::fs::metadata(s)
                            .map(|_| PathBuf::from(s))
                            .map_err(|e| format!("cannot read {s}: {e}"))
                    })
                });
                let cluster = self.with_default(f, "cluster", false, Self::boolean);
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
}
