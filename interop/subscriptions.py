"""Subscriptions against code hookgate did not write: a subscription's deliveries verify
with the official standardwebhooks library during a secret rotation (old and new secret)
and afterwards (only the new one); Ed25519 (`v1a`) deliveries verify with the
`cryptography` package, and `v1a` signatures it makes pass hookgate's inbound side.
Operational events (a receiver's 410, a dead delivery) arrive signed, and verify with the
same library.
Usage: python subscriptions.py PATH/TO/hookgate"""

import base64
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

import standardwebhooks
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

HOOKGATE = sys.argv[1]
TOKEN = "interop-admin-token"
deliveries = []  # (path, headers, body) as the receiver got them
received = []  # what reached the app behind the inbound route


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path.startswith("/app"):
            received.append(body)
        else:
            deliveries.append((self.path, dict(self.headers), body))
        # A customer's endpoint that is gone for good, and one that fails.
        self.send_response(410 if self.path == "/gone" else 503 if self.path == "/failing" else 200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(method, url, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
threading.Thread(target=receiver.serve_forever, daemon=True).start()
port = receiver.server_address[1]
inbound, admin, outbound = free_port(), free_port(), free_port()
work = tempfile.mkdtemp()

# The sender's key pair for the inbound half, made by the independent library.
sender_key = Ed25519PrivateKey.generate()
public_raw = sender_key.public_key().public_bytes_raw()
whpk = "whpk_" + base64.b64encode(public_raw).decode()

config = os.path.join(work, "hookgate.yaml")
with open(config, "w") as f:
    f.write(f"admin: {{ listen: 127.0.0.1:{admin}, token: {TOKEN} }}\nstore: {{ path: {work}/data }}\n")
    f.write(f"outbound:\n  listen: 127.0.0.1:{outbound}\n  allow_private_destinations: [127.0.0.0/8]\n  endpoints: []\n")
    f.write(f"inbound:\n  listen: 127.0.0.1:{inbound}\n  upstream: http://127.0.0.1:{port}\n  routes:\n")
    f.write(f"    - {{ name: ed, path: /app/ed, verify: {{ scheme: standard-webhooks, secrets: [{whpk}] }} }}\n")
gateway = subprocess.Popen([HOOKGATE, "run", "-c", config], stderr=open(os.path.join(work, "log"), "w"))
for _ in range(200):
    try:
        if urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz").status == 200:
            break
    except Exception:
        time.sleep(0.05)

auth = {"Authorization": f"Bearer {TOKEN}"}
results = []


def check(name, ok, detail=""):
    results.append(bool(ok))
    print(f"{'ok  ' if ok else 'FAIL'} {name} {detail}")


def subscribe(path, **fields):
    status, answer = call("POST", f"http://127.0.0.1:{admin}/admin/subscriptions", {"url": f"http://127.0.0.1:{port}{path}", "event_types": ["*"], **fields}, auth)
    assert status == 201, answer
    return answer


def publish_and_wait(event_type):
    before = len(deliveries)
    status, answer = call("POST", f"http://127.0.0.1:{outbound}/events", {"type": event_type, "data": {"n": before}})
    assert status == 202, answer
    for _ in range(200):
        if len(deliveries) >= before + len(answer["deliveries"]):
            break
        time.sleep(0.02)
    return deliveries[before:]


def verifies(secret, delivery):
    _, headers, body = delivery
    try:
        standardwebhooks.Webhook(secret).verify(body, headers)
        return True
    except Exception:
        return False


# Rotation, checked by the official library.
created = subscribe("/rotation")
old = created["secret"]
status, rotated = call("POST", f"http://127.0.0.1:{admin}/admin/subscriptions/{created['id']}/rotate-secret", {"overlap": "24h"}, auth)
new = rotated["secret"]
[during] = publish_and_wait("invoice.paid")
check("rotation: the old secret verifies during the overlap", verifies(old, during))
check("rotation: the new secret verifies during the overlap", verifies(new, during))
status, ended = call("POST", f"http://127.0.0.1:{admin}/admin/subscriptions/{created['id']}/rotate-secret", {"overlap": "0s"}, auth)
newest = ended["secret"]
call("PATCH", f"http://127.0.0.1:{admin}/admin/subscriptions/{created['id']}", {"event_types": ["invoice.*"]}, auth)
[after] = publish_and_wait("invoice.paid")
check("rotation: afterwards the newest secret verifies", verifies(newest, after))
check("rotation: afterwards the earlier secrets do not", not verifies(old, after) and not verifies(new, after))
call("DELETE", f"http://127.0.0.1:{admin}/admin/subscriptions/{created['id']}", None, auth)

# Ed25519 outbound: hookgate signs v1a, the cryptography package verifies.
ed = subscribe("/ed25519", scheme="standard-webhooks", algorithm="ed25519")
check("ed25519: create returns a public key, not the private one", ed.get("public_key", "").startswith("whpk_") and "secret" not in ed)
[delivery] = publish_and_wait("candidate.created")
_, headers, body = delivery
public = Ed25519PublicKey.from_public_bytes(base64.b64decode(ed["public_key"][len("whpk_"):]))
signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
entries = [e.split(",", 1) for e in headers["webhook-signature"].split(" ")]
good = 0
for version, signature in entries:
    if version == "v1a":
        try:
            public.verify(base64.b64decode(signature), signed)
            good += 1
        except InvalidSignature:
            pass
check("ed25519: hookgate's v1a verifies with the independent library", good == 1, headers["webhook-signature"][:12])
try:
    public.verify(base64.b64decode(entries[0][1]), signed + b" ")
    check("ed25519: a tampered body fails", False)
except InvalidSignature:
    check("ed25519: a tampered body fails", True)

# Ed25519 inbound: the independent library signs, hookgate verifies with the whpk_ key.
def send_v1a(body, key):
    ts = str(int(time.time()))
    signature = base64.b64encode(key.sign(f"msg_ed1.{ts}.".encode() + body)).decode()
    request = urllib.request.Request(f"http://127.0.0.1:{inbound}/app/ed", data=body, method="POST", headers={"webhook-id": "msg_ed1", "webhook-timestamp": ts, "webhook-signature": f"v1a,{signature}", "Content-Type": "application/json"})
    try:
        return urllib.request.urlopen(request).status
    except urllib.error.HTTPError as e:
        return e.code


check("ed25519 inbound: another key is refused", send_v1a(b'{"a":1}', Ed25519PrivateKey.generate()) == 401)
check("ed25519 inbound: the sender's v1a passes", send_v1a(b'{"a":1}', sender_key) == 200 and received == [b'{"a":1}'])

# Operational events: hookgate tells the vendor (its `hookgate` tenant's subscription) that a
# customer's endpoint answered 410 and that a delivery went dead, signed as any delivery.
ops_secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
subscribe("/ops", tenant="hookgate", secret=ops_secret, event_types=["subscription.disabled", "delivery.exhausted"])
gone = subscribe("/gone", tenant="acme", event_types=["order.*"])
failing = subscribe("/failing", tenant="acme", event_types=["order.*"], retry={"schedule": ["1s"], "max_attempts": 1})
call("POST", f"http://127.0.0.1:{outbound}/events", {"type": "order.paid", "data": {}}, {"Hookgate-Tenant": "acme"})
for _ in range(300):
    ops = [d for d in deliveries if d[0] == "/ops"]
    if len(ops) >= 3:
        break
    time.sleep(0.02)
time.sleep(0.3)  # anything more that was going to come
ops = [d for d in deliveries if d[0] == "/ops"]
events = [json.loads(body) for _, _, body in ops]
check("operational: every event verifies with standardwebhooks", ops and all(verifies(ops_secret, d) for d in ops), f"{len(ops)} events")
disabled = [e for e in events if e["type"] == "subscription.disabled"]
check("operational: the 410 gives one subscription.disabled", len(disabled) == 1 and disabled[0]["data"]["subscription"]["id"] == gone["id"] and disabled[0]["data"]["tenant"] == "acme", disabled)
exhausted = [e for e in events if e["type"] == "delivery.exhausted" and e["data"]["subscription"]["id"] == failing["id"]]
check("operational: the dead delivery gives one delivery.exhausted", len(exhausted) == 1 and exhausted[0]["data"]["last_attempt"]["status"] == 503, exhausted)
check("operational: no secret in any event", not any(s in body.decode() for _, _, body in ops for s in [gone["secret"], failing["secret"], ops_secret]))

gateway.terminate()
gateway.wait(timeout=15)
print(f"subscriptions interop: {sum(results)}/{len(results)} passed")
sys.exit(0 if all(results) else 1)
