#![no_main]
mod common;
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    common::verify("stripe", "whsec_test_secret", &["stripe-signature"], data);
    common::verify("paddle", "pdl_secret", &["paddle-signature"], data);
});
