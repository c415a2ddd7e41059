#![no_main]
mod common;
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    for (scheme, headers) in [
        ("github", &["x-hub-signature-256", "x-github-delivery"][..]),
        ("slack", &["x-slack-signature", "x-slack-request-timestamp"][..]),
        ("zoom", &["x-zm-signature", "x-zm-request-timestamp"][..]),
        ("shopify", &["x-shopify-hmac-sha256", "x-shopify-webhook-id"][..]),
        ("square", &["x-square-hmacsha256-signature"][..]),
        ("linear", &["linear-signature", "linear-delivery"][..]),
        ("intercom", &["x-hub-signature"][..]),
        ("rejento", &["x-rejento-signature", "x-rejento-delivery-id"][..]),
    ] {
        common::verify(scheme, "secret", headers, data);
    }
});
