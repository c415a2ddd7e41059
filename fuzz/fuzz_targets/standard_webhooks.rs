#![no_main]
mod common;
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let names = ["webhook-signature", "webhook-id", "webhook-timestamp"];
    common::verify("standard-webhooks", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", &names, data);
    let names = ["svix-signature", "svix-id", "svix-timestamp"];
    common::verify("svix", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", &names, data);
});
