#![no_main]
mod common;
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    common::verify("bearer", "token", &["authorization"], data);
    common::verify("basic", "user:pass", &["authorization"], data);
    common::verify("gitlab", "token", &["x-gitlab-token", "idempotency-key"], data);
});
