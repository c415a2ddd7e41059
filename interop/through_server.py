"""End to end with the providers' official libraries: each library signs a webhook, it is
sent through a running hookgate to a small app, and the app must see the valid one
exactly once and none of the invalid, stale, future-dated or tampered ones.
Usage: python through_server.py PATH/TO/hookgate"""

import datetime
import http.server
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import slack_sdk.signature
import standardwebhooks
import stripe
import svix.webhooks
from twilio.request_validator import RequestValidator

HOOKGATE = sys.argv[1]
SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
received = []


outbound_verified = []


class App(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == "/outbound/standard":
            # hookgate's outbound side as the sender: the official library is the receiver.
            try:
                standardwebhooks.Webhook(SW_SECRET).verify(body, dict(self.headers))
                outbound_verified.append(self.headers["webhook-id"])
            except Exception as e:  # a failed verification is recorded as a failure below
                outbound_verified.append(f"invalid: {e}")
        else:
            received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def do_GET(self):  # /_received: what the app got, for the npm half
        body = json.dumps([p for p, _ in received]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


app = http.server.ThreadingHTTPServer(("127.0.0.1", 0), App)
threading.Thread(target=app.serve_forever, daemon=True).start()
inbound, admin, outbound = free_port(), free_port(), free_port()
base = f"http://127.0.0.1:{inbound}"
work = tempfile.mkdtemp()
routes = {
    "standard-webhooks": f"verify: {{ scheme: standard-webhooks, secrets: [{SW_SECRET}] }}",
    "svix": f"verify: {{ scheme: svix, secrets: [{SW_SECRET}] }}",
    "stripe": "verify: { scheme: stripe, secrets: [whsec_e2e] }",
    "slack": "verify: { scheme: slack, secrets: [slack-e2e] }",
    "slack-handshake": "verify: { scheme: slack, secrets: [slack-e2e] }, handshake: slack",
    "twilio": f"verify: {{ scheme: twilio, secrets: [twilio-e2e], url: \"{base}/hooks/twilio\" }}",
    "github": "verify: { scheme: github, secrets: [github-e2e] }",
    "shopify": "verify: { scheme: shopify, secrets: [shopify-e2e] }",
}
config = os.path.join(work, "hookgate.yaml")
with open(config, "w") as f:
    f.write(f"admin: {{ listen: 127.0.0.1:{admin} }}\nstore: {{ path: {work}/data }}\n")
    f.write(f"outbound:\n  listen: 127.0.0.1:{outbound}\n  endpoints:\n")
    f.write(f"    - {{ name: standard, url: \"http://127.0.0.1:{app.server_address[1]}/outbound/standard\", sign: {{ scheme: standard-webhooks, secret: {SW_SECRET} }} }}\n")
    f.write(f"inbound:\n  listen: 127.0.0.1:{inbound}\n  upstream: http://127.0.0.1:{app.server_address[1]}\n  routes:\n")
    for name, verify in routes.items():
        f.write(f"    - {{ name: {name}, path: /hooks/{name}, {verify} }}\n")
gateway = subprocess.Popen([HOOKGATE, "run", "-c", config], stderr=open(os.path.join(work, "log"), "w"))
for _ in range(200):
    try:
        if urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz").status == 200:
            break
    except Exception:
        time.sleep(0.05)

results = []


def post(scheme, headers, body):
    request = urllib.request.Request(f"{base}/hooks/{scheme}", data=body.encode(), headers=headers, method="POST")
    try:
        return urllib.request.urlopen(request).status
    except urllib.error.HTTPError as e:
        return e.code


def expect(name, scheme, headers, body, status, reaches_app):
    before = len(received)
    got = post(scheme, headers, body)
    time.sleep(0.02)
    arrived = len(received) - before
    ok = got == status and arrived == (1 if reaches_app else 0)
    results.append(ok)
    print(f"{'ok  ' if ok else 'FAIL'} {scheme}: {name} -> {got}, app saw {arrived}")


def cases(scheme, sign, body):
    """sign(ts, body, secret_ok) -> headers made by the official library."""
    now = int(time.time())
    expect("valid", scheme, sign(now, body, True), body, 200, True)
    expect("wrong secret", scheme, sign(now, body, False), body, 401, False)
    expect("tampered body", scheme, sign(now, body, True), body + " ", 401, False)
    if sign(now, body, True) != sign(now - 600, body, True):  # the scheme has a timestamp
        expect("stale (10 min old)", scheme, sign(now - 600, body, True), body, 401, False)
        expect("future (10 min ahead)", scheme, sign(now + 600, body, True), body, 401, False)


BODY = json.dumps({"event": "candidate.created", "id": "evt_1"})
utc = datetime.timezone.utc
OTHER_SW_SECRET = "whsec_QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB"
cases("standard-webhooks", lambda ts, b, ok: {
    "webhook-id": "msg_1", "webhook-timestamp": str(ts),
    "webhook-signature": standardwebhooks.Webhook(SW_SECRET if ok else OTHER_SW_SECRET).sign("msg_1", datetime.datetime.fromtimestamp(ts, tz=utc), b)}, BODY)
cases("svix", lambda ts, b, ok: {
    "svix-id": "msg_2", "svix-timestamp": str(ts),
    "svix-signature": svix.webhooks.Webhook(SW_SECRET if ok else OTHER_SW_SECRET).sign("msg_2", datetime.datetime.fromtimestamp(ts, tz=utc), b)}, BODY)
cases("stripe", lambda ts, b, ok: {
    "Stripe-Signature": f"t={ts},v1=" + stripe.WebhookSignature._compute_signature(f"{ts}.{b}", "whsec_e2e" if ok else "whsec_other")}, BODY)
cases("slack", lambda ts, b, ok: {
    "X-Slack-Request-Timestamp": str(ts),
    "X-Slack-Signature": slack_sdk.signature.SignatureVerifier("slack-e2e" if ok else "other").generate_signature(timestamp=str(ts), body=b)}, BODY)


def slack_handshake(secret, challenge):
    """Slack's url_verification, signed by slack_sdk: hookgate answers it, the app never sees it."""
    body = json.dumps({"token": "t", "challenge": challenge, "type": "url_verification"})
    ts = str(int(time.time()))
    signature = slack_sdk.signature.SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    request = urllib.request.Request(f"{base}/hooks/slack-handshake", data=body.encode(), method="POST",
                                     headers={"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature})
    before = len(received)
    try:
        with urllib.request.urlopen(request) as response:
            answer = (response.status, json.loads(response.read()))
    except urllib.error.HTTPError as e:
        answer = (e.code, None)
    time.sleep(0.02)
    return answer, len(received) - before


for name, secret, expected in [
    ("signed by slack_sdk", "slack-e2e", (200, {"challenge": "3eZbrw1aBm2rZgRNFdxV"})),
    ("signed with another secret", "other", (401, None)),
]:
    answer, arrived = slack_handshake(secret, "3eZbrw1aBm2rZgRNFdxV")
    ok = answer == expected and arrived == 0
    results.append(ok)
    print(f"{'ok  ' if ok else 'FAIL'} slack url_verification handshake: {name} -> {answer}, app saw {arrived}")

PARAMS = {"CallSid": "CA1", "From": "+14158675309", "Body": "hello"}
FORM = "&".join(f"{k}={v.replace('+', '%2B')}" for k, v in PARAMS.items())
cases("twilio", lambda ts, b, ok: {
    "Content-Type": "application/x-www-form-urlencoded",
    "X-Twilio-Signature": RequestValidator("twilio-e2e" if ok else "other").compute_signature(f"{base}/hooks/twilio", PARAMS)}, FORM)

# The npm libraries (GitHub, Shopify) sign in Node; their requests go through the same gateway.
node = subprocess.run(["node", os.path.join(os.path.dirname(os.path.abspath(__file__)), "through_server.mjs"), base, f"http://127.0.0.1:{app.server_address[1]}/_received"])
results.append(node.returncode == 0)

# Outbound: hookgate signs what the app posts; the official library verifies it on arrival.
request = urllib.request.Request(f"http://127.0.0.1:{outbound}/standard", data=BODY.encode(), headers={"Content-Type": "application/json"}, method="POST")
delivery_id = json.loads(urllib.request.urlopen(request).read())["delivery_id"]
for _ in range(100):
    if outbound_verified:
        break
    time.sleep(0.05)
ok = outbound_verified == [delivery_id]
results.append(ok)
print(f"{'ok  ' if ok else 'FAIL'} outbound standard-webhooks: hookgate delivers, the library verifies -> {outbound_verified}")

gateway.terminate()
gateway.wait(timeout=15)
passed = sum(results)
print(f"interop-server: {passed} passed, {len(results) - passed} failed")
sys.exit(0 if passed == len(results) else 1)
