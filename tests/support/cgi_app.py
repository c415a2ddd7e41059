"""A CGI-style app for the header tests: Python's own wsgiref server, which maps `-` and
`_` in header names to the same HTTP_* variable (as PHP and many CGI-derived stacks do),
answering with the HTTP_* variables it was given, as JSON.

    python3 cgi_app.py PORT
"""
import json
import sys
from wsgiref.simple_server import WSGIRequestHandler, make_server


def app(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    environ["wsgi.input"].read(length)
    seen = {k: v for k, v in environ.items() if k.startswith("HTTP_")}
    body = json.dumps(seen).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


server = make_server("127.0.0.1", int(sys.argv[1]), app, handler_class=Quiet)
print("ready", flush=True)
server.serve_forever()
