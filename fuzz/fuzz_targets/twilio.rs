#![no_main]
mod common;
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    common::verify("twilio", "12345", &["x-twilio-signature", "content-type"], data);
});
