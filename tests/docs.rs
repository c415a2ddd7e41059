//! The book under `docs/` cannot drift from the code:
//! - the command line chapter is every command's `--help` (`HOOKGATE_BLESS_DOCS=1` rewrites it);
//! - every config key the loader takes is in the configuration reference and in
//!   `config.example.yaml`;
//! - every error code and every metric the code emits is documented;
//! - every internal link (chapters, anchors, repository files) resolves;
//! - the README's quickstart runs as written and prints what it says it prints.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

mod support;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn hookgate(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(args)
        .env("COLUMNS", "120")
        .env_remove("HOOKGATE_ADMIN_URL")
        .env_remove("HOOKGATE_ADMIN_TOKEN")
        .env_remove("HOOKGATE_CONFIG")
        .env_remove("HOOKGATE_LOG_FORMAT")
        .output()
        .unwrap();
    assert!(out.status.success(), "hookgate {args:?} failed");
    String::from_utf8(out.stdout).unwrap()
}

/// The subcommands `hookgate <path> --help` lists (`help` aside).
fn subcommands(path: &[&str]) -> Vec<String> {
    let mut args = path.to_vec();
    args.push("--help");
    let help = hookgate(&args);
    let Some((_, commands)) = help.split_once("Commands:\n") else {
        return Vec::new();
    };
    commands
        .lines()
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

/// The command line chapter as the binary's help makes it.
fn cli_chapter() -> String {
    let mut chapter = String::from(
        "# Command line\n\n<!-- Made from each command's --help by tests/docs.rs: edit the help in src/cli.rs, then run\n     HOOKGATE_BLESS_DOCS=1 cargo test --test docs -->\n\n",
    );
    chapter.push_str(&read("docs/src/cli-intro.md"));
    let mut queue: Vec<Vec<String>> = vec![Vec::new()];
    while let Some(path) = queue.pop() {
        let refs: Vec<&str> = path.iter().map(String::as_str).collect();
        let name = if path.is_empty() {
            "hookgate".to_string()
        } else {
            format!("hookgate {}", path.join(" "))
        };
        let mut args = refs.clone();
        args.push("--help");
        chapter.push_str(&format!(
            "\n## `{name}`\n\n```text\n{}```\n",
            hookgate(&args)
        ));
        let mut children: Vec<Vec<String>> = subcommands(&refs)
            .into_iter()
            .map(|c| {
                let mut child = path.clone();
                child.push(c);
                child
            })
            .collect();
        children.reverse();
        queue.extend(children);
    }
    chapter
}

#[test]
fn the_command_line_chapter_is_every_commands_help() {
    let expected = cli_chapter();
    let path = root().join("docs/src/cli.md");
    if std::env::var_os("HOOKGATE_BLESS_DOCS").is_some() {
        std::fs::write(&path, &expected).unwrap();
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "docs/src/cli.md differs from the commands' --help: run HOOKGATE_BLESS_DOCS=1 cargo test --test docs"
    );
}

/// Every key the config loader accepts: the names in the lists its readers check fields
/// against (`self.fields(node, path, &[...])` and the `*_KEYS` lists).
fn config_keys() -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for entry in std::fs::read_dir(root().join("src/config/load")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let mut rest = text.as_str();
        while let Some(at) = rest.find("&[") {
            rest = &rest[at + 2..];
            let list = &rest[..rest.find(']').unwrap_or(0)];
            let names: Vec<&str> = list
                .split(',')
                .map(|s| s.trim().trim_matches('"'))
                .filter(|s| !s.is_empty())
                .collect();
            let all_keys = !names.is_empty()
                && list.contains('"')
                && names.iter().all(|n| {
                    n.bytes()
                        .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit())
                });
            if all_keys {
                keys.extend(names.iter().map(|n| n.to_string()));
            }
        }
    }
    keys
}

#[test]
fn every_config_key_is_in_the_reference_and_the_example() {
    let keys = config_keys();
    assert!(keys.len() > 80, "only {} keys found: {keys:?}", keys.len());
    let reference = read("docs/src/configuration.md");
    let example = read("config.example.yaml");
    let missing_reference: Vec<&String> = keys
        .iter()
        .filter(|k| !reference.contains(&format!("`{k}")) && !reference.contains(&format!(".{k}")))
        .collect();
    let missing_example: Vec<&String> = keys
        .iter()
        .filter(|k| !example.contains(&format!("{k}:")))
        .collect();
    assert!(
        missing_reference.is_empty() && missing_example.is_empty(),
        "not in docs/src/configuration.md: {missing_reference:?}\nnot in config.example.yaml: {missing_example:?}"
    );
}

/// The stable error codes the code answers with: the string literal given as the code of
/// an error answer.
fn error_codes() -> BTreeSet<String> {
    let mut codes = BTreeSet::new();
    let mut files = Vec::new();
    let mut dirs = vec![root().join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let is_code = |s: &str| {
        s.len() > 3 && s.contains('_') && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
    };
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        // `ErrorResponse::new(400, "code"`, `api_error(404, "code"`, `bad("code"`,
        // `header_or_400(.., "code")`, the schemes' `=> "code"` and `(code, "...")`.
        for marker in [
            "ErrorResponse::new(",
            "api_error(",
            "bad(",
            "_or_400(",
            "code: \"",
        ] {
            let mut rest = text.as_str();
            while let Some(at) = rest.find(marker) {
                rest = &rest[at + marker.len()..];
                let call = &rest[..rest.len().min(200)];
                let call = &call[..call.find(';').unwrap_or(call.len())];
                for literal in call.split('"').skip(1).step_by(2).take(3) {
                    if is_code(literal) {
                        codes.insert(literal.to_string());
                        break;
                    }
                }
            }
        }
        if file.ends_with("schemes/mod.rs") {
            for line in text.lines() {
                if let Some((_, code)) = line.split_once("=> \"") {
                    let code = code.trim_end_matches("\",");
                    if is_code(code) {
                        codes.insert(code.to_string());
                    }
                }
            }
        }
    }
    codes
}

/// Every metric family hookgate registers, as Prometheus names it: the registered name
/// after `hookgate_`, `_seconds` with a unit, `_total` for counters and `_info` for info.
fn metric_names() -> BTreeSet<String> {
    let text = read("src/metrics.rs");
    let mut names = BTreeSet::new();
    for call in text.split("registry.register").skip(1) {
        let call = &call[..call.find(");").unwrap_or(call.len())];
        let name = call.split('"').nth(1).unwrap_or_default();
        // The last argument: the metric itself (`x.clone()`, or `build`).
        let variable = call
            .rsplit(',')
            .map(str::trim)
            .find(|a| !a.is_empty())
            .unwrap_or_default()
            .trim_end_matches(".clone()");
        let declared = text
            .split(&format!("let {variable} = "))
            .nth(1)
            .and_then(|d| d.split(';').next())
            .unwrap_or_default();
        let declared = declared
            .split("::new_with_constructor")
            .next()
            .unwrap_or(declared);
        let mut full = format!("hookgate_{name}");
        if call.contains("Unit::Seconds") {
            full.push_str("_seconds");
        }
        if declared.starts_with("Info") {
            full.push_str("_info");
        } else if declared.contains("Counter") {
            full.push_str("_total");
        }
        names.insert(full);
    }
    names
}

#[test]
fn every_error_code_and_metric_is_documented() {
    let doc = read("docs/src/errors-and-metrics.md");
    let codes = error_codes();
    assert!(
        codes.len() > 40,
        "only {} codes found: {codes:?}",
        codes.len()
    );
    let undocumented: Vec<&String> = codes
        .iter()
        .filter(|c| !doc.contains(&format!("`{c}`")))
        .collect();
    let metrics = metric_names();
    assert!(
        metrics.len() > 20,
        "only {} metrics found: {metrics:?}",
        metrics.len()
    );
    let unlisted: Vec<&String> = metrics
        .iter()
        .filter(|m| !doc.contains(&format!("`{m}`")))
        .collect();
    assert!(
        undocumented.is_empty() && unlisted.is_empty(),
        "error codes not in docs/src/errors-and-metrics.md: {undocumented:?}\nmetrics not in it: {unlisted:?}"
    );
}

/// The headings of a Markdown file as anchors (GitHub's and mdBook's: lowercase, spaces
/// as `-`, punctuation other than `-` and `_` dropped).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut in_code = false;
    let mut found = BTreeSet::new();
    for line in text.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        }
        if in_code || !line.starts_with('#') {
            continue;
        }
        let heading = line.trim_start_matches('#').trim().to_lowercase();
        let anchor: String = heading
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        found.insert(anchor);
    }
    found
}

/// Every `[text](target)` of a Markdown file outside code blocks.
fn links(text: &str) -> Vec<String> {
    let mut in_code = false;
    let mut found = Vec::new();
    for line in text.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            if let Some(end) = rest.find(')') {
                found.push(rest[..end].to_string());
            }
        }
    }
    found
}

#[test]
fn every_internal_link_resolves() {
    let mut pages: Vec<PathBuf> = vec![root().join("README.md"), root().join("SECURITY.md")];
    for entry in std::fs::read_dir(root().join("docs/src")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path);
        }
    }
    let mut broken = Vec::new();
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        for link in links(&text) {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            let (file, anchor) = link.split_once('#').unwrap_or((link.as_str(), ""));
            let target = if file.is_empty() {
                page.clone()
            } else {
                page.parent().unwrap().join(file)
            };
            if !target.exists() {
                broken.push(format!("{}: {link} (no such file)", page.display()));
                continue;
            }
            if !anchor.is_empty() {
                let text = std::fs::read_to_string(&target).unwrap_or_default();
                if !anchors(&text).contains(anchor) {
                    broken.push(format!("{}: {link} (no such heading)", page.display()));
                }
            }
        }
    }
    // Every chapter is in the summary, and the summary names no missing chapter.
    let summary = read("docs/src/SUMMARY.md");
    for page in pages
        .iter()
        .filter(|p| p.starts_with(root().join("docs/src")))
    {
        let name = page.file_name().unwrap().to_str().unwrap();
        if name != "SUMMARY.md" && name != "cli-intro.md" && !summary.contains(&format!("({name})"))
        {
            broken.push(format!("{name} is not in SUMMARY.md"));
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// The README's quickstart block as a script: `./target/release/hookgate` is the binary
/// under test, the build step is left out, and each `# -> text` checks that the command
/// before it printed `text`.
fn quickstart_script(readme: &str, binary: &Path) -> String {
    let block = readme
        .split("<!-- ANCHOR: quickstart -->")
        .nth(1)
        .and_then(|b| b.split("```sh\n").nth(1))
        .and_then(|b| b.split("\n```").next())
        .expect("the README has a quickstart block");
    let mut commands: Vec<(String, Option<String>)> = Vec::new();
    let mut pending = String::new();
    for line in block.lines() {
        if let Some(expected) = line.strip_prefix("# -> ") {
            commands
                .last_mut()
                .expect("an expectation follows a command")
                .1 = Some(expected.to_string());
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        pending.push_str(line);
        if let Some(start) = pending.strip_suffix('\\') {
            pending = format!("{start} ");
            continue;
        }
        commands.push((std::mem::take(&mut pending), None));
    }
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let mut script = String::from("set -u\ntrap 'kill $(jobs -p) 2>/dev/null' EXIT\n");
    for (command, expected) in commands {
        if command.starts_with("cargo build") {
            continue;
        }
        let command = command.replace("./target/release/hookgate", &binary.display().to_string());
        match expected {
            None => script.push_str(&format!("{command}\n")),
            Some(expected) => script.push_str(&format!(
                "out=$({command} 2>&1)\nprintf '%s\\n' \"$out\"\ncase \"$out\" in *{}*) ;; *) echo \"expected: \"{} >&2; exit 1;; esac\n",
                quote(&expected),
                quote(&expected)
            )),
        }
    }
    script
}

/// The quickstart runs in a network namespace of its own with only loopback, so its
/// fixed ports meet no other test's and nothing it does can leave the machine.
#[test]
fn the_readme_quickstart_runs_as_written() {
    if !support::in_loopback_namespace("the_readme_quickstart_runs_as_written") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(root().join("docs"), work.path().join("docs")).unwrap();
    let script = quickstart_script(
        &read("README.md"),
        Path::new(env!("CARGO_BIN_EXE_hookgate")),
    );
    let out = Command::new("timeout")
        .args(["60", "bash", "-c", &script])
        .current_dir(work.path())
        .env_remove("HOOKGATE_ADMIN_URL")
        .env_remove("HOOKGATE_ADMIN_TOKEN")
        .env_remove("HOOKGATE_CONFIG")
        .output()
        .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the quickstart failed:\n{script}\n---\n{printed}"
    );
    // The throwaway app printed the outbound delivery with its Standard Webhooks signature.
    assert!(
        printed.contains("app got POST /receiver") && printed.contains("'webhook-signature': 'v1,"),
        "{printed}"
    );
}
