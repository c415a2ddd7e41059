"""Writes the `presets` section of tests/data/vectors.json: for each provider preset, a signed
request made with Python's hmac from the provider's documented recipe (the `source` URL), not
with hookgate. tests/scheme_presets.rs checks that hookgate verifies each one, and that sign
reproduces it.

    python3 tests/data/preset_vectors.py tests/data/vectors.json

Where a provider's SDK or docs publish a vector, the sections above `presets` hold it
(tests/scheme_vectors.rs); these are for the presets that have none.
"""
import base64
import hashlib
import hmac
import json
import sys

BODY = '{"id":"evt_1","type":"order.paid","data":{"amount":4200,"note":"caf\\u00e9 \\u2603"}}'
TS = 1767225600  # 2026-01-01T00:00:00Z
ID = "delivery_0001"
URL = "https://hooks.example.com/hooks/provider?src=1"


def mac(key, text, algo=hashlib.sha256):
    return hmac.new(key if isinstance(key, bytes) else key.encode(), text.encode(), algo).digest()


def hexmac(key, text, algo=hashlib.sha256):
    return mac(key, text, algo).hex()


def b64mac(key, text, algo=hashlib.sha256):
    return base64.b64encode(mac(key, text, algo)).decode()


def standard(secret, prefix):
    key = base64.b64decode(secret.removeprefix("whsec_"))
    sig = "v1," + b64mac(key, f"{ID}.{TS}.{BODY}")
    return {f"{prefix}-id": ID, f"{prefix}-timestamp": str(TS), f"{prefix}-signature": sig}


SVIX_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
TEAMS_SECRET = base64.b64encode(b"teams outgoing webhook key, 32b").decode()
AIRTABLE_SECRET = base64.b64encode(b"airtable mac secret bytes").decode()

# name -> (source, secret, headers as the provider sends them, url if signed)
V = {
    "clerk": ("https://clerk.com/docs/webhooks/sync-data (Svix)", SVIX_SECRET, standard(SVIX_SECRET, "svix"), None),
    "resend": ("https://resend.com/docs/dashboard/webhooks/verify-webhooks-requests (Svix)", SVIX_SECRET, standard(SVIX_SECRET, "svix"), None),
    "stytch": ("https://stytch.com/docs/guides/webhooks/overview (Svix)", SVIX_SECRET, standard(SVIX_SECRET, "svix"), None),
    "replicate": ("https://replicate.com/docs/topics/webhooks/verify-webhook", SVIX_SECRET, standard(SVIX_SECRET, "webhook"), None),
    "openai": ("https://platform.openai.com/docs/guides/webhooks (Standard Webhooks)", SVIX_SECRET, standard(SVIX_SECRET, "webhook"), None),
    "shopify": ("https://shopify.dev/docs/apps/build/webhooks/subscribe/https", "shpss_secret",
                {"X-Shopify-Hmac-Sha256": b64mac("shpss_secret", BODY), "X-Shopify-Webhook-Id": ID}, None),
    "square": ("https://developer.squareup.com/docs/webhooks/step3validate", "sq0wss-key",
               {"x-square-hmacsha256-signature": b64mac("sq0wss-key", URL + BODY)}, URL),
    "woocommerce": ("https://woocommerce.com/document/webhooks/", "wc_secret",
                    {"X-WC-Webhook-Signature": b64mac("wc_secret", BODY), "X-WC-Webhook-Delivery-ID": ID}, None),
    "lemonsqueezy": ("https://docs.lemonsqueezy.com/help/webhooks/signing-requests", "ls_signing_secret",
                     {"X-Signature": hexmac("ls_signing_secret", BODY)}, None),
    "coinbase-commerce": ("https://docs.cdp.coinbase.com/commerce-onchain/docs/webhooks-security", "cb-shared-secret",
                          {"X-CC-Webhook-Signature": hexmac("cb-shared-secret", BODY)}, None),
    "razorpay": ("https://razorpay.com/docs/webhooks/validate-test/", "rzp_webhook_secret",
                 {"X-Razorpay-Signature": hexmac("rzp_webhook_secret", BODY), "x-razorpay-event-id": ID}, None),
    "checkout": ("https://www.checkout.com/docs/developer-resources/webhooks/manage-webhooks", "cko-webhook-key",
                 {"Cko-Signature": hexmac("cko-webhook-key", BODY)}, None),
    "github": ("https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries", "It's a Secret to Everybody",
               {"X-Hub-Signature-256": "sha256=" + hexmac("It's a Secret to Everybody", BODY), "X-GitHub-Delivery": ID}, None),
    "bitbucket": ("https://support.atlassian.com/bitbucket-cloud/docs/manage-webhooks/", "bb-secret",
                  {"X-Hub-Signature": "sha256=" + hexmac("bb-secret", BODY), "X-Request-UUID": ID}, None),
    "jira": ("https://developer.atlassian.com/cloud/jira/platform/webhooks/", "jira-secret",
             {"X-Hub-Signature": "sha256=" + hexmac("jira-secret", BODY)}, None),
    "linear": ("https://linear.app/developers/webhooks", "lin_wh_secret", None, None),  # filled below: the body carries the time
    "sentry": ("https://docs.sentry.io/organization/integrations/integration-platform/webhooks/", "sentry-client-secret",
               {"Sentry-Hook-Signature": hexmac("sentry-client-secret", BODY), "Request-ID": ID}, None),
    "vercel": ("https://vercel.com/docs/webhooks/webhooks-api", "vercel-secret",
               {"x-vercel-signature": hexmac("vercel-secret", BODY, hashlib.sha1)}, None),
    "circleci": ("https://circleci.com/docs/webhooks/", "circle-secret",
                 {"circleci-signature": "v1=" + hexmac("circle-secret", BODY)}, None),
    "buildkite": ("https://buildkite.com/docs/apis/webhooks", "bk-token",
                  {"X-Buildkite-Signature": f"timestamp={TS},signature=" + hexmac("bk-token", f"{TS}.{BODY}")}, None),
    "slack": ("https://api.slack.com/authentication/verifying-requests-from-slack", "8f742231b10e8888abcd99yyyzzz85a5",
              {"X-Slack-Signature": "v0=" + hexmac("8f742231b10e8888abcd99yyyzzz85a5", f"v0:{TS}:{BODY}"), "X-Slack-Request-Timestamp": str(TS)}, None),
    "zoom": ("https://developers.zoom.us/docs/api/webhooks/#verify-with-zooms-header", "zoom_secret_token",
             {"x-zm-signature": "v0=" + hexmac("zoom_secret_token", f"v0:{TS}:{BODY}"), "x-zm-request-timestamp": str(TS)}, None),
    "intercom": ("https://developers.intercom.com/docs/webhooks/setting-up-webhooks", "intercom_client_secret",
                 {"X-Hub-Signature": "sha1=" + hexmac("intercom_client_secret", BODY, hashlib.sha1)}, None),
    "meta": ("https://developers.facebook.com/docs/graph-api/webhooks/getting-started#validate-payloads", "meta-app-secret",
             {"X-Hub-Signature-256": "sha256=" + hexmac("meta-app-secret", BODY)}, None),
    "teams": ("https://learn.microsoft.com/en-us/microsoftteams/platform/webhooks-and-connectors/how-to/add-outgoing-webhook", TEAMS_SECRET,
              {"Authorization": "HMAC " + b64mac(base64.b64decode(TEAMS_SECRET), BODY)}, None),
    "telegram": ("https://core.telegram.org/bots/api#setwebhook", "tg-secret_token-1",
                 {"X-Telegram-Bot-Api-Secret-Token": "tg-secret_token-1"}, None),
    "customerio": ("https://docs.customer.io/journeys/webhooks/#securely-verify-requests", "cio-signing-key",
                   {"X-CIO-Signature": hexmac("cio-signing-key", f"v0:{TS}:{BODY}"), "X-CIO-Timestamp": str(TS)}, None),
    "postmark": ("https://postmarkapp.com/developer/webhooks/webhooks-overview#protecting-your-webhook", "hooks:pm-password",
                 {"Authorization": "Basic " + base64.b64encode(b"hooks:pm-password").decode()}, None),
    "typeform": ("https://www.typeform.com/developers/webhooks/secure-your-webhooks/", "typeform-secret",
                 {"Typeform-Signature": "sha256=" + b64mac("typeform-secret", BODY)}, None),
    "calendly": ("https://developer.calendly.com/api-docs/4c305798a61d3-webhook-signatures", "calendly-signing-key",
                 {"Calendly-Webhook-Signature": f"t={TS},v1=" + hexmac("calendly-signing-key", f"{TS}.{BODY}")}, None),
    "docusign": ("https://developers.docusign.com/platform/webhooks/connect/hmac/", "docusign-hmac-key",
                 {"X-DocuSign-Signature-1": b64mac("docusign-hmac-key", BODY)}, None),
    "dropbox": ("https://www.dropbox.com/developers/reference/webhooks#documentation", "dropbox-app-secret",
                {"X-Dropbox-Signature": hexmac("dropbox-app-secret", BODY)}, None),
    "asana": ("https://developers.asana.com/docs/webhooks-guide", "asana-hook-secret",
              {"X-Hook-Signature": hexmac("asana-hook-secret", BODY)}, None),
    "trello": ("https://developer.atlassian.com/cloud/trello/guides/rest-api/webhooks/#webhook-signatures", "trello-app-secret",
               {"X-Trello-Webhook": b64mac("trello-app-secret", BODY + URL, hashlib.sha1)}, URL),
    "clickup": ("https://developer.clickup.com/docs/webhooksignature", "clickup-secret",
                {"X-Signature": hexmac("clickup-secret", BODY)}, None),
    "notion": ("https://developers.notion.com/reference/webhooks#validating-event-payloads", "secret_notion_verification",
               {"X-Notion-Signature": "sha256=" + hexmac("secret_notion_verification", BODY)}, None),
    "airtable": ("https://airtable.com/developers/web/api/webhooks-overview#webhook-notification-delivery", AIRTABLE_SECRET,
                 {"X-Airtable-Content-MAC": "hmac-sha256=" + hexmac(base64.b64decode(AIRTABLE_SECRET), BODY)}, None),
    "pipedrive": ("https://pipedrive.readme.io/docs/guide-for-webhooks", "pd-user:pd-pass",
                  {"Authorization": "Basic " + base64.b64encode(b"pd-user:pd-pass").decode()}, None),
    "persona": ("https://docs.withpersona.com/docs/webhooks-best-practices#checking-signatures", "wbhsec_persona",
                {"Persona-Signature": f"t={TS},v1=" + hexmac("wbhsec_persona", f"{TS}.{BODY}")}, None),
    "segment": ("https://segment.com/docs/connections/destinations/catalog/webhooks/#authentication", "segment-shared-secret",
                {"X-Signature": hexmac("segment-shared-secret", BODY, hashlib.sha1)}, None),
    "cloudflare": ("https://developers.cloudflare.com/notifications/get-started/configure-webhooks/", "cf-notification-secret",
                   {"cf-webhook-auth": "cf-notification-secret"}, None),
    "hookdeck": ("https://hookdeck.com/docs/authentication#hookdeck-webhook-signature-verification", "hookdeck-signing-secret",
                 {"x-hookdeck-signature": b64mac("hookdeck-signing-secret", BODY)}, None),
    "rejento": ("shared/seeds: Rejento's webhook docs", "whsec_test_ats",
                {"X-Rejento-Signature": hexmac("whsec_test_ats", BODY), "X-Rejento-Delivery-Id": ID}, None),
    "hiresscope": ("shared/seeds: HiresScope's webhook docs", "whsec_test_ats",
                   {"X-HiresScope-Signature": hexmac("whsec_test_ats", BODY)}, None),
    "tenzo": ("shared/seeds: Tenzo's webhook docs", "whsec_test_ats",
              {"X-Webhook-Signature": hexmac("whsec_test_ats", BODY)}, None),
    "jobylon": ("shared/seeds: Jobylon's webhook docs", "jobylon-token",
                {"Authorization": "Bearer jobylon-token"}, None),
    "gitlab": ("https://docs.gitlab.com/user/project/integrations/webhooks/", "gitlab-token",
               {"X-Gitlab-Token": "gitlab-token", "Idempotency-Key": ID}, None),
    "bearer": ("https://www.rfc-editor.org/rfc/rfc6750", "any-token", {"Authorization": "Bearer any-token"}, None),
    "basic": ("https://www.rfc-editor.org/rfc/rfc7617", "user:pass word",
              {"Authorization": "Basic " + base64.b64encode(b"user:pass word").decode()}, None),
}

MS = str(TS * 1000)
RFC = "2026-01-01T00:00:00Z"
V.update({
    "gocardless": ("https://developer.gocardless.com/getting-started/staying-up-to-date-with-webhooks", "gc-webhook-secret",
                   {"Webhook-Signature": hexmac("gc-webhook-secret", BODY)}, None),
    "chargebee": ("https://www.chargebee.com/docs/2.0/webhook_settings.html", "cb-user:cb-pass",
                  {"Authorization": "Basic " + base64.b64encode(b"cb-user:cb-pass").decode()}, None),
    "xero": ("https://developer.xero.com/documentation/guides/webhooks/configuring-your-server/", "xero-webhook-key",
             {"x-xero-signature": b64mac("xero-webhook-key", BODY)}, None),
    "gitea": ("https://docs.gitea.com/usage/webhooks", "gitea-secret", {"X-Gitea-Signature": hexmac("gitea-secret", BODY)}, None),
    "gogs": ("https://gogs.io/docs/features/webhook", "gogs-secret", {"X-Gogs-Signature": hexmac("gogs-secret", BODY)}, None),
    "heroku": ("https://devcenter.heroku.com/articles/app-webhooks#securing-webhook-requests", "heroku-secret",
               {"Heroku-Webhook-Hmac-SHA256": b64mac("heroku-secret", BODY), "Heroku-Webhook-Id": ID}, None),
    # While a secret rotates, PagerDuty sends a signature per secret.
    "pagerduty": ("https://developer.pagerduty.com/docs/verifying-signatures", "pd-signing-secret",
                  {"X-PagerDuty-Signature": "v1=" + hexmac("pd-old-secret", BODY) + ",v1=" + hexmac("pd-signing-secret", BODY)}, None,
                  {"X-PagerDuty-Signature": "v1=" + hexmac("pd-signing-secret", BODY)}),
    "launchdarkly": ("https://docs.launchdarkly.com/home/connecting/webhooks#signing-webhooks", "ld-secret",
                     {"X-LD-Signature": hexmac("ld-secret", BODY)}, None),
    "azure-devops": ("https://learn.microsoft.com/en-us/azure/devops/service-hooks/services/webhooks", "ado:ado-pass",
                     {"Authorization": "Basic " + base64.b64encode(b"ado:ado-pass").decode()}, None),
    # Twitch writes nanoseconds; hookgate signs whole seconds.
    "twitch": ("https://dev.twitch.tv/docs/eventsub/handling-webhook-events/#verifying-the-event-message", "twitch-eventsub-secret",
               {"Twitch-Eventsub-Message-Signature": "sha256=" + hexmac("twitch-eventsub-secret", ID + "2026-01-01T00:00:00.123456789Z" + BODY),
                "Twitch-Eventsub-Message-Timestamp": "2026-01-01T00:00:00.123456789Z", "Twitch-Eventsub-Message-Id": ID}, None,
               {"Twitch-Eventsub-Message-Signature": "sha256=" + hexmac("twitch-eventsub-secret", ID + RFC + BODY),
                "Twitch-Eventsub-Message-Timestamp": RFC}),
    "zendesk": ("https://developer.zendesk.com/documentation/webhooks/verifying/", "zendesk-signing-secret",
                {"X-Zendesk-Webhook-Signature": b64mac("zendesk-signing-secret", RFC + BODY), "X-Zendesk-Webhook-Signature-Timestamp": RFC}, None),
    "helpscout": ("https://developer.helpscout.com/webhooks/", "helpscout-secret",
                  {"X-HelpScout-Signature": b64mac("helpscout-secret", BODY, hashlib.sha1)}, None),
    # Box writes the time with an offset; hookgate signs it in UTC.
    "box": ("https://developer.box.com/guides/webhooks/v2/signatures-v2/", "box-primary-key",
            {"Box-Signature-Primary": b64mac("box-primary-key", BODY + "2025-12-31T16:00:00-08:00"),
             "Box-Delivery-Timestamp": "2025-12-31T16:00:00-08:00", "Box-Delivery-Id": ID}, None,
            {"Box-Signature-Primary": b64mac("box-primary-key", BODY + RFC), "Box-Delivery-Timestamp": RFC}),
    "webflow": ("https://developers.webflow.com/data/docs/working-with-webhooks#validating-request-signatures", "webflow-secret",
                {"X-Webflow-Signature": hexmac("webflow-secret", f"{MS}:{BODY}"), "X-Webflow-Timestamp": MS}, None),
    "sanity": ("https://www.sanity.io/docs/webhooks (@sanity/webhook)", "sanity-secret",
               {"Sanity-Webhook-Signature": f"t={MS},v1=" + base64.urlsafe_b64encode(mac("sanity-secret", f"{MS}.{BODY}")).decode().rstrip("=")}, None),
    "tally": ("https://tally.so/help/webhooks", "tally-signing-secret", {"Tally-Signature": b64mac("tally-signing-secret", BODY)}, None),
    # WorkOS puts a space after the comma.
    "workos": ("https://workos.com/docs/events/data-syncing/webhooks", "workos-secret",
               {"WorkOS-Signature": f"t={MS}, v1=" + hexmac("workos-secret", f"{MS}.{BODY}")}, None,
               {"WorkOS-Signature": f"t={MS},v1=" + hexmac("workos-secret", f"{MS}.{BODY}")}),
    "okta": ("https://developer.okta.com/docs/concepts/event-hooks/", "okta-hook-secret", {"Authorization": "okta-hook-secret"}, None),
    "auth0": ("https://auth0.com/docs/customize/log-streams/custom-log-streams", "auth0-stream-token", {"Authorization": "auth0-stream-token"}, None),
    "mux": ("https://docs.mux.com/core/verify-webhook-signatures", "mux-signing-secret",
            {"Mux-Signature": f"t={TS},v1=" + hexmac("mux-signing-secret", f"{TS}.{BODY}")}, None),
    "frameio": ("https://developer.frame.io/docs/automations-webhooks/webhooks-overview", "frameio-secret",
                {"X-Frameio-Signature": "v0=" + hexmac("frameio-secret", f"v0:{TS}:{BODY}"), "X-Frameio-Request-Timestamp": str(TS)}, None),
})

# Ed25519: PyNaCl signs with a fixed seed; receivers hold the public key. `signing_secret`
# is the same key as hookgate's whsk_ (seed, then public key, in base64), to sign with.
from nacl.signing import SigningKey  # noqa: E402

SEED = bytes(range(32))
KEY = SigningKey(SEED)
PUBLIC = bytes(KEY.verify_key)
WHSK = "whsk_" + base64.b64encode(SEED + PUBLIC).decode()
V["discord"] = ("https://discord.com/developers/docs/interactions/overview#setting-up-an-endpoint-validating-security-request-headers",
                PUBLIC.hex(), {"X-Signature-Ed25519": KEY.sign(f"{TS}{BODY}".encode()).signature.hex(), "X-Signature-Timestamp": str(TS)}, None)
V["telnyx"] = ("https://developers.telnyx.com/docs/messaging/messages/receiving-webhooks",
               base64.b64encode(PUBLIC).decode(),
               {"telnyx-signature-ed25519": base64.b64encode(KEY.sign(f"{TS}|{BODY}".encode()).signature).decode(), "telnyx-timestamp": str(TS)}, None)
# ECDSA P-256 (SendGrid): `cryptography` signs with a fixed private key; receivers hold base64
# of the public key's DER SubjectPublicKeyInfo, as SendGrid's settings show it.
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

EC_KEY = ec.derive_private_key(0x1D0E5B9A2C4F6E8D7B3A192817263544F5E6D7C8B9A0F1E2D3C4B5A697887766, ec.SECP256R1())
EC_PUBLIC = base64.b64encode(EC_KEY.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
EC_PRIVATE = base64.b64encode(EC_KEY.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())).decode()
V["sendgrid"] = ("https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features",
                 EC_PUBLIC,
                 {"X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(EC_KEY.sign(f"{TS}{BODY}".encode(), ec.ECDSA(hashes.SHA256(), deterministic_signing=True))).decode(),
                  "X-Twilio-Email-Event-Webhook-Timestamp": str(TS)}, None)
SIGNING = {"discord": WHSK, "telnyx": WHSK, "sendgrid": EC_PRIVATE}

# Linear signs the body, which carries the time in milliseconds.
LINEAR_BODY = json.dumps({"action": "create", "type": "Issue", "webhookTimestamp": TS * 1000}, separators=(",", ":"))
V["linear"] = (V["linear"][0], "lin_wh_secret", {"Linear-Signature": hexmac("lin_wh_secret", LINEAR_BODY), "Linear-Delivery": ID}, None)

path = sys.argv[1]
with open(path) as f:
    doc = json.load(f)
doc["presets"] = {
    "_note": "Made by tests/data/preset_vectors.py with Python's hmac from each provider's documented recipe (source); "
             "body, timestamp and id are the same for all but linear, whose body carries its time.",
    "body": BODY, "timestamp": TS, "id": ID,
    **{name: {"source": source, "secret": secret, "headers": headers, **({"url": url} if url else {}),
              **({"body": LINEAR_BODY} if name == "linear" else {}),
              # Where the provider's form differs from hookgate's (a time's precision, a space,
              # a second signature), the headers hookgate's sign makes, computed here too.
              **({"signed": rest[0]} if rest else {}),
              **({"signing_secret": SIGNING[name]} if name in SIGNING else {})}
       for name, (source, secret, headers, url, *rest) in sorted(V.items())},
}
with open(path, "w") as f:
    json.dump(doc, f, indent=2, ensure_ascii=False)
    f.write("\n")
