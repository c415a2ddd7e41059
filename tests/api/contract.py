"""The API contract against the live binary, with tools we did not write:

1. schemathesis fuzzes every operation of docs/openapi.json (the portal API with a tenant's
   token, the admin API with the admin token, the outbound listener), through the
   document's links as well (create a subscription, then get, patch, rotate, test, replay
   and delete it). Every answer must be a documented status with a body that matches the
   document, and no input, valid or not, may get a server error.
2. A client generated from the document by openapi-python-client creates a subscription,
   publishes an event and reads its delivery.

It runs in a network namespace with nothing but loopback (run.sh sees to it): generated
input names hosts, and nothing hookgate does with them can leave the machine.

usage: contract.py HOOKGATE WORK_DIR
Bounds: SCHEMATHESIS_EXAMPLES examples per operation (10 when unset), seed SCHEMATHESIS_SEED (1).
"""
import atexit
import importlib
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "console"))
from world import eventually, free_port, http, receiver, serve  # noqa: E402

HOOKGATE, WORK = sys.argv[1], sys.argv[2]
EXAMPLES = os.environ.get("SCHEMATHESIS_EXAMPLES", "10")
SEED = os.environ.get("SCHEMATHESIS_SEED", "1")
DOCUMENT = os.path.join(ROOT, "docs", "openapi.json")
TOKEN = "api-contract-admin-token"
BIN = os.path.dirname(sys.executable)

Receiver = receiver(503, failing=False)
RECEIVER = serve(Receiver)
ADMIN, OUTBOUND, INBOUND = free_port(), free_port(), free_port()
os.makedirs(WORK, exist_ok=True)
config = os.path.join(WORK, "hookgate.yaml")
with open(config, "w") as f:
    f.write(f"""
server: {{ threads: 1, grace_period: 1s, shutdown_timeout: 1s }}
admin:
  listen: "127.0.0.1:{ADMIN}"
  token: {TOKEN}
  portal: {{ signing_key: api-contract-portal-signing-key-32-bytes }}
store: {{ kind: embedded, path: "{WORK}/data" }}
inbound:
  listen: "127.0.0.1:{INBOUND}"
  upstream: "http://127.0.0.1:{RECEIVER}"
  routes:
    - {{ name: acme, path: /hooks/acme, verify: none, deliver: queue }}
outbound:
  listen: "127.0.0.1:{OUTBOUND}"
  # Every address: generated URLs name hosts such as 0.0.0.0, and the SSRF guard has tests
  # of its own. Nothing leaves this namespace, whatever it names.
  allow_private_destinations: ["0.0.0.0/0", "::/0"]
  event_types:
    - {{ name: order.paid, description: An order was paid. }}
  endpoints:
    - {{ name: acme, url: "http://127.0.0.1:{RECEIVER}/hooks", sign: {{ scheme: rejento, secret: acme-secret }} }}
""")
log = open(os.path.join(WORK, "hookgate.log"), "w")
env = {**os.environ, "HOOKGATE_RETRY_TIME_SCALE": "0.01"}
hookgate = subprocess.Popen([HOOKGATE, "run", "--config", config], stdout=log, stderr=log, env=env)
atexit.register(hookgate.kill)
eventually("hookgate ready", lambda: http("GET", f"http://127.0.0.1:{ADMIN}/readyz")[0] == 200)

status, answer = http("POST", f"http://127.0.0.1:{ADMIN}/admin/tenants/acme/portal", b"{}",
                      {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
assert status == 201, (status, answer)
PORTAL_TOKEN = json.loads(answer)["url"].split("#token=", 1)[1]


def schemathesis(what, url, token, paths, phases="examples,coverage,fuzzing,stateful"):
    """One bounded schemathesis run over the operations whose path matches `paths`."""
    command = [os.path.join(BIN, "schemathesis"), "--config-file", os.path.join(HERE, "schemathesis.toml"),
               "run", DOCUMENT, "--url", url, "--include-path-regex", paths,
               "--max-examples", EXAMPLES, "--seed", SEED, "--checks", "all",
               "--phases", phases, "--max-failures", "50", "--output-truncate", "false", "--output-sanitize", "false", "--no-color"]
    if token:
        command += ["-H", f"Authorization: Bearer {token}"]
    print(f"== schemathesis: {what} ({EXAMPLES} examples per operation, seed {SEED})", flush=True)
    started = time.time()
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "rules", "PYTHONPATH": HERE}
    result = subprocess.run(command, cwd=WORK, env=env)
    print(f"== schemathesis: {what}: exit {result.returncode} in {time.time() - started:.0f} s", flush=True)
    return result.returncode == 0


# The portal first: the admin run may revoke portal links.
passed = [
    schemathesis("the portal API", f"http://127.0.0.1:{ADMIN}", PORTAL_TOKEN, r"^/portal/api/"),
    schemathesis("the admin port", f"http://127.0.0.1:{ADMIN}", TOKEN, r"^/(admin/|healthz|livez|readyz|metrics|ui/|portal/$)"),
    # Its two operations link to none: publishing and reading back is the generated client's test.
    schemathesis("the outbound listener", f"http://127.0.0.1:{OUTBOUND}", None, r"^/(events|\{endpoint\})$",
                 phases="examples,coverage,fuzzing"),
]


def generated_client():
    """openapi-python-client writes a package from the document; it creates a subscription
    to a receiver here, publishes an event through the outbound listener, and reads the
    delivery back."""
    out = os.path.join(WORK, "client")
    subprocess.run([os.path.join(BIN, "openapi-python-client"), "generate", "--path", DOCUMENT,
                    "--output-path", out, "--overwrite", "--meta", "none"], check=True, cwd=WORK)
    sys.path.insert(0, WORK)
    client = importlib.import_module("client")
    api = lambda name: importlib.import_module(f"client.api.{name}")  # noqa: E731
    models = importlib.import_module("client.models")

    admin = client.AuthenticatedClient(base_url=f"http://127.0.0.1:{ADMIN}", token=TOKEN)
    events = client.Client(base_url=f"http://127.0.0.1:{OUTBOUND}")

    create = models.SubscriptionCreate(url=f"http://127.0.0.1:{RECEIVER}/generated", event_types=["order.paid"],
                                       tenant="generated", description="made by a generated client")
    made = api("subscriptions.create_subscription").sync_detailed(client=admin, body=create)
    assert made.status_code == 201, made
    subscription = made.parsed
    assert subscription.secret.startswith("whsec_"), "the new secret is shown once"

    published = api("outbound.publish_event").sync_detailed(client=events, body={"order": 42}, hookgate_event_type="order.paid",
                                                             hookgate_tenant="generated")
    assert published.status_code == 202, published
    sent = [d for d in published.parsed.deliveries if d.subscription == subscription.id]
    assert len(sent) == 1, published.parsed

    def delivered():
        page = api("deliveries.list_deliveries").sync(client=admin, subscription=subscription.id,
                                                       state=models.ListDeliveriesState.DELIVERED)
        return page is not None and any(d.id == sent[0].delivery_id for d in page.deliveries)
    eventually("the delivery in the history", delivered)
    one = api("deliveries.get_delivery").sync(client=admin, id=sent[0].delivery_id)
    assert one.event.event_type == "order.paid" and one.event.subscription == subscription.id, one
    assert any(path == "/generated" and json.loads(body) == {"order": 42} for path, body, _ in Receiver.received), \
        "the receiver got the event"
    print("ok   a generated client created a subscription, published an event and read its delivery", flush=True)


try:
    generated_client()
    passed.append(True)
except Exception as e:  # noqa: BLE001 - reported, then the run fails
    print(f"FAIL the generated client: {e!r}", flush=True)
    passed.append(False)
if not all(passed):
    print(f"hookgate's log: {os.path.join(WORK, 'hookgate.log')}")
    sys.exit(1)
