//! Every provider hookgate verifies by name: the scheme each one signs with, the header its
//! delivery id comes in, and where the provider documents it. `verify.scheme`, `hookgate
//! schemes list|show`, the docs' provider table and `tests/data/vectors.json` (a vector per
//! preset) all follow this one table.

use super::crypto::{Algorithm, Encoding};
use super::hmac::SecretEncoding;
use super::parse::TimestampFormat;

/// A provider's preset.
pub struct Preset {
    /// What `verify.scheme` names.
    pub name: &'static str,
    /// Who sends it, as they write their name.
    pub provider: &'static str,
    pub recipe: Recipe,
    /// The provider's page that gives the recipe.
    pub docs: &'static str,
}

/// How a preset's requests are signed.
pub enum Recipe {
    /// A scheme with code of its own (`src/schemes/*.rs`): its signature header(s), and the
    /// delivery id's header.
    Own {
        headers: &'static str,
        id: Option<&'static str>,
    },
    /// The provider signs with another preset's scheme (Clerk sends Svix's).
    Alias(&'static str),
    /// One HMAC in one header.
    Hmac(Hmac),
    /// One header of `key=value` pairs, with a timestamp and hex HMAC-SHA256 of
    /// `{timestamp}{joiner}{body}` under the secret's UTF-8 bytes (Stripe's shape).
    KeyValue(KeyValue),
    /// A static token in a header of the provider's (lower case), compared in constant time.
    Token { header: &'static str },
    /// An Ed25519 signature the provider's public key verifies.
    Ed25519(Ed25519),
    /// An ECDSA P-256 / SHA-256 signature the provider's public key verifies.
    EcdsaP256(EcdsaP256),
}

/// [`Recipe::EcdsaP256`]: the signature's header (base64, DER when `der`, else raw r‖s),
/// the timestamp's header (unix seconds) and the signed content; the key is base64 of a
/// DER SubjectPublicKeyInfo.
pub struct EcdsaP256 {
    pub header: &'static str,
    pub der: bool,
    pub timestamp_header: &'static str,
    pub signed: &'static str,
}

/// [`Recipe::Ed25519`]: the signature's header and encoding, the timestamp's header (unix
/// seconds), the signed content, and how the provider writes its public key.
pub struct Ed25519 {
    pub header: &'static str,
    pub encoding: Encoding,
    pub timestamp_header: &'static str,
    pub signed: &'static str,
    pub key_encoding: Encoding,
}

/// The shape of a preset's secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretFormat {
    /// Any text, used as its UTF-8 bytes.
    Text,
    /// Base64 of the key bytes.
    Base64,
    /// Hex of the key bytes.
    Hex,
    /// `whsec_` and base64 (Standard Webhooks), or a `whsk_` Ed25519 key.
    Whsec,
    /// `user:password`.
    UserPassword,
    /// The provider's Ed25519 public key (or a `whsk_` private key, to sign).
    Ed25519PublicKey,
    /// Base64 of the provider's DER P-256 public key (or of a PKCS#8 private key, to sign).
    EcdsaPublicKey,
}

/// [`Recipe::Hmac`]: what `scheme: hmac` would spell out.
pub struct Hmac {
    pub header: &'static str,
    pub algorithm: Algorithm,
    pub encoding: Encoding,
    /// Text before the encoded tag, such as `sha256=`.
    pub prefix: &'static str,
    pub timestamp_header: Option<&'static str>,
    pub id_header: Option<&'static str>,
    /// The signed content, as `signed_content` writes it.
    pub signed: &'static str,
    pub secret: SecretEncoding,
    /// A JSON pointer to a signed timestamp in milliseconds inside the body (Linear).
    pub body_timestamp_ms: Option<&'static str>,
    pub timestamp_format: TimestampFormat,
    /// The header may list several signatures, split by this.
    pub list: Option<char>,
}

/// [`Recipe::KeyValue`]: the header, the pairs' separator, the keys of the
/// timestamp and of a signature, what joins the timestamp to the body, and how the
/// timestamp and the signatures are written.
pub struct KeyValue {
    pub header: &'static str,
    pub separator: char,
    pub timestamp_key: &'static str,
    pub signature_key: &'static str,
    pub joiner: &'static str,
    pub timestamp_format: TimestampFormat,
    pub encoding: Encoding,
}

/// The usual case: hex HMAC-SHA256 of the body, under the secret's UTF-8 bytes.
const fn body_hex(header: &'static str) -> Hmac {
    Hmac {
        header,
        algorithm: Algorithm::Sha256,
        encoding: Encoding::Hex,
        prefix: "",
        timestamp_header: None,
        id_header: None,
        signed: "{body}",
        secret: SecretEncoding::Utf8,
        body_timestamp_ms: None,
        timestamp_format: TimestampFormat::UnixSeconds,
        list: None,
    }
}

const fn timestamps(mut hmac: Hmac, format: TimestampFormat) -> Hmac {
    hmac.timestamp_format = format;
    hmac
}

const fn listed(mut hmac: Hmac, separator: char) -> Hmac {
    hmac.list = Some(separator);
    hmac
}

const fn base64(mut hmac: Hmac) -> Hmac {
    hmac.encoding = Encoding::Base64;
    hmac
}

const fn sha1(mut hmac: Hmac) -> Hmac {
    hmac.algorithm = Algorithm::Sha1;
    hmac
}

const fn prefixed(mut hmac: Hmac, prefix: &'static str) -> Hmac {
    hmac.prefix = prefix;
    hmac
}

const fn with_id(mut hmac: Hmac, header: &'static str) -> Hmac {
    hmac.id_header = Some(header);
    hmac
}

const fn timestamped(mut hmac: Hmac, header: &'static str, signed: &'static str) -> Hmac {
    hmac.timestamp_header = Some(header);
    hmac.signed = signed;
    hmac
}

const fn signing(mut hmac: Hmac, signed: &'static str) -> Hmac {
    hmac.signed = signed;
    hmac
}

const fn secret(mut hmac: Hmac, encoding: SecretEncoding) -> Hmac {
    hmac.secret = encoding;
    hmac
}

const fn stripe_like(
    header: &'static str,
    timestamp_key: &'static str,
    signature_key: &'static str,
) -> KeyValue {
    KeyValue {
        header,
        separator: ',',
        timestamp_key,
        signature_key,
        joiner: ".",
        timestamp_format: TimestampFormat::UnixSeconds,
        encoding: Encoding::Hex,
    }
}

const fn preset(
    name: &'static str,
    provider: &'static str,
    recipe: Recipe,
    docs: &'static str,
) -> Preset {
    Preset {
        name,
        provider,
        recipe,
        docs,
    }
}

const fn own(headers: &'static str, id: Option<&'static str>) -> Recipe {
    Recipe::Own { headers, id }
}

/// Every preset, in the order `hookgate schemes list` shows them.
pub const PRESETS: &[Preset] = &[
    // Standard Webhooks and the providers that send it.
    preset("standard-webhooks", "Standard Webhooks", own("webhook-id, webhook-timestamp, webhook-signature", Some("webhook-id")), "https://www.standardwebhooks.com/"),
    preset("svix", "Svix", own("svix-id, svix-timestamp, svix-signature", Some("svix-id")), "https://docs.svix.com/receiving/verifying-payloads/how-manual"),
    preset("clerk", "Clerk", Recipe::Alias("svix"), "https://clerk.com/docs/webhooks/sync-data"),
    preset("resend", "Resend", Recipe::Alias("svix"), "https://resend.com/docs/dashboard/webhooks/verify-webhooks-requests"),
    preset("stytch", "Stytch", Recipe::Alias("svix"), "https://stytch.com/docs/guides/webhooks/overview"),
    preset("workos", "WorkOS", Recipe::KeyValue(KeyValue { timestamp_format: TimestampFormat::UnixMillis, ..stripe_like("WorkOS-Signature", "t", "v1") }), "https://workos.com/docs/events/data-syncing/webhooks/3-process-the-events/b-validate-the-requests-manually"),
    preset("okta", "Okta (event hooks)", Recipe::Token { header: "authorization" }, "https://developer.okta.com/docs/concepts/event-hooks/#one-time-verification-request"),
    preset("auth0", "Auth0 (log streams)", Recipe::Token { header: "authorization" }, "https://auth0.com/docs/customize/log-streams/custom-log-streams"),
    preset("replicate", "Replicate", Recipe::Alias("standard-webhooks"), "https://replicate.com/docs/topics/webhooks/verify-webhook"),
    preset("openai", "OpenAI", Recipe::Alias("standard-webhooks"), "https://platform.openai.com/docs/guides/webhooks"),
    // Payments and commerce.
    preset("stripe", "Stripe", own("Stripe-Signature: t=...,v1=...", None), "https://docs.stripe.com/webhooks#verify-manually"),
    preset("paddle", "Paddle", own("Paddle-Signature: ts=...;h1=...", None), "https://developer.paddle.com/webhooks/signature-verification"),
    preset("shopify", "Shopify", Recipe::Hmac(with_id(base64(body_hex("X-Shopify-Hmac-Sha256")), "X-Shopify-Webhook-Id")), "https://shopify.dev/docs/apps/build/webhooks/subscribe/https#step-2-validate-the-origin-of-your-webhook-to-ensure-its-coming-from-shopify"),
    preset("square", "Square", Recipe::Hmac(signing(base64(body_hex("X-Square-HmacSha256-Signature")), "{url}{body}")), "https://developer.squareup.com/docs/webhooks/step3validate"),
    preset("woocommerce", "WooCommerce", Recipe::Hmac(with_id(base64(body_hex("X-WC-Webhook-Signature")), "X-WC-Webhook-Delivery-ID")), "https://woocommerce.com/document/webhooks/"),
    preset("lemonsqueezy", "Lemon Squeezy", Recipe::Hmac(body_hex("X-Signature")), "https://docs.lemonsqueezy.com/help/webhooks/signing-requests"),
    preset("coinbase-commerce", "Coinbase Commerce", Recipe::Hmac(body_hex("X-CC-Webhook-Signature")), "https://docs.cdp.coinbase.com/commerce-onchain/docs/webhooks-security"),
    preset("razorpay", "Razorpay", Recipe::Hmac(with_id(body_hex("X-Razorpay-Signature"), "X-Razorpay-Event-Id")), "https://razorpay.com/docs/webhooks/validate-test/"),
    preset("checkout", "Checkout.com", Recipe::Hmac(body_hex("Cko-Signature")), "https://www.checkout.com/docs/developer-resources/webhooks/manage-webhooks"),
    preset("gocardless", "GoCardless", Recipe::Hmac(body_hex("Webhook-Signature")), "https://developer.gocardless.com/getting-started/staying-up-to-date-with-webhooks"),
    preset("chargebee", "Chargebee", Recipe::Alias("basic"), "https://www.chargebee.com/docs/2.0/webhook_settings.html"),
    preset("xero", "Xero", Recipe::Hmac(base64(body_hex("X-Xero-Signature"))), "https://developer.xero.com/documentation/guides/webhooks/configuring-your-server/"),
    // Developer tools and source control.
    preset("github", "GitHub", Recipe::Hmac(with_id(prefixed(body_hex("X-Hub-Signature-256"), "sha256="), "X-GitHub-Delivery")), "https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries"),
    preset("gitlab", "GitLab", own("X-Gitlab-Token", Some("Idempotency-Key")), "https://docs.gitlab.com/user/project/integrations/webhooks/"),
    preset("bitbucket", "Bitbucket", Recipe::Hmac(with_id(prefixed(body_hex("X-Hub-Signature"), "sha256="), "X-Request-UUID")), "https://support.atlassian.com/bitbucket-cloud/docs/manage-webhooks/"),
    preset("jira", "Jira (Atlassian)", Recipe::Hmac(prefixed(body_hex("X-Hub-Signature"), "sha256=")), "https://developer.atlassian.com/cloud/jira/platform/webhooks/"),
    preset("linear", "Linear", Recipe::Hmac(Hmac { body_timestamp_ms: Some("/webhookTimestamp"), ..with_id(body_hex("Linear-Signature"), "Linear-Delivery") }), "https://linear.app/developers/webhooks"),
    preset("sentry", "Sentry", Recipe::Hmac(with_id(body_hex("Sentry-Hook-Signature"), "Request-ID")), "https://docs.sentry.io/organization/integrations/integration-platform/webhooks/"),
    preset("vercel", "Vercel", Recipe::Hmac(sha1(body_hex("X-Vercel-Signature"))), "https://vercel.com/docs/webhooks/webhooks-api"),
    preset("circleci", "CircleCI", Recipe::Hmac(prefixed(body_hex("Circleci-Signature"), "v1=")), "https://circleci.com/docs/webhooks/"),
    preset("buildkite", "Buildkite", Recipe::KeyValue(stripe_like("X-Buildkite-Signature", "timestamp", "signature")), "https://buildkite.com/docs/apis/webhooks"),
    preset("gitea", "Gitea", Recipe::Hmac(body_hex("X-Gitea-Signature")), "https://docs.gitea.com/usage/webhooks"),
    preset("gogs", "Gogs", Recipe::Hmac(body_hex("X-Gogs-Signature")), "https://gogs.io/docs/features/webhook"),
    preset("heroku", "Heroku", Recipe::Hmac(with_id(base64(body_hex("Heroku-Webhook-Hmac-SHA256")), "Heroku-Webhook-Id")), "https://devcenter.heroku.com/articles/app-webhooks#securing-webhook-requests"),
    preset("pagerduty", "PagerDuty", Recipe::Hmac(listed(prefixed(body_hex("X-PagerDuty-Signature"), "v1="), ',')), "https://developer.pagerduty.com/docs/verifying-signatures"),
    preset("launchdarkly", "LaunchDarkly", Recipe::Hmac(body_hex("X-LD-Signature")), "https://docs.launchdarkly.com/home/connecting/webhooks#signing-webhooks"),
    preset("azure-devops", "Azure DevOps", Recipe::Alias("basic"), "https://learn.microsoft.com/en-us/azure/devops/service-hooks/services/webhooks"),
    // Communication.
    preset("twilio", "Twilio", own("X-Twilio-Signature", None), "https://www.twilio.com/docs/usage/webhooks/webhooks-security"),
    preset("discord", "Discord (interactions)", Recipe::Ed25519(Ed25519 { header: "X-Signature-Ed25519", encoding: Encoding::Hex, timestamp_header: "X-Signature-Timestamp", signed: "{timestamp}{body}", key_encoding: Encoding::Hex }), "https://discord.com/developers/docs/interactions/overview#setting-up-an-endpoint-validating-security-request-headers"),
    preset("telnyx", "Telnyx", Recipe::Ed25519(Ed25519 { header: "telnyx-signature-ed25519", encoding: Encoding::Base64, timestamp_header: "telnyx-timestamp", signed: "{timestamp}|{body}", key_encoding: Encoding::Base64 }), "https://developers.telnyx.com/docs/messaging/messages/receiving-webhooks"),
    preset("sendgrid", "SendGrid (Event Webhook)", Recipe::EcdsaP256(EcdsaP256 { header: "X-Twilio-Email-Event-Webhook-Signature", der: true, timestamp_header: "X-Twilio-Email-Event-Webhook-Timestamp", signed: "{timestamp}{body}" }), "https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features"),
    preset("slack", "Slack", Recipe::Hmac(prefixed(timestamped(body_hex("X-Slack-Signature"), "X-Slack-Request-Timestamp", "v0:{timestamp}:{body}"), "v0=")), "https://api.slack.com/authentication/verifying-requests-from-slack"),
    preset("zoom", "Zoom", Recipe::Hmac(prefixed(timestamped(body_hex("X-Zm-Signature"), "X-Zm-Request-Timestamp", "v0:{timestamp}:{body}"), "v0=")), "https://developers.zoom.us/docs/api/webhooks/#verify-with-zooms-header"),
    preset("intercom", "Intercom", Recipe::Hmac(prefixed(sha1(body_hex("X-Hub-Signature")), "sha1=")), "https://developers.intercom.com/docs/webhooks/setting-up-webhooks"),
    preset("meta", "Meta (WhatsApp, Messenger, Instagram)", Recipe::Hmac(prefixed(body_hex("X-Hub-Signature-256"), "sha256=")), "https://developers.facebook.com/docs/graph-api/webhooks/getting-started#validate-payloads"),
    preset("teams", "Microsoft Teams (outgoing webhooks)", Recipe::Hmac(secret(prefixed(base64(body_hex("Authorization")), "HMAC "), SecretEncoding::Base64)), "https://learn.microsoft.com/en-us/microsoftteams/platform/webhooks-and-connectors/how-to/add-outgoing-webhook"),
    preset("telegram", "Telegram", Recipe::Token { header: "x-telegram-bot-api-secret-token" }, "https://core.telegram.org/bots/api#setwebhook"),
    preset("customerio", "Customer.io", Recipe::Hmac(timestamped(body_hex("X-CIO-Signature"), "X-CIO-Timestamp", "v0:{timestamp}:{body}")), "https://docs.customer.io/journeys/webhooks/#securely-verify-requests"),
    preset("twitch", "Twitch (EventSub)", Recipe::Hmac(prefixed(timestamps(with_id(timestamped(body_hex("Twitch-Eventsub-Message-Signature"), "Twitch-Eventsub-Message-Timestamp", "{id}{timestamp}{body}"), "Twitch-Eventsub-Message-Id"), TimestampFormat::Rfc3339), "sha256=")), "https://dev.twitch.tv/docs/eventsub/handling-webhook-events/#verifying-the-event-message"),
    preset("zendesk", "Zendesk", Recipe::Hmac(timestamps(timestamped(base64(body_hex("X-Zendesk-Webhook-Signature")), "X-Zendesk-Webhook-Signature-Timestamp", "{timestamp}{body}"), TimestampFormat::Rfc3339)), "https://developer.zendesk.com/documentation/webhooks/verifying/"),
    preset("helpscout", "Help Scout", Recipe::Hmac(sha1(base64(body_hex("X-HelpScout-Signature")))), "https://developer.helpscout.com/webhooks/"),
    preset("postmark", "Postmark", Recipe::Alias("basic"), "https://postmarkapp.com/developer/webhooks/webhooks-overview#protecting-your-webhook"),
    // Productivity.
    preset("typeform", "Typeform", Recipe::Hmac(prefixed(base64(body_hex("Typeform-Signature")), "sha256=")), "https://www.typeform.com/developers/webhooks/secure-your-webhooks/"),
    preset("calendly", "Calendly", Recipe::KeyValue(stripe_like("Calendly-Webhook-Signature", "t", "v1")), "https://developer.calendly.com/api-docs/4c305798a61d3-webhook-signatures"),
    preset("docusign", "DocuSign Connect", Recipe::Hmac(base64(body_hex("X-DocuSign-Signature-1"))), "https://developers.docusign.com/platform/webhooks/connect/hmac/"),
    preset("dropbox", "Dropbox", Recipe::Hmac(body_hex("X-Dropbox-Signature")), "https://www.dropbox.com/developers/reference/webhooks#documentation"),
    preset("asana", "Asana", Recipe::Hmac(body_hex("X-Hook-Signature")), "https://developers.asana.com/docs/webhooks-guide"),
    preset("trello", "Trello", Recipe::Hmac(signing(sha1(base64(body_hex("X-Trello-Webhook"))), "{body}{url}")), "https://developer.atlassian.com/cloud/trello/guides/rest-api/webhooks/#webhook-signatures"),
    preset("clickup", "ClickUp", Recipe::Hmac(body_hex("X-Signature")), "https://developer.clickup.com/docs/webhooksignature"),
    preset("notion", "Notion", Recipe::Hmac(prefixed(body_hex("X-Notion-Signature"), "sha256=")), "https://developers.notion.com/reference/webhooks#validating-event-payloads"),
    preset("airtable", "Airtable", Recipe::Hmac(secret(prefixed(body_hex("X-Airtable-Content-MAC"), "hmac-sha256="), SecretEncoding::Base64)), "https://airtable.com/developers/web/api/webhooks-overview#webhook-notification-delivery"),
    preset("pipedrive", "Pipedrive", Recipe::Alias("basic"), "https://pipedrive.readme.io/docs/guide-for-webhooks"),
    preset("persona", "Persona", Recipe::KeyValue(stripe_like("Persona-Signature", "t", "v1")), "https://docs.withpersona.com/docs/webhooks-best-practices#checking-signatures"),
    preset("box", "Box", Recipe::Hmac(timestamps(with_id(timestamped(base64(body_hex("Box-Signature-Primary")), "Box-Delivery-Timestamp", "{body}{timestamp}"), "Box-Delivery-Id"), TimestampFormat::Rfc3339)), "https://developer.box.com/guides/webhooks/v2/signatures-v2/"),
    preset("webflow", "Webflow", Recipe::Hmac(timestamps(timestamped(body_hex("X-Webflow-Signature"), "X-Webflow-Timestamp", "{timestamp}:{body}"), TimestampFormat::UnixMillis)), "https://developers.webflow.com/data/docs/working-with-webhooks#validating-request-signatures"),
    preset("sanity", "Sanity", Recipe::KeyValue(KeyValue { timestamp_format: TimestampFormat::UnixMillis, encoding: Encoding::Base64Url, ..stripe_like("Sanity-Webhook-Signature", "t", "v1") }), "https://www.sanity.io/docs/webhooks#d3a69c7ad4e5"),
    preset("tally", "Tally", Recipe::Hmac(base64(body_hex("Tally-Signature"))), "https://tally.so/help/webhooks"),
    // Infrastructure and monitoring.
    preset("segment", "Segment", Recipe::Hmac(sha1(body_hex("X-Signature"))), "https://segment.com/docs/connections/destinations/catalog/webhooks/#authentication"),
    preset("cloudflare", "Cloudflare (notifications)", Recipe::Token { header: "cf-webhook-auth" }, "https://developers.cloudflare.com/notifications/get-started/configure-webhooks/"),
    preset("hookdeck", "Hookdeck", Recipe::Hmac(base64(body_hex("X-Hookdeck-Signature"))), "https://hookdeck.com/docs/authentication#hookdeck-webhook-signature-verification"),
    preset("mux", "Mux", Recipe::KeyValue(stripe_like("Mux-Signature", "t", "v1")), "https://docs.mux.com/core/verify-webhook-signatures"),
    preset("frameio", "Frame.io", Recipe::Hmac(prefixed(timestamped(body_hex("X-Frameio-Signature"), "X-Frameio-Request-Timestamp", "v0:{timestamp}:{body}"), "v0=")), "https://developer.frame.io/docs/automations-webhooks/webhooks-overview#security-and-verification"),
    // The seed vendors.
    preset("rejento", "Rejento", Recipe::Hmac(with_id(body_hex("X-Rejento-Signature"), "X-Rejento-Delivery-Id")), "shared/seeds (Rejento's webhook docs)"),
    preset("hiresscope", "HiresScope", Recipe::Hmac(body_hex("X-HiresScope-Signature")), "shared/seeds (HiresScope's webhook docs)"),
    preset("tenzo", "Tenzo", Recipe::Hmac(body_hex("X-Webhook-Signature")), "shared/seeds (Tenzo's webhook docs)"),
    preset("jobylon", "Jobylon", Recipe::Alias("bearer"), "shared/seeds (Jobylon's webhook docs)"),
    // Static credentials any sender can be set up with.
    preset("bearer", "Any: Authorization: Bearer", own("Authorization: Bearer <token>", None), "https://www.rfc-editor.org/rfc/rfc6750"),
    preset("basic", "Any: Authorization: Basic", own("Authorization: Basic <user:password>", None), "https://www.rfc-editor.org/rfc/rfc7617"),
];

/// The preset named `name`.
pub fn find(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

impl Preset {
    /// The preset an alias stands for, or this one.
    fn resolved(&self) -> &Preset {
        match self.recipe {
            Recipe::Alias(target) => find(target).expect("an alias names a preset (tests)"),
            _ => self,
        }
    }

    /// What a request carries, in a line: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of {body}>`.
    pub fn signature(&self) -> String {
        let algorithm = |a: Algorithm| match a {
            Algorithm::Sha1 => "HMAC-SHA1",
            Algorithm::Sha256 => "HMAC-SHA256",
            Algorithm::Sha512 => "HMAC-SHA512",
        };
        let encoding = |e: Encoding| match e {
            Encoding::Hex => "hex",
            Encoding::Base64 => "base64",
            Encoding::Base64Url => "base64url",
        };
        match &self.recipe {
            Recipe::Own { headers, .. } => headers.to_string(),
            Recipe::Alias(target) => format!("as {target}: {}", self.resolved().signature()),
            Recipe::Hmac(h) => {
                let mut line = format!(
                    "{}: {}<{} {} of {}>",
                    h.header,
                    h.prefix,
                    encoding(h.encoding),
                    algorithm(h.algorithm),
                    h.signed
                );
                if let Some(t) = h.timestamp_header {
                    line.push_str(&format!(", {t}: {{timestamp}}"));
                }
                line
            }
            Recipe::KeyValue(kv) => format!(
                "{}: {}=...{}{}=<hex HMAC-SHA256 of {{{}}}{}{{body}}>",
                kv.header,
                kv.timestamp_key,
                kv.separator,
                kv.signature_key,
                kv.timestamp_key,
                kv.joiner
            ),
            Recipe::Token { header } => format!("{header}: <token>"),
            Recipe::EcdsaP256(e) => format!(
                "{}: <base64 ECDSA P-256 of {}>, {}: {{timestamp}}",
                e.header, e.signed, e.timestamp_header
            ),
            Recipe::Ed25519(e) => format!(
                "{}: <{} Ed25519 of {}>, {}: {{timestamp}}",
                e.header,
                encoding(e.encoding),
                e.signed,
                e.timestamp_header
            ),
        }
    }

    /// The header a delivery's id comes in, for `dedupe: { id: scheme }`.
    pub fn dedupe_id(&self) -> Option<&'static str> {
        match &self.resolved().recipe {
            Recipe::Own { id, .. } => *id,
            Recipe::Hmac(h) => h.id_header,
            _ => None,
        }
    }

    /// What the provider's secret looks like.
    pub fn secret_format(&self) -> SecretFormat {
        let preset = self.resolved();
        match (&preset.recipe, preset.name) {
            (Recipe::Own { .. }, "standard-webhooks" | "svix") => SecretFormat::Whsec,
            (Recipe::Own { .. }, "basic") => SecretFormat::UserPassword,
            (Recipe::Hmac(h), _) if h.secret == SecretEncoding::Base64 => SecretFormat::Base64,
            (Recipe::Hmac(h), _) if h.secret == SecretEncoding::Hex => SecretFormat::Hex,
            (Recipe::Ed25519(_), _) => SecretFormat::Ed25519PublicKey,
            (Recipe::EcdsaP256(_), _) => SecretFormat::EcdsaPublicKey,
            _ => SecretFormat::Text,
        }
    }

    /// Whether the signature covers the body (a static token does not).
    pub fn signs_body(&self) -> bool {
        !matches!(
            (&self.resolved().recipe, self.resolved().name),
            (Recipe::Token { .. }, _) | (Recipe::Own { .. }, "gitlab" | "bearer" | "basic")
        )
    }

    /// Whether the signature covers the delivery id, so a replay under a new id fails.
    pub fn signs_id(&self) -> bool {
        match &self.resolved().recipe {
            Recipe::Own { .. } => matches!(self.resolved().name, "standard-webhooks" | "svix"),
            Recipe::Hmac(h) => h.signed.contains("{id}"),
            _ => false,
        }
    }

    /// Whether the signed content holds the URL, which `verify.url` should then give.
    pub fn signs_url(&self) -> bool {
        match &self.resolved().recipe {
            Recipe::Own { .. } => self.resolved().name == "twilio",
            Recipe::Hmac(h) => h.signed.contains("{url}"),
            _ => false,
        }
    }
}

/// Every name `verify.scheme` takes: the presets', then `hmac` (which needs its options).
pub const SCHEME_NAMES: &[&str] = &names();

const fn names() -> [&'static str; PRESETS.len() + 1] {
    let mut names = ["hmac"; PRESETS.len() + 1];
    let mut i = 0;
    while i < PRESETS.len() {
        names[i] = PRESETS[i].name;
        i += 1;
    }
    names
}
