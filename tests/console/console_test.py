"""The console, tested in a real browser against the real hookgate binary.

usage: console_test.py HOOKGATE CHROMIUM SCREENSHOT_DIR
"""
import atexit
import json
import os
import subprocess
import sys
import tempfile
from http.server import BaseHTTPRequestHandler

from playwright.sync_api import expect, sync_playwright

from world import INJECTED, case, eventually, failures, free_port, http, receiver, serve

HOOKGATE, CHROMIUM, SHOTS = sys.argv[1], sys.argv[2], sys.argv[3]
TOKEN = "console-test-token"


# A receiver that fails (500, with HTML that tries to run) until told to recover.
Receiver = receiver(500, failing=True)


def answering(status):
    """A handler that answers every POST with `status` and no body."""
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            self.rfile.read(int(self.headers.get("content-length", "0")))
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass
    return Handler


# The inbound side's app answers 200; a doomed receiver always fails, so what it is sent
# ends as dead letters.
App, Doomed = answering(200), answering(503)


def admin(path, method="GET", body=None):
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    data = None if body is None else json.dumps(body).encode()
    status, answer = http(method, f"http://127.0.0.1:{ADMIN}/admin/{path}", data, headers)
    return json.loads(answer)


# --- the world: an app, a receiver that fails first, and hookgate ---------------------
APP = serve(App)
RECEIVER = serve(Receiver)
DOOMED = serve(Doomed)
INBOUND, OUTBOUND, ADMIN = free_port(), free_port(), free_port()
work = tempfile.mkdtemp()
config = os.path.join(work, "hookgate.yaml")
with open(config, "w") as f:
    f.write(f"""
server: {{ threads: 1, grace_period: 1s, shutdown_timeout: 1s }}
admin: {{ listen: "127.0.0.1:{ADMIN}", token: {TOKEN} }}
store: {{ kind: embedded, path: "{work}/data" }}
inbound:
  listen: "127.0.0.1:{INBOUND}"
  upstream: http://127.0.0.1:{APP}
  routes:
    - {{ name: rejento, path: /hooks/rejento, verify: {{ scheme: rejento, secrets: [console-secret] }} }}
    - {{ name: queued, path: /hooks/queued, verify: none, deliver: queue }}
outbound:
  listen: "127.0.0.1:{OUTBOUND}"
  allow_private_destinations: [127.0.0.0/8]
  endpoints:
    - {{ name: acme, url: "http://127.0.0.1:{RECEIVER}/hooks", sign: {{ scheme: rejento, secret: s }}, retry: {{ schedule: [1s], max_attempts: 2, timeout: 2s }} }}
    - {{ name: doomed, url: "http://127.0.0.1:{DOOMED}/hooks", sign: {{ scheme: rejento, secret: s }}, retry: {{ schedule: [1s], max_attempts: 1, timeout: 2s }} }}
    - {{ name: flaky, url: "http://127.0.0.1:{DOOMED}/flaky", sign: {{ scheme: rejento, secret: s }}, retry: {{ schedule: [1h], max_attempts: 5, timeout: 2s }}, circuit: {{ failures: 1, pause: 10m }} }}
""")
log = open(os.path.join(work, "hookgate.log"), "w")
env = {**os.environ, "HOOKGATE_RETRY_TIME_SCALE": "0.01"}
hookgate = subprocess.Popen([HOOKGATE, "run", "--config", config], stdout=log, stderr=log, env=env)
# However this script ends, hookgate does not outlive it.
atexit.register(hookgate.kill)
eventually("hookgate ready", lambda: http("GET", f"http://127.0.0.1:{ADMIN}/readyz")[0] == 200)
CONSOLE = f"http://127.0.0.1:{ADMIN}/ui/"

with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--no-proxy-server"])

    def page_signed_in(width=1280, height=900):
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(CONSOLE)
        page.fill("#token", TOKEN)
        page.click("#signin button[type=submit]")
        expect(page.locator("#nav")).to_be_visible()
        return page

    @case("a wrong token gets nothing but the sign-in")
    def _():
        page = browser.new_page()
        response = page.goto(CONSOLE)
        assert response.headers["x-frame-options"] == "DENY"
        assert "script-src 'self'" in response.headers["content-security-policy"]
        expect(page.locator("#signin")).to_be_visible()
        expect(page.locator("#nav")).to_be_hidden()
        page.fill("#token", "not-the-token")
        page.click("#signin button[type=submit]")
        expect(page.locator("#signin [role=alert]")).to_contain_text("refused")
        expect(page.locator("#nav")).to_be_hidden()
        # Going straight to a page shows the sign-in again, and nothing else.
        page.goto(CONSOLE + "#deliveries")
        expect(page.locator("#signin")).to_be_visible()
        assert page.locator("table").count() == 0
        page.close()

    @case("signing in shows the overview")
    def _():
        page = page_signed_in()
        expect(page.locator("#inbound")).to_be_visible()
        expect(page.locator("#chart")).to_be_visible()
        # The token is kept for this tab only.
        assert page.evaluate("sessionStorage.getItem('hookgate.token')") == TOKEN
        assert page.evaluate("localStorage.length") == 0
        page.close()

    @case("a forged webhook appears under recent refusals as invalid_signature")
    def _():
        status, _ = http("POST", f"http://127.0.0.1:{INBOUND}/hooks/rejento", b'{"event":"x"}',
                         {"x-rejento-signature": "00" * 32, "x-rejento-delivery-id": "dlv_forged_7"})
        assert status == 401, status
        page = page_signed_in()
        page.goto(CONSOLE + "#refusals")
        row = page.locator("#refusals tbody tr", has_text="dlv_forged_7")
        expect(row).to_have_count(1)
        expect(row.locator(".reason")).to_have_text("invalid_signature")
        page.fill("input[name=reason]", "rate_limited")
        page.click("#refusal-filters button")
        expect(page.locator("#refusals tbody tr", has_text="dlv_forged_7")).to_have_count(0)
        page.close()

    @case("a dead delivery is replayed from the page and shows as delivered")
    def _():
        status, body = http("POST", f"http://127.0.0.1:{OUTBOUND}/acme", b'{"order":1}', {"content-type": "application/json"})
        assert status == 202, status
        delivery = json.loads(body)["delivery_id"]
        eventually("the delivery is dead", lambda: admin(f"deliveries/{delivery}").get("state") == "dead")
        page = page_signed_in()
        page.goto(CONSOLE + "#deliveries?endpoint=acme&state=dead")
        expect(page.locator("#deliveries tbody tr", has_text=delivery).locator(".state")).to_have_text("dead")
        page.click(f"text={delivery}")
        expect(page.locator("#attempts tbody tr")).to_have_count(2)
        # Where it goes, without credentials, and what it carries, pretty-printed.
        expect(page.locator("#delivery td.destination")).to_have_text(f"http://127.0.0.1:{RECEIVER}/hooks")
        expect(page.locator("#payload")).to_have_text('{\n  "order": 1\n}')
        # The headers it was sent: the signature masked, the rest as sent.
        signature = next(h for p, _, h in Receiver.received if p == "/hooks")["x-rejento-signature"]
        headers = page.locator("#request-headers")
        expect(headers.locator("tr", has_text="x-rejento-signature").locator("td")).to_have_text("[masked]")
        expect(headers.locator("tr", has_text="content-type").locator("td")).to_have_text("application/json")
        assert signature not in page.content()
        # The receiver's answer tried to inject a script: it is shown as text, never run.
        expect(page.locator("#attempts pre.excerpt").first).to_have_text(INJECTED)
        assert page.evaluate("window.__pwned") is None
        assert page.locator("#attempts img").count() == 0
        page.screenshot(path=os.path.join(SHOTS, "console-delivery.png"), full_page=True)
        Receiver.failing = False
        page.goto(CONSOLE + "#deliveries?endpoint=acme&state=dead")
        page.click("#replay")
        expect(page.locator("[role=dialog]")).to_contain_text("Replay 1 dead delivery (endpoint acme)?")
        page.click("[role=dialog] button.primary")
        eventually("delivered", lambda: admin(f"deliveries/{delivery}").get("state") == "delivered")
        # "any" state lists the delivered one too.
        page.goto(CONSOLE + "#deliveries?endpoint=acme")
        expect(page.locator("#deliveries tbody tr", has_text=delivery).locator(".state")).to_have_text("delivered")
        page.goto(CONSOLE + f"#delivery/{delivery}")
        try:
            expect(page.locator("#delivered")).to_be_visible()
        except Exception:
            print(page.locator("main").inner_html()[:3000])
            raise
        expect(page.locator("#attempts tbody tr")).to_have_count(3)
        # Delivered, it left the queue; its page still shows where it went and its payload.
        expect(page.locator("#payload")).to_have_text('{\n  "order": 1\n}')
        expect(page.locator("#delivery td.destination")).to_contain_text("/hooks")
        page.close()

    @case("a subscription is created on the page, its secret shown once, then a test event sent")
    def _():
        page = page_signed_in()
        page.goto(CONSOLE + "#subscriptions")
        page.fill("input[name=url]", f"http://127.0.0.1:{RECEIVER}/customer")
        page.fill("input[name=event_types]", "order.*")
        page.fill("input[name=description]", INJECTED)
        page.click("#create-subscription button[type=submit]")
        secret = page.locator("#new-secret")
        expect(secret).to_have_text(__import__("re").compile(r"^whsec_"))
        expect(page.locator("#subscriptions tbody tr")).to_have_count(1)
        expect(page.locator("#subscriptions .description")).to_have_text(INJECTED)
        assert page.evaluate("window.__pwned") is None
        # Shown once: the list never shows it again.
        value = secret.inner_text()
        page.reload()
        expect(page.locator("#subscriptions tbody tr")).to_have_count(1)
        assert value not in page.content()
        # Rotating asks first, and for the overlap; Cancel changes nothing.
        page.click("#subscriptions button:has-text('Rotate secret')")
        dialog = page.locator("[role=dialog][aria-label='rotate secret']")
        expect(dialog).to_contain_text("during the overlap")
        dialog.locator("button:has-text('Cancel')").click()
        expect(dialog).to_have_count(0)
        page.click("#subscriptions button:has-text('Rotate secret')")
        dialog.locator("select[name=overlap]").select_option("1h")
        dialog.locator("button.primary").click()
        expect(page.locator("#new-secret")).to_have_text(__import__("re").compile(r"^whsec_"))
        expect(page.locator("body")).to_contain_text("the old ones keep signing for 1h")
        assert page.locator("#new-secret").inner_text() != value, "a new secret"
        page.click("#subscriptions button:has-text('Send test')")
        expect(page.locator("#subscriptions td.result")).to_contain_text("200")
        expect(page.locator("#subscriptions td.result pre")).to_have_text("thanks")
        assert any(path == "/customer" for path, _, _ in Receiver.received)
        page.close()

    @case("a purge from a page filtered by one subscription deletes that row only")
    def _():
        for n in range(2):
            status, _ = http("POST", f"http://127.0.0.1:{OUTBOUND}/doomed", b'{"n":%d}' % n, {"content-type": "application/json"})
            assert status == 202, status
        sub = admin("subscriptions", "POST", {
            "url": f"http://127.0.0.1:{DOOMED}/customer", "event_types": ["doomed.*"], "tenant": "acme",
            "retry": {"schedule": ["1s"], "max_attempts": 1, "timeout": "2s"},
        })["id"]
        status, _ = http("POST", f"http://127.0.0.1:{OUTBOUND}/events", b"{}", {"hookgate-event-type": "doomed.one", "hookgate-tenant": "acme"})
        assert status == 202, status
        dead = lambda query: admin(f"deliveries?state=dead&{query}")["deliveries"]
        eventually("three dead letters", lambda: len(dead("endpoint=doomed")) == 2 and len(dead(f"subscription={sub}")) == 1)
        page = page_signed_in()
        page.goto(CONSOLE + f"#deliveries?subscription={sub}")
        expect(page.locator("#deliveries tbody tr")).to_have_count(1)
        page.click("#purge")
        dialog = page.locator("[role=dialog]")
        expect(dialog).to_contain_text(f"Delete 1 dead delivery (subscription {sub}) for good?")
        page.click("[role=dialog] button.primary")
        expect(page.locator("[role=status]")).to_have_text("Deleted 1.")
        assert dead(f"subscription={sub}") == []
        # Its list marks the failing subscription, with its last error.
        page.goto(CONSOLE + "#subscriptions")
        health = page.locator(f"#subscriptions tr:has-text('{sub}') td.health")
        expect(health).to_contain_text("failing: HTTP 503")
        expect(health).to_have_class(__import__("re").compile("error"))
        assert len(dead("endpoint=doomed")) == 2, "the endpoint's dead letters are not the page's"
        # Filtered by time, the same: a window before anything was sent shows and purges nothing.
        page.goto(CONSOLE + "#deliveries?state=dead&until=2001-01-01T00:00")
        expect(page.locator("#deliveries tbody tr")).to_have_text("no deliveries")
        expect(page.locator("#purge")).to_have_count(0)
        # Without any filter the page says it means all of them, and the API is told so.
        page.goto(CONSOLE + "#deliveries?state=dead")
        page.click("#purge")
        expect(page.locator("[role=dialog]")).to_contain_text("Delete 2 dead deliveries (all of them: no filter) for good?")
        page.click("[role=dialog] button:has-text('Cancel')")
        assert len(dead("endpoint=doomed")) == 2
        status, body = http("DELETE", f"http://127.0.0.1:{ADMIN}/admin/deliveries?state=dead",
                            headers={"Authorization": f"Bearer {TOKEN}"})
        assert status == 400 and json.loads(body)["error"] == "filter_required", (status, body)
        page.click("#purge")
        page.click("[role=dialog] button.primary")
        expect(page.locator("[role=status]")).to_have_text("Deleted 2.")
        assert dead("endpoint=doomed") == []
        page.close()

    @case("an open circuit is named on the overview and the endpoints page, with its reason")
    def _():
        status, _ = http("POST", f"http://127.0.0.1:{OUTBOUND}/flaky", b'{"n":1}', {"content-type": "application/json"})
        assert status == 202, status
        eventually("the circuit opens", lambda: any(c["name"] == "flaky" for c in admin("overview")["outbound"].get("open_circuits", [])))
        page = page_signed_in()
        expect(page.locator("#open-circuits .value")).to_have_text("1")
        expect(page.locator("#open-circuit-list li")).to_contain_text("flaky: ")
        expect(page.locator("#open-circuit-list li")).to_contain_text("held back until")
        page.goto(CONSOLE + "#endpoints")
        row = page.locator("#endpoints tr[data-name=flaky]")
        expect(row.locator(".enabled")).to_have_text("circuit open")
        # Its health: the last answer, the failure streak and the circuit.
        expect(row.locator(".health")).to_contain_text("answered 503")
        expect(row.locator(".health")).to_contain_text("1 failed in a row; circuit open")
        page.close()

    @case("a deliver: queue route is paused and resumed from the endpoints page, and the overview names it")
    def _():
        page = page_signed_in()
        page.goto(CONSOLE + "#endpoints")
        row = page.locator("#queued-routes tr[data-name=queued]")
        expect(row.locator(".paused")).to_have_text("delivering")
        row.locator("button").click()
        expect(row.locator(".paused")).to_contain_text("paused since")
        status, _ = http("POST", f"http://127.0.0.1:{INBOUND}/hooks/queued", b'{"n":1}', {"content-type": "application/json"})
        assert status == 200, status
        page.goto(CONSOLE)
        expect(page.locator("#paused-routes li")).to_contain_text("queued: ")
        assert [r["name"] for r in admin("routes")["routes"] if r["paused"]] == ["queued"]
        page.goto(CONSOLE + "#endpoints")
        row = page.locator("#queued-routes tr[data-name=queued]")
        row.locator("button").click()
        expect(row.locator(".paused")).to_have_text("delivering")
        eventually("the stored webhook delivered once resumed", lambda: admin("routes")["routes"][0]["pending"] == 0)
        page.close()

    @case("every page fits a 360 px wide screen (screenshot)")
    def _():
        page = page_signed_in(360, 740)
        for view in ["", "#refusals", "#deliveries", "#endpoints", "#subscriptions"]:
            page.goto(CONSOLE + view)
            page.wait_for_load_state("networkidle")
            expect(page.locator("main h2").first).to_be_visible()
            wide = page.evaluate("document.documentElement.scrollWidth")
            assert wide <= 360, f"{view or 'overview'} is {wide} px wide"
        page.goto(CONSOLE)
        expect(page.locator("#chart")).to_be_visible()
        page.screenshot(path=os.path.join(SHOTS, "console-narrow.png"), full_page=True)
        page.close()

    @case("the overview counts what happened (screenshot for the README)")
    def _():
        for i in range(5):
            http("POST", f"http://127.0.0.1:{INBOUND}/hooks/rejento", b"{}", {"x-rejento-signature": "00" * 32})
        page = page_signed_in()
        row = page.locator("#inbound tbody tr", has_text="rejento")
        expect(row).to_contain_text("invalid_signature")
        expect(page.locator("#queue-dead .value")).to_have_text("0")
        page.screenshot(path=os.path.join(SHOTS, "console-overview.png"), full_page=True)
        page.close()

    browser.close()

hookgate.terminate()
hookgate.wait(timeout=10)
if failures:
    print(f"{len(failures)} console test(s) failed; hookgate's log: {log.name}")
    sys.exit(1)
print("all console tests passed")
