//! `hookgate check`, `--version` and config errors as a user sees them.

use std::process::{Command, Output};

fn hookgate(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hookgate"));
    command
        .args(args)
        .env_remove("HOOKGATE_CONFIG")
        .env_remove("HOOKGATE_ADMIN_TOKEN");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs `hookgate check` on `config` written to a file: the file's path (as messages name
/// it) and the output.
fn check(config: &str) -> (String, Output) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    std::fs::write(&file, config).unwrap();
    let output = hookgate(&["check", "--config", file.to_str().unwrap()], &[]);
    (file.display().to_string(), output)
}

#[test]
fn the_example_config_is_valid() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.yaml");
    let output = hookgate(&["check", "-c", example], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        printed.contains("config.example.yaml: valid\n"),
        "{printed}"
    );
    // The example's outbound side: what it keeps, and how long.
    assert!(
        printed.ends_with(
            "retention: delivered messages 7d (their payloads 7d), at most 1024 MiB; dead letters 14d\n"
        ),
        "{printed}"
    );
}

#[test]
fn every_problem_is_listed_with_its_line() {
    let (f, output) = check(
        "inbound:\n  listen: 127.0.0.1:8000\n  upstream: http://127.0.0.1:8080\n  max_bdy: 1MiB\n  body_timeout: 10x\n  routes:\n    - name: a\n      path: /a\n      verify: { scheme: rejento, secrets: [\"${HOOKGATE_TEST_MISSING}\"] }\n",
    );
    assert_eq!(output.status.code(), Some(78));
    assert_eq!(
        stderr(&output),
        format!(
            "{f}:4:3: inbound.max_bdy: unknown key (expected one of: listen, tls, upstream, max_body, body_timeout, connect_timeout, upstream_timeout, header_timeout, idle_timeout, max_connections, max_connections_per_ip, max_url, max_headers, max_header_bytes, routes)\n\
             {f}:5:17: inbound.body_timeout: expected a duration such as 500ms, 30s, 2m, 24h or 1h30m, found \"10x\"\n\
             {f}:9:44: inbound.routes[0].verify.secrets[0]: environment variable HOOKGATE_TEST_MISSING is not set (write ${{HOOKGATE_TEST_MISSING:-default}} to give a default)\n\
             {f}: 3 problem(s)\n"
        )
    );
}

#[test]
fn secrets_come_from_the_environment_and_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, "from-a-mounted-secret\n").unwrap();
    let file = dir.path().join("config.yaml");
    std::fs::write(
        &file,
        format!(
            "inbound:\n  listen: 127.0.0.1:8000\n  upstream: http://127.0.0.1:8080\n  routes:\n    - name: a\n      path: /a\n      verify: {{ scheme: rejento, secrets: [\"${{HOOKGATE_TEST_SECRET}}\", \"file:{}\"] }}\n",
            secret_file.display()
        ),
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let output = hookgate(
        &["check", "-c", path],
        &[("HOOKGATE_TEST_SECRET", "s3cr3t")],
    );
    assert!(output.status.success(), "{}", stderr(&output));

    let output = hookgate(&["check", "-c", path], &[]);
    assert!(stderr(&output).contains("environment variable HOOKGATE_TEST_SECRET is not set"));

    std::fs::remove_file(&secret_file).unwrap();
    let output = hookgate(
        &["check", "-c", path],
        &[("HOOKGATE_TEST_SECRET", "s3cr3t")],
    );
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains(":7:")
            && message.contains("inbound.routes[0].verify.secrets[1]: cannot read secret file"),
        "{message}"
    );
    assert!(!message.contains("s3cr3t"));
}

#[test]
fn run_refuses_a_bad_config_without_starting() {
    let output = hookgate(&["run", "-c", "/nonexistent/hookgate.yaml"], &[]);
    assert_eq!(output.status.code(), Some(78));
    assert!(stderr(&output).contains("/nonexistent/hookgate.yaml:0:0: cannot read config file"));
}

#[test]
fn version_and_help() {
    let output = hookgate(&["--version"], &[]);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("hookgate {}\n", env!("CARGO_PKG_VERSION"))
    );
    let output = hookgate(&["check", "--help"], &[]);
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("hookgate check -c config.example.yaml")
    );
}

#[test]
fn check_never_echoes_a_password_and_refuses_what_run_would() {
    let (_, output) = check(
        "store: { kind: redis, url: \"redis://:pw-in-url-1@127.0.0.1:6379/notadb\" }\ninbound:\n  listen: 127.0.0.1:8000\n  upstream: http://user:pw-in-url-2@127.0.0.1:port\n  routes:\n    - { name: a, path: /a, verify: none }\n",
    );
    assert_eq!(output.status.code(), Some(78));
    let text = stderr(&output);
    assert!(text.contains("store.url: not a valid Redis URL"), "{text}");
    assert!(text.contains("inbound.upstream:"), "{text}");
    assert!(text.contains("user:***@"), "{text}");
    assert!(!text.contains("pw-in-url"), "{text}");
}

#[test]
fn a_timestamp_format_is_one_of_three_and_a_wrong_one_is_named() {
    let route = |format: &str| {
        format!(
            "inbound:\n  listen: 127.0.0.1:8000\n  upstream: http://127.0.0.1:8080\n  routes:\n    - name: a\n      path: /a\n      verify:\n        scheme: hmac\n        secrets: [s]\n        header: X-Sig\n        timestamp_header: X-Time\n        signed_content: \"{{timestamp}}{{body}}\"\n        timestamp_format: {format}\n"
        )
    };
    for good in ["unix", "unix_ms", "rfc3339"] {
        let (_, output) = check(&route(good));
        assert!(output.status.success(), "{good}: {}", stderr(&output));
    }
    let (f, output) = check(&route("iso8601"));
    assert_eq!(output.status.code(), Some(78));
    assert_eq!(
        stderr(&output),
        format!("{f}:13:27: inbound.routes[0].verify.timestamp_format: expected unix, unix_ms or rfc3339, found \"iso8601\"\n{f}: 1 problem(s)\n")
    );
}

#[test]
fn rates_and_durations_the_code_cannot_run_are_refused_with_their_position() {
    let (f, output) = check(
        "inbound:\n  listen: 127.0.0.1:8000\n  upstream: http://127.0.0.1:8080\n  idle_timeout: 400d\n  routes:\n    - name: a\n      path: /a\n      verify: none\n      rate_limit: { key: route, limit: 2000000000/s }\n    - name: b\n      path: /b\n      verify: none\n      rate_limit: { key: route, limit: 1/365d, burst: 2 }\n",
    );
    assert_eq!(output.status.code(), Some(78));
    assert_eq!(
        stderr(&output),
        format!(
            "{f}:4:17: inbound.idle_timeout: duration \"400d\" is too long: at most 365d\n\
             {f}:9:40: inbound.routes[0].rate_limit.limit: rate \"2000000000/s\" is too fast: at most 1000000/s (one request per microsecond)\n\
             {f}:13:55: inbound.routes[1].rate_limit.burst: a burst of 2 at this rate takes longer than 365d to earn back\n\
             {f}: 3 problem(s)\n"
        )
    );
}

#[test]
fn per_request_destinations_take_a_policy_and_its_mistakes_are_named() {
    let (f, output) = check(
        "outbound:\n  destinations:\n    concurrency: 0\n    retries: 3\n    retry: { preset: svix }\n    rate_limit: 10/s\n",
    );
    assert_eq!(output.status.code(), Some(78));
    let text = stderr(&output);
    assert!(
        text.contains(&format!("{f}:3:18: outbound.destinations.concurrency:")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{f}:4:5: outbound.destinations.retries: unknown key"
        )),
        "{text}"
    );
    let (_, output) = check(
        "outbound:\n  concurrency: 512\n  destinations: { concurrency: 4, rate_limit: 10/s, retry: { preset: svix }, circuit: { failures: 3, pause: 30s } }\n",
    );
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn check_warns_of_an_unsigned_catch_all_over_a_signed_path() {
    let (_, output) = check(
        "inbound:\n  listen: 127.0.0.1:8000\n  upstream: http://127.0.0.1:8080\n  routes:\n    - { name: hooksall, path: /hooks/*, verify: none }\n    - { name: github, path: /hooks/github, verify: { scheme: github, secrets: [s] } }\n",
    );
    assert!(output.status.success(), "a warning is not a problem");
    let warnings = stderr(&output);
    assert!(
        warnings.starts_with(
            "warning: route hooksall (verify: none, /hooks/*) takes /hooks/github.json"
        ),
        "{warnings}"
    );
}

#[test]
fn admin_commands_say_plainly_what_is_missing() {
    let no_token = hookgate(&["endpoints", "list", "--admin", "http://127.0.0.1:9"], &[]);
    assert!(!no_token.status.success());
    assert_eq!(
        stderr(&no_token),
        "error: no admin token: set HOOKGATE_ADMIN_TOKEN (or pass --token) to the running hookgate's admin.token\n"
    );
    let unreachable = hookgate(
        &["endpoints", "list", "--admin", "http://127.0.0.1:9"],
        &[("HOOKGATE_ADMIN_TOKEN", "t")],
    );
    let message = stderr(&unreachable);
    assert!(!unreachable.status.success());
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(
        message.starts_with(
            "error: cannot reach the admin port at http://127.0.0.1:9 (connection refused)"
        ),
        "{message}"
    );
    let bad_time = hookgate(&["deliveries", "list", "--since", "yesterday"], &[]);
    assert!(stderr(&bad_time).contains("give a time ago (1h, 30m, 7d), RFC 3339"));
}

#[test]
fn the_placeholder_admin_token_never_leaves_loopback() {
    let config = |listen: &str| {
        format!(
            "admin: {{ listen: \"{listen}\", token: change-me }}\ninbound:\n  listen: 127.0.0.1:8000\n  upstream: http://127.0.0.1:8080\n  routes:\n    - {{ name: a, path: /a, verify: none }}\n"
        )
    };
    let (_, output) = check(&config("0.0.0.0:9901"));
    assert_eq!(output.status.code(), Some(78));
    assert!(
        stderr(&output).contains("admin.token: \"change-me\" is the example's placeholder"),
        "{}",
        stderr(&output)
    );
    let (_, output) = check(&config("127.0.0.1:9901"));
    assert!(output.status.success());
    assert!(stderr(&output).contains("warning: admin.token is the example's placeholder"));
}
