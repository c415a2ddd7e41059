"""An HTTPS receiver for the egress tests, on Python's own TLS stack.
Usage: tls_receiver.py PORT DIR require|optional 1.2|any LOG
DIR holds server.pem, server.key and ca.pem; each request answered is a JSON line in LOG."""

import http.server
import json
import ssl
import sys

port, folder, client_mode, version, log = sys.argv[1:6]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        peer = self.connection.getpeercert()
        subject = dict(item[0] for item in peer["subject"]) if peer else {}
        with open(log, "a") as f:
            f.write(json.dumps({"path": self.path, "client": subject.get("commonName"),
                                "version": self.connection.version()}) + "\n")
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(f"{folder}/server.pem", f"{folder}/server.key")
context.load_verify_locations(f"{folder}/ca.pem")
context.verify_mode = ssl.CERT_REQUIRED if client_mode == "require" else ssl.CERT_OPTIONAL
if version == "1.2":
    context.maximum_version = ssl.TLSVersion.TLSv1_2
server = http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), Handler)
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
