"""The tenants' portal, tested in a real browser against the real hookgate binary: embedded
in a vendor's page, creating an endpoint, a test event, a dead delivery sent again, and
hostile payloads shown as text.

usage: portal_test.py HOOKGATE CHROMIUM SCREENSHOT_DIR
"""
import atexit
import json
import os
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from playwright.sync_api import expect, sync_playwright

from world import INJECTED, case, eventually, failures, free_port, http, receiver, serve

HOOKGATE, CHROMIUM, SHOTS = sys.argv[1], sys.argv[2], sys.argv[3]
TOKEN = "portal-test-admin-token"


# The tenant's receiver: fails (503, with HTML that tries to run) while `failing`.
Receiver = receiver(503, failing=False)


def vendor_page(portal_url):
    """The vendor's settings page, which shows the portal in a frame."""
    class Page(BaseHTTPRequestHandler):
        def do_GET(self):
            page = f'<!doctype html><h1>Vendor settings</h1><iframe id="portal" src="{Page.src}" width="1000" height="700"></iframe>'.encode()
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args):
            pass
    Page.src = portal_url
    return Page


RECEIVER = serve(Receiver)
VENDOR = free_port()  # the origin allowed to frame the portal; served once the link exists
OUTBOUND, ADMIN, PORTAL = free_port(), free_port(), free_port()
work = tempfile.mkdtemp()
config = os.path.join(work, "hookgate.yaml")
with open(config, "w") as f:
    f.write(f"""
server: {{ threads: 1, grace_period: 1s, shutdown_timeout: 1s }}
admin:
  listen: "127.0.0.1:{ADMIN}"
  token: {TOKEN}
  portal:
    signing_key: portal-test-signing-key-of-32-bytes
    listen: "127.0.0.1:{PORTAL}"
    frame_ancestors: ["http://127.0.0.1:{VENDOR}"]
    title: Acme Recruiting webhooks
    accent: "#7a1fa2"
store: {{ kind: embedded, path: "{work}/data" }}
outbound:
  listen: "127.0.0.1:{OUTBOUND}"
  allow_private_destinations: [127.0.0.0/8]
  endpoints: []
  event_types:
    - {{ name: candidate.created, description: A candidate applied. }}
    - {{ name: candidate.hired, description: A candidate was hired. }}
""")
log = open(os.path.join(work, "hookgate.log"), "w")
env = {**os.environ, "HOOKGATE_RETRY_TIME_SCALE": "0.01"}
hookgate = subprocess.Popen([HOOKGATE, "run", "--config", config], stdout=log, stderr=log, env=env)
atexit.register(hookgate.kill)
eventually("hookgate ready", lambda: http("GET", f"http://127.0.0.1:{ADMIN}/readyz")[0] == 200)


def admin(path, method="GET", body=None):
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    data = None if body is None else json.dumps(body).encode()
    status, answer = http(method, f"http://127.0.0.1:{ADMIN}/admin/{path}", data, headers)
    return status, json.loads(answer)


def link(tenant, **options):
    status, answer = admin(f"tenants/{tenant}/portal", "POST", options)
    assert status == 201, answer
    return answer["url"]


def publish(tenant, event_type, payload):
    status, answer = http("POST", f"http://127.0.0.1:{OUTBOUND}/events", json.dumps(payload).encode(),
                          {"content-type": "application/json", "hookgate-tenant": tenant, "hookgate-event-type": event_type})
    assert status == 202, answer
    return json.loads(answer)


URL = link("acme")
assert URL.startswith(f"http://127.0.0.1:{PORTAL}/portal/#token=hgp_"), URL
serve_vendor = vendor_page(URL)
vendor = ThreadingHTTPServer(("127.0.0.1", VENDOR), serve_vendor)
threading.Thread(target=vendor.serve_forever, daemon=True).start()
elsewhere = serve(vendor_page(link("acme")))

with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--no-proxy-server"])

    def portal(url=None):
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto(url or link("acme"))
        expect(page.locator("#nav")).to_be_visible()
        return page

    @case("the portal shows in a frame of an origin in frame_ancestors, and nowhere else")
    def _():
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{VENDOR}/")
        framed = page.frame_locator("#portal")
        expect(framed.locator("h1")).to_have_text("Acme Recruiting webhooks")
        expect(framed.locator("#nav")).to_be_visible()
        page.goto(f"http://127.0.0.1:{elsewhere}/")
        # The browser puts its error page in the refused frame.
        eventually("the frame is refused", lambda: page.frames[1].url.startswith("chrome-error://"), within=10)
        frame = page.frames[1]
        assert "Acme Recruiting webhooks" not in frame.content(), f"the portal showed in a frame of an origin not listed: {frame.url} {frame.content()[:300]}"
        page.close()

    @case("an endpoint is created, its secret shown once")
    def _():
        page = portal()
        # The token left the address bar, and stays in this tab only.
        assert "token" not in page.url, page.url
        assert page.evaluate("localStorage.length") == 0
        expect(page.locator("#tenant")).to_have_text("acme")
        page.fill("#new-url", f"http://127.0.0.1:{RECEIVER}/acme")
        page.fill("#new-description", "our ATS")
        page.check("#create input[value='candidate.created']")
        page.click("#create-button")
        secret = page.locator("#secret .secret").inner_text()
        assert secret.startswith("whsec_"), secret
        page.click("#secret button")
        row = page.locator("#subscriptions tbody tr", has_text=f"127.0.0.1:{RECEIVER}/acme")
        expect(row).to_contain_text("candidate.created")
        page.screenshot(path=os.path.join(SHOTS, "portal.png"), full_page=True)
        page.reload()
        expect(page.locator("#subscriptions")).to_be_visible()
        assert secret not in page.content(), "the secret was shown again"
        status, listed = admin("subscriptions?tenant=acme")
        assert [s["description"] for s in listed["subscriptions"]] == ["our ATS"], listed
        page.close()

    @case("a test event is sent, and rotation and disabling work")
    def _():
        before = len(Receiver.received)
        page = portal()
        row = page.locator("#subscriptions tbody tr").first
        row.locator("button", has_text="Send test").click()
        expect(page.locator("#notice")).to_contain_text("Test delivered: HTTP 200")
        assert len(Receiver.received) == before + 1
        page.locator("#subscriptions tbody tr").first.locator("button", has_text="Rotate secret").click()
        page.select_option(".rotate select", "0s")
        page.click(".rotate button")
        assert page.locator("#secret .secret").inner_text().startswith("whsec_")
        page.locator("#subscriptions tbody tr").first.locator("button", has_text="Disable").click()
        expect(page.locator("#subscriptions tbody tr").first).to_contain_text("disabled")
        page.locator("#subscriptions tbody tr").first.locator("button", has_text="Enable").click()
        expect(page.locator("#subscriptions tbody tr").first).to_contain_text("enabled")
        page.close()

    @case("a dead delivery is sent again, its attempts shown with signatures masked")
    def _():
        status, listed = admin("subscriptions?tenant=acme")
        sub = listed["subscriptions"][0]["id"]
        # One attempt only, so the failure is final at once.
        status, _ = admin(f"subscriptions/{sub}", "PATCH", {"retry": {"schedule": ["1s"], "max_attempts": 1}})
        assert status == 200
        Receiver.failing = True
        event = publish("acme", "candidate.created", {"candidate": "c_1"})
        eventually("a dead letter", lambda: admin("deliveries?state=dead&tenant=acme")[1]["deliveries"])
        page = portal()
        page.click("#nav a[href='#deliveries']")
        page.select_option("#state", "dead")
        row = page.locator("#deliveries tbody tr").first
        expect(row).to_contain_text("HTTP 503")
        row.locator("a").click()
        expect(page.locator("#delivery")).to_contain_text(event["event_id"])
        headers = page.locator(".attempt .headers").first.inner_text()
        assert "webhook-signature" in headers.lower(), headers
        received_signature = Receiver.received[-1][2]["webhook-signature"]
        assert received_signature.split(",", 1)[1] not in headers, "the signature was shown"
        Receiver.failing = False
        before = len(Receiver.received)
        page.click("#nav a[href='#deliveries']")
        page.select_option("#state", "dead")
        page.click("#replay-dead")
        expect(page.locator("#notice")).to_have_text("1 sent again.")
        eventually("the replayed delivery arrives", lambda: len(Receiver.received) > before)
        page.close()

    @case("hostile payloads and answers are shown as text")
    def _():
        Receiver.failing = True
        publish("acme", "candidate.created", {"name": INJECTED})
        eventually("a second dead letter", lambda: len(admin("deliveries?state=dead&tenant=acme")[1]["deliveries"]) >= 1)
        Receiver.failing = False
        page = portal()
        page.goto(page.url.split("#")[0] + "#deliveries")
        page.select_option("#state", "dead")
        page.locator("#deliveries tbody tr a").first.click()
        expect(page.locator("#payload")).to_contain_text("<script>window.__pwned = 1</script>")
        expect(page.locator(".attempt pre.answer").first).to_contain_text("<img src=x")
        assert page.evaluate("window.__pwned") is None, "a payload ran as code"
        assert page.locator("main script, main img").count() == 0
        page.close()

    @case("a read-only link looks without changing, and a revoked one stops working")
    def _():
        page = portal(link("acme", read_only=True))
        expect(page.locator("#subscriptions")).to_be_visible()
        assert page.locator("#create").count() == 0
        assert page.locator("#subscriptions button").count() == 0
        status, _ = admin("tenants/acme/portal/revoke", "POST")
        assert status == 200
        page.click("#nav a[href='#deliveries']")
        expect(page.locator("#signed-out")).to_contain_text("revoked")
        page.close()

    browser.close()

hookgate.terminate()
hookgate.wait(timeout=10)
if failures:
    print(f"{len(failures)} portal test(s) failed; hookgate's log: {log.name}")
    sys.exit(1)
print("all portal tests passed")
