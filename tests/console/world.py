"""What the browser tests share: free ports, small HTTP servers, plain HTTP calls without
any proxy, waiting for a condition, and cases that report their failure and go on."""
import socket
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

failures = []
INJECTED = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


def receiver(failing_status, failing):
    """A receiver that answers `failing_status` with HTML that tries to run while its
    `failing` is set, and 200 otherwise; `received` holds (path, body, headers)."""
    class Receiver(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        received = []

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            Receiver.received.append((self.path, body, {k.lower(): v for k, v in self.headers.items()}))
            status, answer = (failing_status, INJECTED.encode()) if Receiver.failing else (200, b"thanks")
            self.send_response(status)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass
    Receiver.failing = failing
    return Receiver


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(handler):
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


# Everything here is on 127.0.0.1: no proxy from the environment may reroute it.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(method, url, body=None, headers=None):
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with OPENER.open(request, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except urllib.error.URLError:
        return 0, b""


def eventually(what, check, within=15):
    deadline = time.time() + within
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {within}s: {what}")


def case(name):
    def run(f):
        try:
            f()
            print(f"ok   {name}")
        except Exception as e:  # noqa: BLE001 - every failure is reported, then the run fails
            failures.append(name)
            print(f"FAIL {name}: {e}")
    return run


