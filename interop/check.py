"""Cross-checks hookgate against the providers' official Python libraries, both ways:
what the library signs, `hookgate verify` accepts; what `hookgate sign` makes, the
library's own verifier accepts. Usage: python check.py PATH/TO/hookgate"""

import base64
import datetime
import hashlib
import json
import subprocess
import sys
import time

import discord_interactions
import nacl.signing
import slack_sdk.signature
import standardwebhooks
import stripe
import svix.webhooks
from twilio.request_validator import RequestValidator

HOOKGATE = sys.argv[1]
NOW = int(time.time())
BODY = json.dumps({"event": "candidate.created", "data": {"id": "cand_123", "name": "Zoë"}}, ensure_ascii=False)
results = []


def hookgate_sign(scheme, secret, body, msg_id="msg_interop_1", ts=NOW, url=None):
    args = [HOOKGATE, "sign", "--scheme", scheme, "--secret", secret, "--id", msg_id, "--timestamp", str(ts)]
    if url:
        args += ["--url", url]
    out = subprocess.run(args + ["-"], input=body.encode(), capture_output=True, check=True).stdout.decode()
    return dict(line.split(": ", 1) for line in out.strip().splitlines())


def hookgate_verify(scheme, secret, body, headers, url=None, now=NOW):
    args = [HOOKGATE, "verify", "--scheme", scheme, "--secret", secret, "--now", str(now)]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    if url:
        args += ["--url", url]
    run = subprocess.run(args + ["-"], input=body.encode(), capture_output=True)
    return run.returncode == 0, run.stdout.decode().strip()


def case(name, fn):
    try:
        outcome = fn()
        ok = outcome is True or (isinstance(outcome, tuple) and outcome[0])
        detail = "" if ok else f": {outcome}"
    except Exception as e:  # a library raising is a failed check
        ok, detail = False, f": {type(e).__name__}: {e}"
    results.append(ok)
    print(f"{'ok  ' if ok else 'FAIL'} {name}{detail}")


# Standard Webhooks
SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def sw_they_sign():
    sig = standardwebhooks.Webhook(SW_SECRET).sign("msg_1", datetime.datetime.fromtimestamp(NOW, tz=datetime.timezone.utc), BODY)
    return hookgate_verify("standard-webhooks", SW_SECRET, BODY, {"webhook-id": "msg_1", "webhook-timestamp": str(NOW), "webhook-signature": sig})


def sw_we_sign():
    standardwebhooks.Webhook(SW_SECRET).verify(BODY, hookgate_sign("standard-webhooks", SW_SECRET, BODY))
    return True


case("standard-webhooks: library signs, hookgate verifies", sw_they_sign)
case("standard-webhooks: hookgate signs, library verifies", sw_we_sign)


# Svix
def svix_they_sign():
    sig = svix.webhooks.Webhook(SW_SECRET).sign("msg_2", datetime.datetime.fromtimestamp(NOW, tz=datetime.timezone.utc), BODY)
    return hookgate_verify("svix", SW_SECRET, BODY, {"svix-id": "msg_2", "svix-timestamp": str(NOW), "svix-signature": sig})


def svix_we_sign():
    svix.webhooks.Webhook(SW_SECRET).verify(BODY, hookgate_sign("svix", SW_SECRET, BODY))
    return True


case("svix: library signs, hookgate verifies", svix_they_sign)
case("svix: hookgate signs, library verifies", svix_we_sign)


# The providers that send Svix's or Standard Webhooks' signatures, under their own preset names.
def alias_they_sign(preset, library, prefix):
    def check():
        sig = library(SW_SECRET).sign("msg_3", datetime.datetime.fromtimestamp(NOW, tz=datetime.timezone.utc), BODY)
        return hookgate_verify(preset, SW_SECRET, BODY, {f"{prefix}-id": "msg_3", f"{prefix}-timestamp": str(NOW), f"{prefix}-signature": sig})
    return check


def alias_we_sign(preset, library):
    def check():
        library(SW_SECRET).verify(BODY, hookgate_sign(preset, SW_SECRET, BODY))
        return True
    return check


for preset, library, prefix in [("clerk", svix.webhooks.Webhook, "svix"), ("resend", svix.webhooks.Webhook, "svix"),
                                ("stytch", svix.webhooks.Webhook, "svix"), ("replicate", standardwebhooks.Webhook, "webhook"),
                                ("openai", standardwebhooks.Webhook, "webhook")]:
    case(f"{preset}: {library.__module__.split('.')[0]} signs, hookgate verifies", alias_they_sign(preset, library, prefix))
    case(f"{preset}: hookgate signs, {library.__module__.split('.')[0]} verifies", alias_we_sign(preset, library))

# Discord: discord-interactions verifies with PyNaCl, which signs here as Discord does.
DISCORD_SEED = bytes(range(1, 33))
DISCORD_KEY = nacl.signing.SigningKey(DISCORD_SEED)
DISCORD_PUBLIC = bytes(DISCORD_KEY.verify_key).hex()


def discord_they_sign():
    signature = DISCORD_KEY.sign(f"{NOW}{BODY}".encode()).signature.hex()
    return hookgate_verify("discord", DISCORD_PUBLIC, BODY, {"X-Signature-Ed25519": signature, "X-Signature-Timestamp": str(NOW)})


def discord_we_sign():
    private = "whsk_" + base64.b64encode(DISCORD_SEED + bytes(DISCORD_KEY.verify_key)).decode()
    headers = hookgate_sign("discord", private, BODY)
    return discord_interactions.verify_key(BODY.encode(), headers["x-signature-ed25519"], headers["x-signature-timestamp"], DISCORD_PUBLIC)


def discord_near_miss():
    headers = hookgate_sign("discord", "whsk_" + base64.b64encode(DISCORD_SEED + bytes(DISCORD_KEY.verify_key)).decode(), BODY)
    return not discord_interactions.verify_key((BODY + " ").encode(), headers["x-signature-ed25519"], headers["x-signature-timestamp"], DISCORD_PUBLIC)


case("discord: PyNaCl signs, hookgate verifies", discord_they_sign)
case("discord: hookgate signs, discord-interactions verifies", discord_we_sign)
case("discord: discord-interactions refuses a changed body", discord_near_miss)

# Stripe
STRIPE_SECRET = "whsec_interop_secret"


def stripe_they_sign():
    sig = stripe.WebhookSignature._compute_signature(f"{NOW}.{BODY}", STRIPE_SECRET)
    return hookgate_verify("stripe", STRIPE_SECRET, BODY, {"Stripe-Signature": f"t={NOW},v1={sig}"})


def stripe_we_sign():
    header = hookgate_sign("stripe", STRIPE_SECRET, BODY)["stripe-signature"]
    return stripe.WebhookSignature.verify_header(BODY, header, STRIPE_SECRET, tolerance=300)


case("stripe: library signs, hookgate verifies", stripe_they_sign)
case("stripe: hookgate signs, library verifies", stripe_we_sign)

# Slack
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def slack_they_sign():
    sig = slack_sdk.signature.SignatureVerifier(SLACK_SECRET).generate_signature(timestamp=str(NOW), body=BODY)
    return hookgate_verify("slack", SLACK_SECRET, BODY, {"X-Slack-Signature": sig, "X-Slack-Request-Timestamp": str(NOW)})


def slack_we_sign():
    h = hookgate_sign("slack", SLACK_SECRET, BODY)
    return slack_sdk.signature.SignatureVerifier(SLACK_SECRET).is_valid(BODY, h["x-slack-request-timestamp"], h["x-slack-signature"])


case("slack: library signs, hookgate verifies", slack_they_sign)
case("slack: hookgate signs, library verifies", slack_we_sign)

# Twilio: form parameters, and the JSON-body variant
TWILIO_TOKEN = "12345"
URL = "https://hooks.example.com/twilio/voice?tenant=a"
PARAMS = {"CallSid": "CA1234567890ABCDE", "From": "+14158675309", "To": "+18005551212", "Digits": "1234"}
FORM = "&".join(f"{k}={v.replace('+', '%2B')}" for k, v in PARAMS.items())


def twilio_they_sign():
    sig = RequestValidator(TWILIO_TOKEN).compute_signature(URL, PARAMS)
    return hookgate_verify("twilio", TWILIO_TOKEN, FORM, {"X-Twilio-Signature": sig, "Content-Type": "application/x-www-form-urlencoded"}, url=URL)


def twilio_we_sign():
    sig = hookgate_sign("twilio", TWILIO_TOKEN, FORM, url=URL)["x-twilio-signature"]
    return RequestValidator(TWILIO_TOKEN).validate(URL, PARAMS, sig)


JSON_URL = URL + "&bodySHA256=" + hashlib.sha256(BODY.encode()).hexdigest()


def twilio_json_they_sign():
    sig = RequestValidator(TWILIO_TOKEN).compute_signature(JSON_URL, {})
    return hookgate_verify("twilio", TWILIO_TOKEN, BODY, {"X-Twilio-Signature": sig, "Content-Type": "application/json"}, url=JSON_URL)


def twilio_json_we_sign():
    sig = hookgate_sign("twilio", TWILIO_TOKEN, BODY, url=JSON_URL)["x-twilio-signature"]
    return RequestValidator(TWILIO_TOKEN).validate(JSON_URL, BODY, sig)


case("twilio: library signs, hookgate verifies", twilio_they_sign)
case("twilio: hookgate signs, library verifies", twilio_we_sign)
case("twilio (JSON body): library signs, hookgate verifies", twilio_json_they_sign)
case("twilio (JSON body): hookgate signs, library verifies", twilio_json_we_sign)


# Near misses: the libraries' signatures with one thing wrong must fail in hookgate.
def tampered_body_rejected():
    sig = standardwebhooks.Webhook(SW_SECRET).sign("msg_1", datetime.datetime.fromtimestamp(NOW, tz=datetime.timezone.utc), BODY)
    ok, out = hookgate_verify("standard-webhooks", SW_SECRET, BODY + " ", {"webhook-id": "msg_1", "webhook-timestamp": str(NOW), "webhook-signature": sig})
    return (not ok and "invalid_signature" in out), out


def stale_stripe_rejected():
    ts = NOW - 301
    sig = stripe.WebhookSignature._compute_signature(f"{ts}.{BODY}", STRIPE_SECRET)
    ok, out = hookgate_verify("stripe", STRIPE_SECRET, BODY, {"Stripe-Signature": f"t={ts},v1={sig}"})
    return (not ok and "timestamp_out_of_tolerance" in out), out


case("near miss: tampered body is invalid_signature", tampered_body_rejected)
case("near miss: stripe timestamp 301s old is timestamp_out_of_tolerance", stale_stripe_rejected)

passed = sum(results)
print(f"interop-python: {passed} passed, {len(results) - passed} failed")
sys.exit(0 if passed == len(results) else 1)
