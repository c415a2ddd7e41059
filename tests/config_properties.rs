//! `hookgate run` never panics on a config that `hookgate check` accepted: generated rates,
//! sizes and durations, typical and extreme, are either refused with their line and key, or
//! built into a server (every limiter, pacer and deadline is made from them there).

use proptest::prelude::*;

mod support;
use support::free_port;

/// Any number with any unit: zero, huge, or past what the code can represent.
fn extreme(units: Vec<&'static str>) -> impl Strategy<Value = String> {
    (
        prop_oneof![Just(0u64), 1u64..1_000, any::<u64>()],
        prop::sample::select(units),
    )
        .prop_map(|(n, unit)| format!("{n}{unit}"))
}

/// Mostly what people write, so that most configs are valid and get built.
fn duration() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => (1u64..1_000, prop::sample::select(vec!["ms", "s", "m"]))
            .prop_map(|(n, unit)| format!("{n}{unit}")),
        2 => (1u64..=365).prop_map(|n| format!("{n}d")),
        1 => extreme(vec!["ms", "s", "m", "h", "d"]),
    ]
}

fn size() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => (1u64..1_000, prop::sample::select(vec!["", "B", "KiB"]))
            .prop_map(|(n, unit)| format!("{n}{unit}")),
        2 => (1u64..=64).prop_map(|n| format!("{n}MiB")),
        1 => extreme(vec!["", "B", "KiB", "MiB", "GiB", "MB"]),
    ]
}

fn rate() -> impl Strategy<Value = String> {
    let count = prop_oneof![
        8 => 1u32..1_000,
        1 => Just(1_000_000),
        1 => Just(1_000_001),
        1 => any::<u32>()
    ];
    let per = prop_oneof![
        4 => prop::sample::select(vec!["s", "min", "h", "d", "365d"]).prop_map(str::to_string),
        1 => duration(),
    ];
    (count, per).prop_map(|(count, per)| format!("{count}/{per}"))
}

fn burst() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just(String::new()),
        4 => (1u32..1_000).prop_map(|b| format!(", burst: {b}")),
        1 => any::<u32>().prop_map(|b| format!(", burst: {b}")),
    ]
}

#[derive(Debug, Clone)]
struct Values {
    durations: Vec<String>,
    sizes: Vec<String>,
    rates: Vec<String>,
    burst: String,
}

fn values() -> impl Strategy<Value = Values> {
    (
        prop::collection::vec(duration(), 9),
        prop::collection::vec(size(), 3),
        prop::collection::vec(rate(), 2),
        burst(),
    )
        .prop_map(|(durations, sizes, rates, burst)| Values {
            durations,
            sizes,
            rates,
            burst,
        })
}

fn config(v: &Values, dir: &std::path::Path) -> String {
    let (d, s, r) = (&v.durations, &v.sizes, &v.rates);
    format!(
        "server: {{ threads: 1, grace_period: {d0}, shutdown_timeout: {d1} }}
admin: {{ listen: 127.0.0.1:{admin} }}
store: {{ kind: embedded, path: {dir} }}
inbound:
  listen: 127.0.0.1:{inbound}
  upstream: http://127.0.0.1:9
  max_body: {s0}
  max_url: {s1}
  max_header_bytes: {s2}
  body_timeout: {d2}
  upstream_timeout: {d3}
  header_timeout: {d4}
  idle_timeout: {d5}
  routes:
    - name: r
      path: /r
      verify: none
      dedupe: {{ id: \"header:X-Id\", ttl: {d6} }}
      rate_limit: {{ key: route, limit: {r0}{burst} }}
outbound:
  listen: 127.0.0.1:{outbound}
  endpoints:
    - name: e
      url: http://127.0.0.1:9/
      sign: {{ scheme: rejento, secret: s3cret }}
      rate_limit: {r1}
      retry: {{ schedule: [{d7}], timeout: {d8} }}
",
        d0 = d[0],
        d1 = d[1],
        d2 = d[2],
        d3 = d[3],
        d4 = d[4],
        d5 = d[5],
        d6 = d[6],
        d7 = d[7],
        d8 = d[8],
        s0 = s[0],
        s1 = s[1],
        s2 = s[2],
        r0 = r[0],
        r1 = r[1],
        burst = v.burst,
        dir = dir.display(),
        admin = free_port(),
        inbound = free_port(),
        outbound = free_port(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn a_config_that_check_accepts_builds_without_a_panic(v in values()) {
        let dir = tempfile::tempdir().unwrap();
        let text = config(&v, dir.path());
        match hookgate::config::load_str("generated.yaml", &text, &|_| None) {
            Ok(config) => {
                if let Err(e) = hookgate::server::build(&config, None) {
                    // Only the environment may refuse a valid config (a port taken meanwhile).
                    prop_assert!(e.contains("cannot listen"), "{e}\n{text}");
                }
            }
            Err(errors) => {
                for e in &errors.0 {
                    prop_assert!(e.line > 0 && !e.path.is_empty(), "{e} in\n{text}");
                }
            }
        }
    }
}
