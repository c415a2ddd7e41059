//! `hookgate store rotate-key` and `hookgate store status`: a key rotation started and
//! followed through `/admin/store/rotate-key`.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

use super::{call, finish, runtime};
use crate::cli::{AdminArgs, StoreCommand};

const PATH: &str = "/admin/store/rotate-key";
/// How often a followed rotation's progress is asked for.
const POLL: Duration = Duration::from_millis(500);

pub fn store(args: &AdminArgs, command: &StoreCommand) -> ExitCode {
    let runtime = runtime();
    let result = match command {
        StoreCommand::Status => runtime.block_on(call(args, "GET", PATH, None)),
        StoreCommand::RotateKey { no_wait } => runtime.block_on(async {
            let mut answer = call(args, "POST", PATH, Some(&serde_json::json!({}))).await?;
            while !no_wait && answer.0 < 300 && answer.1["state"] == "running" {
                if !args.json {
                    eprintln!("{}", progress(&answer.1));
                }
                tokio::time::sleep(POLL).await;
                answer = call(args, "GET", PATH, None).await?;
            }
            Ok(answer)
        }),
    };
    let failed = matches!(&result, Ok((_, body)) if body["state"] == "failed");
    let code = finish(result, args.json, |pass| println!("{}", progress(pass)));
    if failed {
        ExitCode::FAILURE
    } else {
        code
    }
}

/// One line: where the pass is.
fn progress(pass: &Value) -> String {
    let count = |part: &str, what: &str| pass[part][what].as_u64().unwrap_or(0);
    let mut line = format!(
        "{} {}: subscriptions {} resealed; queue {} scanned, {} resealed; history {} scanned, {} resealed",
        pass["kind"].as_str().unwrap_or("rotation"),
        pass["state"].as_str().unwrap_or(""),
        count("subscriptions", "resealed"),
        count("queue", "scanned"),
        count("queue", "resealed"),
        count("history", "scanned"),
        count("history", "resealed"),
    );
    if pass["key_check_moved"] == true {
        line.push_str(&format!(
            "; the key check is on key {}: older keys can leave store.encryption.keys",
            pass["key"].as_str().unwrap_or("")
        ));
    }
    if let Some(error) = pass["error"].as_str() {
        line.push_str(&format!("; {error}"));
    }
    line
}
