//! The one-shot commands: `check`, `sign`, `verify` and `schemes`.

use std::io::Read;
use std::process::ExitCode;

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::cli::{SchemeArgs, SchemesCommand};
use crate::clock::unix_now;
use crate::config::{self, values::parse_duration};
use crate::ids::new_delivery_id;
use crate::schemes::presets::{self, PRESETS};
use crate::schemes::{Message, Request, SchemeSpec, Verifier};

/// sysexits' EX_CONFIG: the configuration is wrong.
pub const EXIT_CONFIG: u8 = 78;
/// sysexits' EX_USAGE: the command line is wrong.
const EXIT_USAGE: u8 = 64;

pub fn check(path: &std::path::Path) -> ExitCode {
    match config::load_file(path) {
        Ok(config) => {
            for warning in config::notices::warnings(&config) {
                eprintln!("warning: {warning}");
            }
            println!("{}: valid", path.display());
            if let Some(retention) = config::notices::retention(&config) {
                println!("{retention}");
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{}: {} problem(s)", path.display(), errors.0.len());
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

fn usage(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(EXIT_USAGE)
}

fn read_input(file: &str) -> std::io::Result<Vec<u8>> {
    if file == "-" {
        let mut body = Vec::new();
        std::io::stdin().read_to_end(&mut body)?;
        Ok(body)
    } else {
        std::fs::read(file)
    }
}

fn verifier(args: &SchemeArgs, tolerance: Option<std::time::Duration>) -> Result<Verifier, String> {
    let mut secrets = args.secret.clone();
    for name in &args.secret_env {
        secrets.push(
            std::env::var(name).map_err(|_| format!("environment variable {name} is not set"))?,
        );
    }
    if secrets.is_empty() {
        return Err("give at least one --secret or --secret-env".into());
    }
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    Verifier::new(&SchemeSpec::Named(args.scheme.clone()), &secrets, tolerance)
}

/// Single-quotes text for a POSIX shell.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

pub fn sign(
    args: &SchemeArgs,
    id: Option<String>,
    timestamp: Option<u64>,
    curl: Option<String>,
    file: &str,
) -> ExitCode {
    let verifier = match verifier(args, None) {
        Ok(v) => v,
        Err(e) => return usage(e),
    };
    let body = match read_input(file) {
        Ok(body) => body,
        Err(e) => return usage(format!("cannot read {file}: {e}")),
    };
    let id = id.unwrap_or_else(new_delivery_id);
    let url = args.url.clone().or_else(|| curl.clone());
    let message = Message {
        id: &id,
        timestamp: timestamp.unwrap_or_else(unix_now),
        method: "POST",
        url: url.as_deref(),
        body: &body,
    };
    let headers = match verifier.sign(&message) {
        Ok(h) => h,
        Err(e) => return usage(format!("{e} (give --url)")),
    };
    match curl {
        None => {
            for (name, value) in headers {
                println!("{name}: {value}");
            }
        }
        Some(target) => {
            let mut command = format!("curl -sS -X POST {}", shell_quote(&target));
            if serde_json::from_slice::<serde_json::Value>(&body).is_ok() {
                command.push_str(" -H 'Content-Type: application/json'");
            }
            for (name, value) in headers {
                command.push_str(&format!(" -H {}", shell_quote(&format!("{name}: {value}"))));
            }
            match (file, std::str::from_utf8(&body)) {
                ("-", Ok(text)) => {
                    command.push_str(&format!(" --data-binary {}", shell_quote(text)))
                }
                ("-", Err(_)) => {
                    return usage(
                        "a binary body from stdin cannot go into a curl command; pass a file",
                    )
                }
                (path, _) => command.push_str(&format!(" --data-binary @{}", shell_quote(path))),
            }
            println!("{command}");
        }
    }
    ExitCode::SUCCESS
}

pub fn verify(
    args: &SchemeArgs,
    header_args: &[String],
    tolerance: Option<String>,
    now: Option<u64>,
    file: &str,
) -> ExitCode {
    let tolerance = match tolerance.as_deref().map(parse_duration).transpose() {
        Ok(t) => t,
        Err(e) => return usage(format!("--tolerance: {e}")),
    };
    let verifier = match verifier(args, tolerance) {
        Ok(v) => v,
        Err(e) => return usage(e),
    };
    let mut headers = HeaderMap::new();
    for line in header_args {
        let parsed = line.split_once(':').and_then(|(name, value)| {
            Some((
                HeaderName::from_bytes(name.trim().as_bytes()).ok()?,
                HeaderValue::from_str(value.trim()).ok()?,
            ))
        });
        match parsed {
            Some((name, value)) => {
                headers.append(name, value);
            }
            None => return usage(format!("--header {line:?} is not `Name: value`")),
        }
    }
    let body = match read_input(file) {
        Ok(body) => body,
        Err(e) => return usage(format!("cannot read {file}: {e}")),
    };
    let request = Request {
        method: "POST",
        url: args.url.as_deref(),
        headers: &headers,
        body: &body,
    };
    match verifier.verify(&request, now.unwrap_or_else(unix_now)) {
        Ok(verified) => {
            let mut line = format!("valid (secret #{})", verified.secret_index);
            if let Some(id) = verified.id {
                line.push_str(&format!(" id={id}"));
            }
            if let Some(ts) = verified.timestamp {
                line.push_str(&format!(" timestamp={ts}"));
            }
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("invalid: {}: {e}", e.code());
            ExitCode::FAILURE
        }
    }
}

pub fn schemes(command: &SchemesCommand) -> ExitCode {
    match command {
        SchemesCommand::List => {
            println!("{:<20} {:<40} {:<24} SIGNATURE", "NAME", "PROVIDER", "DELIVERY ID");
            for p in PRESETS {
                let id = p.dedupe_id().unwrap_or("-");
                println!("{:<20} {:<40} {:<24} {}", p.name, p.provider, id, p.signature());
            }
            println!("\n{} presets; `hookgate schemes show NAME` prints a route for one.", PRESETS.len());
            ExitCode::SUCCESS
        }
        SchemesCommand::Show { name } => match presets::find(name) {
            Some(p) => {
                print!("{}", route_yaml(p));
                ExitCode::SUCCESS
            }
            None => usage(format!(
                "no preset is named {name:?}: `hookgate schemes list` shows them, and `scheme: hmac` describes any other"
            )),
        },
    }
}

/// A route for `preset`, to paste under `inbound.routes`.
fn route_yaml(p: &presets::Preset) -> String {
    let env = format!("{}_SECRET", p.name.to_uppercase().replace('-', "_"));
    let mut yaml = format!(
        "# {}: {}\n# {}\n- name: {}\n  path: /hooks/{}\n  verify:\n    scheme: {}\n    secrets: [\"${{{env}}}\"]\n",
        p.provider,
        p.docs,
        p.signature(),
        p.name,
        p.name,
        p.name
    );
    let shape = match p.secret_format() {
        presets::SecretFormat::Text => "the secret as the provider shows it",
        presets::SecretFormat::Base64 => "the secret as the provider shows it: base64",
        presets::SecretFormat::Hex => "the secret as the provider shows it: hex",
        presets::SecretFormat::Whsec => "whsec_ and base64, as the provider shows it",
        presets::SecretFormat::UserPassword => "user:password, as set in the provider's URL",
        presets::SecretFormat::Ed25519PublicKey => "the provider's public key, as it shows it",
        presets::SecretFormat::EcdsaPublicKey => {
            "the provider's verification key (base64), as it shows it"
        }
    };
    yaml = yaml.replacen(
        &format!("\"${{{env}}}\"]\n"),
        &format!("\"${{{env}}}\"]   # {shape}\n"),
        1,
    );
    if p.signs_url() {
        yaml.push_str(&format!(
            "    url: https://hooks.example.com/hooks/{}   # exactly as registered with the provider: it is signed\n",
            p.name
        ));
    }
    if let Some(id) = p.dedupe_id() {
        yaml.push_str(&format!("  dedupe: {{ id: scheme, ttl: 24h }}   # {id}\n"));
    }
    if matches!(p.name, "slack" | "zoom" | "dropbox") {
        yaml.push_str(&format!(
            "  handshake: {}   # answered by hookgate itself\n",
            p.name
        ));
    }
    yaml
}
