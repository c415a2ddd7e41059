//! The house rules a reader relies on, checked on the source: imports run one way
//! (config <- services <- server <- main), the admin port does not reach into the
//! inbound side and reaches the outbound side through its facade only, telemetry does
//! not reach into the outbound side, and no file in `src/` is over 700 lines.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The lines of the files under `src/<part>` that name one of `forbidden` (`crate::x`).
fn crossings(part: &str, forbidden: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for file in sources(&src().join(part)) {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            // `crate::inbound::x`, `crate::inbound;`, and `crate::{inbound, ...}`.
            let braced = line
                .split_once("crate::{")
                .map(|(_, rest)| rest.split(['}', ',']).map(str::trim).collect::<Vec<_>>())
                .unwrap_or_default();
            for module in forbidden {
                let named = format!("crate::{module}");
                if line.contains(&format!("{named}::"))
                    || line.contains(&format!("{named};"))
                    || braced
                        .iter()
                        .any(|b| b == module || b.starts_with(&format!("{module}::")))
                {
                    found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    found
}

#[test]
fn imports_run_one_way() {
    const SERVICES: &[&str] = &["inbound", "outbound", "admin", "telemetry", "inject"];
    const WIRING: &[&str] = &["server", "reload", "shutdown", "main"];
    let rules: &[(&str, Vec<&str>)] = &[
        ("config", [SERVICES, WIRING, &["store"]].concat()),
        ("schemes", [SERVICES, WIRING, &["store"]].concat()),
        ("store", [SERVICES, WIRING].concat()),
        ("admin", [&["inbound"][..], WIRING].concat()),
        (
            "telemetry",
            [&["outbound", "inbound", "admin"][..], WIRING].concat(),
        ),
        ("inbound", [&["outbound", "admin"][..], WIRING].concat()),
        ("outbound", [&["inbound", "admin"][..], WIRING].concat()),
    ];
    let mut found = Vec::new();
    for (part, forbidden) in rules {
        found.extend(crossings(part, forbidden));
    }
    assert!(
        found.is_empty(),
        "imports against the layering:\n{}",
        found.join("\n")
    );
}

/// The admin API reaches the outbound side through `outbound::facade` only.
#[test]
fn the_admin_port_sees_the_outbound_side_through_its_facade() {
    let mut found = Vec::new();
    for file in sources(&src().join("admin")) {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let mut rest = line;
            while let Some(at) = rest.find("outbound::") {
                let before = &rest[..at];
                let after = &rest[at + "outbound::".len()..];
                // `crate::outbound::x` or `outbound::x` inside `crate::{...}`.
                let a_path = before.ends_with("crate::") || before.trim_end().ends_with('{');
                if a_path && !after.starts_with("facade") {
                    found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
                rest = after;
            }
        }
    }
    assert!(
        found.is_empty(),
        "the admin API goes through crate::outbound::facade:\n{}",
        found.join("\n")
    );
}

#[test]
fn no_source_file_is_over_700_lines() {
    let long: Vec<String> = sources(&src())
        .into_iter()
        .filter_map(|file| {
            let lines = std::fs::read_to_string(&file).unwrap().lines().count();
            (lines > 700).then(|| format!("{}: {lines} lines", file.display()))
        })
        .collect();
    assert!(long.is_empty(), "split these:\n{}", long.join("\n"));
}
