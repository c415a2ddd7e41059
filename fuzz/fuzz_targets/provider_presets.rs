#![no_main]
// The parsers the provider presets added: Ed25519 and ECDSA signatures, RFC 3339
// and millisecond timestamps, signature lists, and key=value headers written otherwise.
mod common;
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // Discord's and Telnyx's: a public key in each one's encoding.
    let discord = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8";
    let telnyx = "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=";
    common::verify("discord", discord, &["x-signature-ed25519", "x-signature-timestamp"], data);
    common::verify("telnyx", telnyx, &["telnyx-signature-ed25519", "telnyx-timestamp"], data);
    // SendGrid's: a P-256 public key (SPKI DER, base64).
    let sendgrid = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEPteijsZI7c5dW34lL2sqr7tEg1EUoks8qo9xD2SZO8JXEaNM3JIpCAtjnwmXf+t8qR7M4WSb/qithccrIGrefg==";
    common::verify("sendgrid", sendgrid, &["x-twilio-email-event-webhook-signature", "x-twilio-email-event-webhook-timestamp"], data);
    for (scheme, headers) in [
        ("twitch", &["twitch-eventsub-message-signature", "twitch-eventsub-message-timestamp", "twitch-eventsub-message-id"][..]),
        ("zendesk", &["x-zendesk-webhook-signature", "x-zendesk-webhook-signature-timestamp"][..]),
        ("box", &["box-signature-primary", "box-delivery-timestamp", "box-delivery-id"][..]),
        ("webflow", &["x-webflow-signature", "x-webflow-timestamp"][..]),
        ("pagerduty", &["x-pagerduty-signature"][..]),
        ("workos", &["workos-signature"][..]),
        ("sanity", &["sanity-webhook-signature"][..]),
        ("telegram", &["x-telegram-bot-api-secret-token"][..]),
    ] {
        common::verify(scheme, "secret", headers, data);
    }
});
