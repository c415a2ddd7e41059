"""Checks deploy/ with tools hookgate did not write:

1. every manifest in deploy/kubernetes/ against the Kubernetes schemas (kubernetes-validate,
   strict: unknown fields are errors), and every hookgate.yaml inside with `hookgate check`;
2. the Helm chart, rendered (helm_render.py: no helm binary can be installed here), the same way;
3. the injector: `hookgate inject` over TLS gets the AdmissionReview fixtures in admission/,
   its patches are applied with the `jsonpatch` package and the resulting pods validated;
4. Prometheus: promtool checks and unit-tests the alerting rules, a real Prometheus scrapes two
   running hookgates and answers queries for their series, and every metric name the rules
   and the Grafana dashboard use is one hookgate exports.

Usage: check.py PATH/TO/hookgate
"""

import base64
import glob
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jsonpatch
import kubernetes_validate
import yaml

from helm_render import render

HERE = os.path.dirname(os.path.abspath(__file__))
DEPLOY = os.path.dirname(HERE)
HOOKGATE = os.path.abspath(sys.argv[1])
KUBERNETES = "1.33"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
WORK = tempfile.mkdtemp(prefix="hookgate-deploy-")
failures = []


def check(name, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name}" + (f": {detail}" if detail and not ok else ""))
    if not ok:
        failures.append(name)


def validate(name, document):
    try:
        kubernetes_validate.validate(document, KUBERNETES, strict=True)
        check(f"{name}: {document['kind']} {document['metadata'].get('name', '')} matches the Kubernetes {KUBERNETES} schema", True)
    except Exception as e:  # the package raises several error types
        check(f"{name}: {document.get('kind')} matches the Kubernetes schema", False, str(e).splitlines()[0])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hookgate_check(name, config, secrets, env=None):
    """`hookgate check` on a config as the pod would see it: its secrets mounted as files."""
    directory = tempfile.mkdtemp(dir=WORK)
    for key, value in secrets.items():
        with open(os.path.join(directory, key), "w") as f:
            f.write(value)
    path = os.path.join(directory, "hookgate.yaml")
    with open(path, "w") as f:
        f.write(config.replace("file:/etc/hookgate/secrets/", f"file:{directory}/"))
    result = subprocess.run([HOOKGATE, "check", "-c", path], capture_output=True, text=True,
                            env={**os.environ, **(env or {})})
    check(f"{name}: hookgate check accepts its hookgate.yaml", result.returncode == 0, result.stdout + result.stderr)


# 1. Plain manifests.
for path in sorted(glob.glob(os.path.join(DEPLOY, "kubernetes", "*.yaml"))):
    name = os.path.relpath(path, os.path.dirname(DEPLOY))
    documents = [d for d in yaml.safe_load_all(open(path)) if d]
    secrets = {}
    for document in documents:
        validate(name, document)
        if document["kind"] == "Secret":
            secrets.update(document.get("stringData", {}))
    for document in documents:
        if document["kind"] == "ConfigMap" and "hookgate.yaml" in document.get("data", {}):
            ports = {"HOOKGATE_APP_PORT": "3000", "HOOKGATE_INBOUND_PORT": "8000",
                     "HOOKGATE_OUTBOUND_PORT": "9090", "HOOKGATE_ADMIN_PORT": "9901"}
            hookgate_check(name, document["data"]["hookgate.yaml"], secrets, ports)

# 2. The Helm chart, everything turned on.
chart = os.path.join(DEPLOY, "helm", "hookgate")
everything = {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True},
              "injector": {"enabled": True, "caBundle": base64.b64encode(b"-----BEGIN CERTIFICATE-----").decode()}}
rendered = render(chart, release="edge", namespace="webhooks", overrides=everything)
kinds = []
for template, documents in rendered:
    for document in documents:
        kinds.append(document["kind"])
        name = f"helm {template}"
        if document["apiVersion"].startswith("monitoring.coreos.com/"):
            # The Prometheus Operator's kinds are not in the Kubernetes schemas.
            if document["kind"] == "PrometheusRule":
                rules = os.path.join(WORK, "chart-rules.yaml")
                with open(rules, "w") as f:
                    yaml.safe_dump(document["spec"], f)
                result = subprocess.run(["promtool", "check", "rules", rules], capture_output=True, text=True)
                check(f"{name}: PrometheusRule's rules pass promtool check rules", result.returncode == 0, result.stdout + result.stderr)
            else:
                endpoint = document["spec"]["endpoints"][0]
                check(f"{name}: ServiceMonitor scrapes the admin port's /metrics", endpoint == {"port": "hookgate-admin", "path": "/metrics", "interval": "30s"}, str(endpoint))
            continue
        validate(name, document)
        if document["kind"] == "ConfigMap":
            hookgate_check(name, document["data"]["hookgate.yaml"], {"standard": SECRET})
check("helm: everything on renders every kind",
      sorted(kinds) == sorted(["ConfigMap", "Deployment", "Service", "ServiceAccount", "Deployment", "Service",
                               "MutatingWebhookConfiguration", "PrometheusRule", "ServiceMonitor"]), str(kinds))
defaults = [d["kind"] for _, documents in render(chart) for d in documents]
check("helm: the defaults render only the gateway", defaults == ["ConfigMap", "Deployment", "Service"], str(defaults))
check("helm: the chart's alert rules are deploy/prometheus/rules.yaml",
      open(os.path.join(chart, "files", "rules.yaml")).read() == open(os.path.join(DEPLOY, "prometheus", "rules.yaml")).read())


# 3. The injector, over TLS.
def start(args, ready_url, context=None):
    log = open(os.path.join(WORK, f"hookgate-{free_port()}.log"), "w+")
    process = subprocess.Popen([HOOKGATE, *args], stdout=log, stderr=log)
    deadline = time.time() + 20
    while True:
        try:
            urllib.request.urlopen(ready_url, context=context, timeout=1)
            return process
        except (urllib.error.URLError, ConnectionError, OSError):
            if process.poll() is not None or time.time() > deadline:
                log.seek(0)
                sys.exit(f"hookgate {args[0]} did not start:\n{log.read()}")
            time.sleep(0.05)


key, cert = os.path.join(WORK, "tls.key"), os.path.join(WORK, "tls.crt")
subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", key, "-out", cert],
               check=True, capture_output=True)
tls = ssl.create_default_context(cafile=cert)
port = free_port()
injector = start(["inject", "--listen", f"127.0.0.1:{port}", "--tls-cert", cert, "--tls-key", key,
                  "--image", "ghcr.io/hookgate/hookgate:test"], f"https://127.0.0.1:{port}/healthz", tls)


def admit(fixture):
    body = open(os.path.join(HERE, "admission", fixture), "rb").read()
    request = urllib.request.Request(f"https://127.0.0.1:{port}/mutate", data=body,
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, context=tls, timeout=5) as response:
        return json.loads(body) if body.startswith(b"{") and fixture != "garbage.json" else None, json.load(response)


def patched(review, answer):
    patch = json.loads(base64.b64decode(answer["response"]["patch"]))
    return jsonpatch.apply_patch(review["request"]["object"], patch)


injected_app = [d for d in yaml.safe_load_all(open(os.path.join(DEPLOY, "kubernetes", "injected-app.yaml"))) if d]
app_config = next(d for d in injected_app if d["kind"] == "ConfigMap")["data"]["hookgate.yaml"]
app_secrets = next(d for d in injected_app if d["kind"] == "Secret")["stringData"]
try:
    for fixture in ["pod-minimal.json", "pod-with-volumes-and-init-containers.json"]:
        review, answer = admit(fixture)
        response = answer["response"]
        check(f"inject {fixture}: allowed with a JSONPatch for its uid",
              response["allowed"] and response.get("patchType") == "JSONPatch" and response["uid"] == review["request"]["uid"])
        pod = patched(review, answer)
        validate(f"inject {fixture}", pod)
        sidecar = pod["spec"]["initContainers"][0]
        check(f"inject {fixture}: hookgate is the first init container, a native sidecar",
              sidecar["name"] == "hookgate" and sidecar["restartPolicy"] == "Always" and sidecar["image"] == "ghcr.io/hookgate/hookgate:test")
        security = sidecar["securityContext"]
        check(f"inject {fixture}: non-root, read-only root filesystem, no capabilities",
              security["runAsNonRoot"] and security["readOnlyRootFilesystem"] and security["capabilities"] == {"drop": ["ALL"]})
        check(f"inject {fixture}: probes on the admin port",
              all(sidecar[p]["httpGet"]["port"] == "hookgate-admin" for p in ["startupProbe", "readinessProbe", "livenessProbe"]))
        original = review["request"]["object"]["spec"]
        kept = [c["name"] for c in pod["spec"]["initContainers"][1:]] == [c["name"] for c in original.get("initContainers", [])]
        kept &= pod["spec"]["volumes"][:len(original.get("volumes", []))] == original.get("volumes", [])
        check(f"inject {fixture}: the pod's own init containers and volumes are kept", kept)
        check(f"inject {fixture}: marked as injected", pod["metadata"]["annotations"]["hookgate.io/injected"] == "true")
        env = {e["name"]: e["value"] for e in sidecar["env"] if "value" in e}
        from_pod = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in sidecar["env"] if "valueFrom" in e}
        check(f"inject {fixture}: the pod's name and namespace reach the trace resource (downward API)",
              from_pod == {"HOOKGATE_POD_NAME": "metadata.name", "HOOKGATE_POD_NAMESPACE": "metadata.namespace"})
        mounted = {v["name"]: v for v in pod["spec"]["volumes"]}
        check(f"inject {fixture}: config from the ConfigMap named by hookgate.io/config",
              mounted["hookgate-config"]["configMap"]["name"] == "orders-hookgate")
        if "hookgate-secrets" in mounted:
            check(f"inject {fixture}: secrets from the Secret named by hookgate.io/secrets",
                  mounted["hookgate-secrets"]["secret"]["secretName"] == "orders-hookgate")
            check(f"inject {fixture}: hookgate.io/app-port reaches the config", env["HOOKGATE_APP_PORT"] == "3000")
            hookgate_check(f"inject {fixture}", app_config, app_secrets, env)
        # Admitting the patched pod again changes nothing.
        again = json.loads(json.dumps(review))
        again["request"]["object"] = pod
        path = os.path.join(HERE, "admission", "_again.json")
        try:
            with open(path, "w") as f:
                json.dump(again, f)
            _, answer = admit("_again.json")
        finally:
            os.remove(path)
        check(f"inject {fixture}: a second pass leaves it alone", "patch" not in answer["response"] and answer["response"]["allowed"])
    for fixture in ["pod-already-injected.json", "pod-not-annotated.json", "service.json"]:
        review, answer = admit(fixture)
        check(f"inject {fixture}: allowed unchanged",
              answer["response"] == {"uid": review["request"]["uid"], "allowed": True}, json.dumps(answer))
    _, answer = admit("garbage.json")
    response = answer["response"]
    check("inject garbage.json: a clear denial", response["allowed"] is False and "not JSON" in response["status"]["message"], json.dumps(answer))
    check("inject: still serving after the garbage", admit("service.json")[1]["response"]["allowed"])
finally:
    injector.kill()

# 4. Prometheus: the rules, and a real Prometheus scraping real hookgates.
prometheus_dir = os.path.join(DEPLOY, "prometheus")
for args in (["check", "rules", "rules.yaml"], ["test", "rules", "rules.test.yaml"], ["check", "config", "prometheus.yml"]):
    result = subprocess.run(["promtool", *args], cwd=prometheus_dir, capture_output=True, text=True)
    check(f"promtool {' '.join(args)}", result.returncode == 0, result.stdout + result.stderr)


class App(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


app = ThreadingHTTPServer(("127.0.0.1", 0), App)
threading.Thread(target=app.serve_forever, daemon=True).start()
app_url = f"http://127.0.0.1:{app.server_address[1]}"


def gateway(store, extra_routes=""):
    """A hookgate with inbound and outbound traffic of every kind; its admin and ports."""
    admin, inbound, outbound = free_port(), free_port(), free_port()
    config = os.path.join(WORK, f"gateway-{admin}.yaml")
    with open(config, "w") as f:
        f.write(f"""admin: {{ listen: "127.0.0.1:{admin}" }}
store: {store}
inbound:
  listen: "127.0.0.1:{inbound}"
  upstream: {app_url}
  routes:
    - {{ name: standard, path: /standard, verify: {{ scheme: standard-webhooks, secrets: ["{SECRET}"] }} }}
{extra_routes}outbound:
  listen: "127.0.0.1:{outbound}"
  endpoints:
    - {{ name: partner, url: "{app_url}/in", sign: {{ scheme: standard-webhooks, secret: "{SECRET}" }} }}
    - {{ name: gone, url: "http://127.0.0.1:{free_port()}/x", sign: {{ scheme: rejento, secret: s }}, retry: {{ schedule: [1s], max_attempts: 1 }} }}
""")
    process = start(["run", "-c", config], f"http://127.0.0.1:{admin}/livez")
    return process, admin, inbound, outbound


def post(url, body=b"{}", headers=None):
    request = urllib.request.Request(url, data=body, headers=headers or {}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


embedded, admin_a, inbound_a, outbound_a = gateway(
    f"{{ kind: embedded, path: {WORK}/data }}",
    '    - { name: queued, path: /queued, verify: none, deliver: queue }\n')
# Redis that is not there: the store's failure metrics.
redis_down, admin_b, inbound_b, _ = gateway(
    f'{{ kind: redis, url: "redis://127.0.0.1:{free_port()}", command_timeout: 200ms }}',
    '    - { name: deduped, path: /deduped, verify: none, dedupe: { id: "header:X-Id", ttl: 1h } }\n')
processes = [embedded, redis_down]
try:
    body = b'{"event":"candidate.created"}'
    body_file = os.path.join(WORK, "body.json")
    with open(body_file, "wb") as f:
        f.write(body)
    signed = subprocess.run([HOOKGATE, "sign", "--scheme", "standard-webhooks", "--secret", SECRET, body_file],
                            capture_output=True, text=True, check=True).stdout
    headers = dict(line.split(": ", 1) for line in signed.strip().splitlines())
    check("traffic: a signed webhook is forwarded", post(f"http://127.0.0.1:{inbound_a}/standard", body, headers) == 200)
    check("traffic: a forged one is refused", post(f"http://127.0.0.1:{inbound_a}/standard", body, {**headers, "webhook-signature": "v1,AAAA"}) == 401)
    check("traffic: outbound messages are accepted", post(f"http://127.0.0.1:{outbound_a}/partner") == 202 and post(f"http://127.0.0.1:{outbound_a}/gone") == 202)
    check("traffic: with Redis down, a deduped route fails closed", post(f"http://127.0.0.1:{inbound_b}/deduped", b"{}", {"X-Id": "1"}) == 503)
    time.sleep(6)  # the queue gauges refresh every 5 s

    def samples(admin):
        text = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics").read().decode()
        return {re.split(r"[{ ]", line)[0] for line in text.splitlines() if line and not line.startswith("#")}

    exported = samples(admin_a) | samples(admin_b)
    dashboard = open(os.path.join(DEPLOY, "grafana", "hookgate.json")).read()
    json.loads(dashboard)
    rules = open(os.path.join(prometheus_dir, "rules.yaml")).read()
    for source, text in (("deploy/grafana/hookgate.json", dashboard), ("deploy/prometheus/rules.yaml", rules)):
        used = set(re.findall(r"\bhookgate_[a-z_]+", text))
        missing = sorted(used - exported)
        check(f"{source}: its {len(used)} metric names are all exported by hookgate", not missing, f"not in /metrics: {missing}")

    prometheus_port = free_port()
    prometheus_config = os.path.join(WORK, "prometheus.yml")
    shutil.copy(os.path.join(prometheus_dir, "rules.yaml"), os.path.join(WORK, "rules.yaml"))
    with open(prometheus_config, "w") as f:
        yaml.safe_dump({"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, "rule_files": ["rules.yaml"],
                        "scrape_configs": [{"job_name": "hookgate", "static_configs": [{"targets": [f"127.0.0.1:{admin_a}", f"127.0.0.1:{admin_b}"]}]}]}, f)
    prometheus = subprocess.Popen(["prometheus", f"--config.file={prometheus_config}", f"--storage.tsdb.path={WORK}/tsdb",
                                   f"--web.listen-address=127.0.0.1:{prometheus_port}"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    processes.append(prometheus)

    def query(expression):
        url = f"http://127.0.0.1:{prometheus_port}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
        try:
            return json.load(urllib.request.urlopen(url, timeout=2))["data"]["result"]
        except (urllib.error.URLError, ConnectionError, OSError):
            return []

    deadline = time.time() + 60
    queries = {
        "count(hookgate_build_info)": lambda r: r and float(r[0]["value"][1]) == 2,
        'sum(hookgate_inbound_requests_total{route="standard",outcome="forwarded"})': lambda r: r and float(r[0]["value"][1]) == 1,
        'sum(hookgate_inbound_errors_total{error="invalid_signature"})': lambda r: r and float(r[0]["value"][1]) == 1,
        'sum(hookgate_outbound_queue_depth{endpoint="gone",state="dead"})': lambda r: r and float(r[0]["value"][1]) == 1,
        "sum(hookgate_store_errors_total)": lambda r: r and float(r[0]["value"][1]) >= 1,
    }
    answered = {}
    while time.time() < deadline and len(answered) < len(queries):
        for expression, good in queries.items():
            if expression not in answered and good(query(expression)):
                answered[expression] = True
        time.sleep(0.5)
    for expression in queries:
        check(f"prometheus scraped hookgate: {expression}", expression in answered)
    loaded = json.load(urllib.request.urlopen(f"http://127.0.0.1:{prometheus_port}/api/v1/rules"))["data"]["groups"]
    healthy = [r["name"] for g in loaded for r in g["rules"] if r["health"] in ("ok", "unknown")]
    check("prometheus loaded the alerting rules and evaluates them without errors", len(healthy) == 9, json.dumps(loaded)[:500])
finally:
    for process in processes:
        process.kill()
    app.shutdown()

shutil.rmtree(WORK, ignore_errors=True)
if failures:
    sys.exit(f"{len(failures)} deploy check(s) failed")
print("all deploy checks passed")
