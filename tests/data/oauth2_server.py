"""A real OAuth2 token endpoint (client credentials, RFC 6749 section 4.4) and the
receiver it protects, for tests/receiver_auth.rs.

  POST /token    issues tok-N to the client whose Basic credentials match
  POST /hook     the receiver: 200 with a live token, 401 otherwise
  POST /control  {"mode": "ok"|"fail"|"hang", "expires_in": n, "revoke": true}
  GET  /stats    what happened so far

Usage: oauth2_server.py PORT CLIENT_ID CLIENT_SECRET
"""

import base64
import json
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, CLIENT_ID, CLIENT_SECRET = int(sys.argv[1]), sys.argv[2], sys.argv[3]
lock = threading.Lock()
state = {"mode": "ok", "expires_in": 3600, "issued": 0}
tokens = {}  # token -> expiry (monotonic seconds), or None once revoked
stats = {"token_requests": 0, "refused_clients": 0, "scopes": [], "hooks": []}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def do_GET(self):
        with lock:
            self.answer(200, stats)

    def do_POST(self):
        body = self.body()
        if self.path == "/control":
            change = json.loads(body)
            with lock:
                if change.pop("revoke", False):
                    for token in tokens:
                        tokens[token] = None
                state.update(change)
            return self.answer(200, state)
        if self.path == "/token":
            return self.token(body)
        if self.path.startswith("/hook"):
            return self.hook()
        self.answer(404, {"error": "not_found"})

    def token(self, body):
        with lock:
            stats["token_requests"] += 1
            mode = state["mode"]
        if mode == "hang":
            time.sleep(30)
            return
        if mode == "fail":
            return self.answer(503, {"error": "temporarily_unavailable"})
        form = urllib.parse.parse_qs(body.decode())
        # RFC 6749 section 2.3.1: the id and secret are form-encoded, then sent as Basic.
        expected = "%s:%s" % (
            urllib.parse.quote_plus(CLIENT_ID),
            urllib.parse.quote_plus(CLIENT_SECRET),
        )
        basic = "Basic " + base64.b64encode(expected.encode()).decode()
        if self.headers.get("Authorization") != basic:
            with lock:
                stats["refused_clients"] += 1
            return self.answer(401, {"error": "invalid_client"})
        if form.get("grant_type") != ["client_credentials"]:
            return self.answer(400, {"error": "unsupported_grant_type"})
        with lock:
            state["issued"] += 1
            token = "tok-%d" % state["issued"]
            tokens[token] = time.monotonic() + state["expires_in"]
            stats["scopes"].append(form.get("scope", [""])[0])
            expires_in = state["expires_in"]
        self.answer(
            200,
            {"access_token": token, "token_type": "Bearer", "expires_in": expires_in},
        )

    def hook(self):
        authorization = self.headers.get("Authorization", "")
        token = authorization.removeprefix("Bearer ")
        with lock:
            expiry = tokens.get(token)
            if expiry is None:
                why = "revoked" if token in tokens else "unknown"
            elif expiry < time.monotonic():
                why = "expired"
            else:
                why = None
            stats["hooks"].append(
                {"token": token, "refused": why, "id": self.headers.get("X-Rejento-Delivery-Id")}
            )
        if why:
            return self.answer(401, {"error": "invalid_token"})
        self.answer(200, {"ok": True})


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
