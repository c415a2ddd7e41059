"""The quickstart's throwaway app: prints each request it receives (the route hookgate
verified it on, or the signature hookgate signed it with) and answers "ok".

    python3 docs/quickstart/app.py [PORT]      (default 8080)
"""
import http.server
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        seen = {k: v for k, v in self.headers.items() if k.lower().startswith(("hookgate-", "webhook-"))}
        print(f"app got POST {self.path} {seen} {body.decode(errors='replace')}", flush=True)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
