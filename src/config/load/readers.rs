//! Readers for the values every section uses: strings, secrets, durations, sizes, lists,
//! and the mappings whose keys are checked.

use super::*;
pub(super) use crate::config::values::valid_header_name;

/// The entries of one YAML mapping, already checked for unknown keys.
pub(super) struct Fields<'n> {
    pub(super) entries: &'n [(Key, Node)],
    pub(super) at: Position,
    pub(super) path: String,
}

impl<'n> Fields<'n> {
    /// The value of `key`; an explicit null counts as absent.
    pub(super) fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, v)| k.name == key && !matches!(v.value, Value::Null))
            .map(|(_, v)| v)
    }

    pub(super) fn path(&self, key: &str) -> String {
        join(&self.path, key)
    }
}

pub(super) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl Loader<'_> {
    pub(super) fn error(&mut self, at: Position, path: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.to_string(),
            line: at.line,
            column: at.column,
            path: path.to_string(),
            message: message.into(),
        });
    }

    /// A mapping whose keys must all be in `allowed`; unknown keys are reported one by one.
    pub(super) fn fields<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        allowed: &[&str],
    ) -> Option<Fields<'n>> {
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

    pub(super) fn required<'n>(&mut self, fields: &Fields<'n>, key: &str) -> Option<&'n Node> {
        let node = fields.get(key);
        if node.is_none() {
            self.error(fields.at, &fields.path(key), "missing required key");
        }
        node
    }

    /// A scalar as text, with `${VAR}` substituted.
    pub(super) fn string(&mut self, node: &Node, path: &str) -> Option<String> {
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
    pub(super) fn secret(&mut self, node: &Node, path: &str) -> Option<Secret> {
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

    pub(super) fn parsed<T>(
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

    pub(super) fn duration(&mut self, node: &Node, path: &str) -> Option<Duration> {
        self.parsed(node, path, parse_duration)
    }

    pub(super) fn size(&mut self, node: &Node, path: &str) -> Option<u64> {
        let size = self.parsed(node, path, parse_size)?;
        if size == 0 || size > MAX_BODY_LIMIT {
            self.error(node.at, path, "expected a size between 1B and 64MiB");
            return None;
        }
        Some(size)
    }

    pub(super) fn socket_addr(&mut self, node: &Node, path: &str) -> Option<SocketAddr> {
        self.parsed(node, path, |s| {
            s.parse::<SocketAddr>().map_err(|_| {
                format!("expected an address such as 127.0.0.1:9901 or [::]:8000, found {s:?}")
            })
        })
    }

    pub(super) fn list<'n>(&mut self, node: &'n Node, path: &str) -> Option<&'n [Node]> {
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

    pub(super) fn optional<T>(
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

    pub(super) fn with_default<T>(
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
    pub(super) fn duration_or(
        &mut self,
        fields: &Fields,
        key: &str,
        default: Duration,
    ) -> Option<Duration> {
        self.with_default(fields, key, default, Self::positive_duration)
    }

    pub(super) fn not_allowed(&mut self, f: &Fields, keys: &[&str], why: &str) {
        for key in keys {
            if let Some(node) = f.get(key) {
                self.error(node.at, &f.path(key), format!("not used {why}"));
            }
        }
    }

    /// Every item of a list, read with `read`. All items are read, so each bad one is reported.
    pub(super) fn each<T>(
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
    pub(super) fn whole(
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

    pub(super) fn positive_duration(&mut self, node: &Node, path: &str) -> Option<Duration> {
        let d = self.duration(node, path)?;
        if d.is_zero() {
            self.error(node.at, path, "must be longer than 0s");
            return None;
        }
        Some(d)
    }

    pub(super) fn boolean(&mut self, node: &Node, path: &str) -> Option<bool> {
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
}

/// A route or endpoint name: it appears in URLs, headers and metric labels.
pub(super) fn route_name(s: &str) -> Result<String, String> {
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

/// A header name, lower-cased, if it is one.
pub(super) fn header_name(name: &str) -> Option<String> {
    valid_header_name(name).then(|| name.to_ascii_lowercase())
}
