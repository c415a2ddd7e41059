"""Writes docs/openapi.json: the OpenAPI 3.1 description of every HTTP API of hookgate (the
admin port, the tenants' portal API and the outbound listener). This file is its source;
the binary serves what it wrote at GET /admin/openapi.json.

    python3 docs/openapi/build.py docs/openapi.json

tests/openapi.rs fails when docs/openapi.json is not what this writes (HOOKGATE_BLESS_DOCS=1
rewrites it), and when the routes the code serves and the document's operations differ.
"""

import copy
import json
import sys

def ref(name): return {"$ref": f"#/components/schemas/{name}"}
def rresp(name): return {"$ref": f"#/components/responses/{name}"}
def jbody(schema, desc): return {"description": desc, "content": {"application/json": {"schema": schema}}}

def err(desc, codes):
    return {"description": desc + " (`error`: " + ", ".join(f"`{c}`" for c in codes) + ")",
            "content": {"application/json": {"schema": {"allOf": [ref("Error"), {"properties": {"error": {"enum": codes}}}]}}}}

S = {}  # schemas
# A header hookgate reads as text: visible ASCII, inner spaces allowed (src/header_text.rs).
HEADER_TEXT = {"type": "string", "pattern": "^[!-~]([ -~]*[!-~])?$"}
EVENT_TYPE = {"type": "string", "pattern": "^[!-)+-~]{1,256}$", "description": "1 to 256 printable ASCII bytes, without spaces or `*`"}
S["Error"] = {"type": "object", "description": "Every answer hookgate makes itself on an error: a stable code clients match on, and a human message that never holds a secret.",
              "required": ["error", "message"],
              "properties": {"error": {"type": "string", "description": "A stable code, listed in docs/src/errors-and-metrics.md"},
                             "message": {"type": "string"},
                             "field": {"type": "string", "description": "The request field at fault (`url`, `event_types[2]`), for API input"},
                             "problems": {"type": "array", "items": {"type": "string"}, "description": "`config_invalid`: every problem of the file"}}}
S["Status"] = {"type": "object", "required": ["status"], "properties": {"status": {"type": "string", "enum": ["ok"]}}}
S["Readiness"] = {"type": "object", "required": ["status", "checks"],
                  "properties": {"status": {"type": "string", "enum": ["ready", "not_ready"]},
                                 "checks": {"type": "object", "additionalProperties": {"type": "string"}, "description": "each check: `ok`, or why it fails"},
                                 "paused_routes": {"type": "array", "items": {"type": "string"}}}}
auth_masked = {"type": "object", "description": "Receiver auth, every value shown as `[masked]`",
               "properties": {"headers": {"type": "object", "additionalProperties": {"type": "string"}},
                              "basic": {"type": "object", "properties": {"user": {"type": "string"}, "password": {"type": "string"}}},
                              "oauth2": {"type": "object", "properties": {"token_url": {"type": "string"}, "client_id": {"type": "string"}, "client_secret": {"type": "string"},
                                                                         "scopes": {"type": "array", "items": {"type": "string"}}, "audience": {"type": ["string", "null"]},
                                                                         "client_auth": {"type": "string", "enum": ["basic", "body"]}}}}}
S["ReceiverAuth"] = auth_masked
S["Subscription"] = {"type": "object", "description": "A subscription as answers show it: its signing secrets are never shown (only how many are live), and `auth` is masked.",
    "required": ["id", "url", "event_types", "scheme", "enabled", "created_at", "updated_at"],
    "properties": {
        "id": {"type": "string"}, "tenant": {"type": "string"}, "url": {"type": "string"},
        "event_types": {"type": "array", "items": {"type": "string"}},
        "filters": {"type": "object", "additionalProperties": {"type": "string"}},
        "scheme": {"type": "string"}, "algorithm": {"type": "string"},
        "signing_secrets": {"type": "integer", "minimum": 0},
        "retry": {"type": ["object", "null"]}, "rate_limit": {"type": "string"}, "concurrency": {"type": "integer", "minimum": 1},
        "enabled": {"type": "boolean"}, "disabled_reason": {"type": "string"}, "description": {"type": "string"},
        "trace_propagation": {"type": "boolean"}, "metadata": {"type": "object"},
        "auth": ref("ReceiverAuth"),
        "created_at": {"type": "integer"}, "updated_at": {"type": "integer"}, "from_config": {"type": "boolean"},
        "stats": {"type": "object"}}}
S["SubscriptionWithSecret"] = {"allOf": [ref("Subscription"), {"type": "object", "properties": {
    "secret": {"type": "string", "description": "The new signing secret, shown once"},
    "public_key": {"type": "string", "description": "For `algorithm: ed25519`: the public key receivers verify with, shown once"}}}]}
# Receiver auth as the API takes it (src/config/auth.rs): values are secrets, at most 4096
# characters without control characters, and never the mask an answer shows.
PLAIN = {"type": "string", "maxLength": 4096, "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"}
SECRET_VALUE = dict(PLAIN, minLength=1, **{"not": {"const": "[masked]"}})
S["ReceiverAuthInput"] = {"type": "object", "additionalProperties": False,
    "anyOf": [{"required": ["basic"]}, {"required": ["oauth2"]}, {"required": ["headers"], "properties": {"headers": {"minProperties": 1}}}],
    "not": {"required": ["basic", "oauth2"]}, "description": "`headers`, and `basic` or `oauth2` (both set `Authorization`)",
    "properties": {
        "headers": {"type": "object", "maxProperties": 16, "additionalProperties": SECRET_VALUE,
                    "propertyNames": {"pattern": "^[Xx]-[A-Za-z0-9-]{1,62}$"},
                    "description": "Sent as they are, such as `X-Api-Key` (any header name but those hookgate sets: `Host`, the framing, `Authorization` with basic or oauth2, ...)"},
        "basic": {"type": "object", "additionalProperties": False, "required": ["user", "password"],
                  "properties": {"user": dict(PLAIN, minLength=1, pattern="^[^:\\u0000-\\u001f\\u007f-\\u009f]*$"), "password": SECRET_VALUE}},
        "oauth2": {"type": "object", "additionalProperties": False, "required": ["token_url", "client_id", "client_secret"],
                   "properties": {"token_url": {"type": "string", "format": "uri", "pattern": "^https?://[^#]+$"},
                                  "client_id": dict(PLAIN, minLength=1), "client_secret": SECRET_VALUE,
                                  "scopes": {"type": "array", "items": {"type": "string", "pattern": "^[!#-\\[\\]-~]+$"}},
                                  "audience": PLAIN, "client_auth": {"type": "string", "enum": ["basic", "body"]}}}}}
editable = {
    "tenant": {"type": ["string", "null"], "pattern": "^[A-Za-z0-9._:-]{1,128}$"},
    "url": {"type": "string", "format": "uri", "pattern": "^https?://[^#]+$", "description": "The receiver's URL, checked by the SSRF guard"},
    "event_types": {"type": "array", "items": {"type": "string", "pattern": "^(\\*|[!-)+-~]{1,256}(\\.\\*)?)$"}, "minItems": 1, "maxItems": 256,
                    "description": "Names (1 to 256 printable ASCII bytes, without spaces or `*`), `prefix.*` or `*`"},
    "filters": {"type": "object", "propertyNames": {"pattern": "^[A-Za-z0-9_-]{1,64}$"}, "additionalProperties": {"type": ["string", "number"]}, "maxProperties": 32,
                "description": "Labels the event must carry with these values (a number is read as its text)"},
    "retry": {"type": ["object", "null"], "additionalProperties": False, "description": "The delivery policy's retry schedule, as `outbound.defaults.retry`",
              "properties": {"preset": {"type": "string"}, "schedule": {"type": "array", "items": {"type": "string"}}, "max_attempts": {"type": "integer"},
                             "timeout": {"type": "string"}, "success_status": {"type": "array", "items": {"type": "integer"}},
                             "max_retry_after": {"type": "string"}, "jitter": {"type": "integer"}}},
    "rate_limit": {"type": ["string", "null"], "pattern": "^[1-9][0-9]{0,5}/(s|sec|second|m|min|minute|h|hour|d|day)$", "description": "For example `50/s` (null removes it)"},
    "concurrency": {"type": ["integer", "null"], "minimum": 1, "maximum": 1024},
    "enabled": {"type": "boolean"},
    "description": {"type": "string", "minLength": 1, "maxLength": 1024},
    "metadata": {"type": "object"},
    "trace_propagation": {"type": "boolean"},
    "auth": {"anyOf": [ref("ReceiverAuthInput"), {"type": "null"}], "description": "Receiver auth: `headers`, `basic` or `oauth2`; answers mask every value (null removes it)"},
}
# The schemes hookgate signs with (src/schemes/presets.rs SCHEME_NAMES, but `hmac`, which needs options; tests/openapi.rs holds the two together).
SCHEMES = ["standard-webhooks", "svix", "clerk", "resend", "stytch", "workos", "okta", "auth0", "replicate",
           "openai", "stripe", "paddle", "shopify", "square", "woocommerce", "lemonsqueezy", "coinbase-commerce",
           "razorpay", "checkout", "gocardless", "chargebee", "xero", "github", "gitlab", "bitbucket", "jira",
           "linear", "sentry", "vercel", "circleci", "buildkite", "gitea", "gogs", "heroku", "pagerduty",
           "launchdarkly", "azure-devops", "twilio", "discord", "telnyx", "sendgrid", "slack", "zoom", "intercom",
           "meta", "teams", "telegram", "customerio", "twitch", "zendesk", "helpscout", "postmark", "typeform",
           "calendly", "docusign", "dropbox", "asana", "trello", "clickup", "notion", "airtable", "pipedrive",
           "persona", "box", "webflow", "sanity", "tally", "segment", "cloudflare", "hookdeck", "mux", "frameio",
           "rejento", "hiresscope", "tenzo", "jobylon", "bearer", "basic"]
S["SchemeName"] = {"type": "string", "enum": SCHEMES, "description": "A named signing scheme"}
create = dict(editable)
create.update({"scheme": {"allOf": [ref("SchemeName")], "description": "A scheme name; `standard-webhooks` when absent"},
               "algorithm": {"type": ["string", "null"], "enum": ["hmac-sha256", "ed25519", None], "description": "hmac-sha256 when absent or null"},
               "secret": {"type": "string", "minLength": 1, "maxLength": 4096, "description": "The signing secret; a new one is made when absent"}})
# Ed25519 is Standard Webhooks' v1a: no other scheme signs with it; and
# `basic` signs with `user:password`.
SCHEME_RULES = {"allOf": [
    {"if": {"required": ["algorithm"], "properties": {"algorithm": {"const": "ed25519"}}},
     "then": {"properties": {"scheme": {"const": "standard-webhooks"}}}},
    {"if": {"required": ["scheme"], "properties": {"scheme": {"const": "basic"}}},
     "then": {"properties": {"secret": {"pattern": "^[^:]+:"}}}}]}
S["SubscriptionCreate"] = {"type": "object", "required": ["url", "event_types"], "additionalProperties": False, "properties": create, **SCHEME_RULES}
S["SubscriptionPatch"] = {"type": "object", "additionalProperties": False, "properties": editable}
# What a tenant's token may set (src/admin/portal/api.rs): its own tenant is filled in.
TENANT_FIELDS = ["url", "event_types", "filters", "description", "enabled"]
S["PortalSubscriptionCreate"] = {"type": "object", "required": ["url", "event_types"], "additionalProperties": False,
                                 "properties": {k: v for k, v in create.items() if k in TENANT_FIELDS + ["scheme", "algorithm", "secret"]}, **SCHEME_RULES}
S["PortalSubscriptionPatch"] = {"type": "object", "additionalProperties": False, "properties": {k: v for k, v in editable.items() if k in TENANT_FIELDS}}
S["SubscriptionList"] = {"type": "object", "required": ["subscriptions"], "properties": {
    "subscriptions": {"type": "array", "items": ref("Subscription")},
    "next": {"type": ["string", "null"], "description": "The `after` of the next page; null on the last"}}}
S["RotateSecret"] = {"type": "object", "additionalProperties": False, "properties": {
    "secret": {"type": "string", "minLength": 1, "maxLength": 4096, "description": "The new secret; a new one is made when absent"},
    "overlap": {"type": "string", "pattern": "^([0-9]{1,9}ms|[0-9]{1,6}s|[0-9]{1,4}m|([0-9]{1,2}|[1-6][0-9]{2})h|([0-9]|[12][0-9]|30)d)$",
                "description": "How long the old secret still signs too, at most 30 days, for example `24h` (24h when absent)"}}}
S["TestEvent"] = {"type": "object", "additionalProperties": False, "properties": {
    "event_type": {"anyOf": [EVENT_TYPE, {"type": "null"}], "description": "`hookgate.test` when absent or null"}, "data": {"description": "The event's data"}}}
S["TestResult"] = {"type": "object", "required": ["delivery_id", "success"], "properties": {
    "delivery_id": {"type": "string"}, "success": {"type": "boolean"}, "status": {"type": ["integer", "null"]},
    "latency_ms": {"type": "integer"}, "response": {"type": "string"}, "error": {"type": ["string", "null"]}}}
S["Attempt"] = {"type": "object", "required": ["at_ms", "latency_ms"], "properties": {
    "at_ms": {"type": "integer"}, "status": {"type": ["integer", "null"]}, "error": {"type": ["string", "null"]},
    "latency_ms": {"type": "integer"}, "response": {"type": "string"},
    "request_headers": {"type": "array", "items": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2}}}}
S["Delivery"] = {"type": "object", "description": "A message: stored (pending, scheduled, dead) or delivered (from the history). Inline secrets and credentials are masked.",
    "required": ["id", "endpoint", "state", "attempts"],
    "properties": {"id": {"type": "string"}, "endpoint": {"type": "string"},
                   "state": {"type": "string", "enum": ["pending", "scheduled", "dead", "delivered"]},
                   "timestamp": {"type": "integer"}, "created_ms": {"type": "integer"}, "due_ms": {"type": "integer"},
                   "round_attempts": {"type": "integer"}, "attempts": {"type": "array", "items": ref("Attempt")},
                   "event": {"type": "object", "description": "For a subscription's delivery: the event it carries",
                             "required": ["event_id", "subscription", "event_type"],
                             "properties": {"event_id": {"type": "string"}, "subscription": {"type": "string"}, "tenant": {"type": "string"}, "event_type": {"type": "string"}}},
                   "target": {"type": "object"}, "destination": {"type": "object"},
                   "delivered_ms": {"type": "integer"}, "payload": {"type": ["string", "null"]},
                   "payload_bytes": {"type": "integer"}, "payload_truncated": {"type": "boolean"}}}
S["DeliveryList"] = {"type": "object", "required": ["deliveries"], "properties": {
    "deliveries": {"type": "array", "items": ref("Delivery")},
    "next": {"type": ["string", "null"], "description": "The `after` of the next page; null on the last (and on a search by `event_id` or `idempotency_key`, which answers every match)"}}}
S["Replayed"] = {"type": "object", "required": ["replayed"], "properties": {"replayed": {"type": "integer"}}}
S["Job"] = {"type": "object", "required": ["id", "kind", "state"], "properties": {
    "id": {"type": "string"}, "kind": {"type": "string", "enum": ["replay"]},
    "state": {"type": "string", "enum": ["running", "done", "cancelled", "failed"]}, "error": {"type": ["string", "null"]},
    "filter": {"type": "object"}, "states": {"type": "array", "items": {"type": "string"}}, "new_ids": {"type": "boolean"},
    "replayed": {"type": "integer"}, "skipped": {"type": "integer"}, "started_ms": {"type": "integer"}, "finished_ms": {"type": ["integer", "null"]}}}
S["JobList"] = {"type": "object", "required": ["jobs"], "properties": {"jobs": {"type": "array", "items": ref("Job")}}}
# Each filter of a replay: `null` is the same as leaving it out.
replay_fields = {
    "states": {"type": "array", "minItems": 1, "items": {"type": "string", "enum": ["pending", "scheduled", "dead", "delivered"]}},
    "new_ids": {"type": ["boolean", "null"]}, "all": {"type": ["boolean", "null"]},
    "endpoint": {"type": ["string", "null"]}, "route": {"type": ["string", "null"]}, "subscription": {"type": ["string", "null"]},
    "tenant": {"type": ["string", "null"], "pattern": "^[A-Za-z0-9._:-]{1,128}$"}, "event_type": {"type": ["string", "null"]},
    "since": {"type": ["integer", "null"], "minimum": 0, "maximum": 2**64 - 1, "description": "Unix milliseconds (an RFC 3339 time is read too)"},
    "until": {"type": ["integer", "null"], "minimum": 0, "maximum": 2**64 - 1, "description": "Unix milliseconds (an RFC 3339 time is read too)"}}
# Only delivered messages go out again under new ids: dead and waiting ones keep theirs.
NEW_IDS_ONLY_DELIVERED = {"if": {"required": ["new_ids"], "properties": {"new_ids": {"const": True}}},
                          "then": {"required": ["states"], "properties": {"states": {"items": {"const": "delivered"}}}}}
S["ReplayRequest"] = {"type": "object", "additionalProperties": False, "properties": replay_fields, **NEW_IDS_ONLY_DELIVERED}
S["PortalReplayRequest"] = {"type": "object", "additionalProperties": False,
                            "properties": {k: v for k, v in replay_fields.items() if k not in ("endpoint", "route", "all", "tenant")}, **NEW_IDS_ONLY_DELIVERED}
S["ReplayStarted"] = {"type": "object", "required": ["job"], "properties": {"job": ref("Job"), "replayed": {"type": "integer"}, "skipped": {"type": "integer"}}}
S["EventTypes"] = {"type": "object", "required": ["event_types"], "properties": {"event_types": {"type": "array", "items": {"type": "object"}}}}
S["Endpoint"] = {"type": "object", "required": ["name", "enabled"], "properties": {
    "name": {"type": "string"}, "url": {"type": "string"}, "enabled": {"type": "boolean"}, "reason": {"type": "string"},
    "since_ms": {"type": "integer"}, "paused_until_ms": {"type": ["integer", "null"]}}}
S["Depth"] = {"type": "object", "required": ["endpoint", "pending", "scheduled", "dead"], "properties": {
    "endpoint": {"type": "string"}, "pending": {"type": "integer"}, "scheduled": {"type": "integer"}, "dead": {"type": "integer"},
    "oldest_waiting_ms": {"type": ["integer", "null"]}}}
S["Route"] = {"type": "object", "required": ["name", "paused"], "properties": {"name": {"type": "string"}, "paused": {"type": "boolean"}, "since_ms": {"type": ["integer", "null"]}}}
S["Reseal"] = {"type": "object", "description": "A pass sealing the store anew with the first key of `store.encryption.keys`", "required": ["state"], "properties": {
    "state": {"type": "string", "enum": ["idle", "running", "done", "failed"]}, "error": {"type": ["string", "null"]},
    "kind": {"type": "string", "enum": ["seal", "rotate-key"]}, "key": {"type": "string"},
    "subscriptions": {"type": "object", "properties": {"resealed": {"type": "integer"}}},
    "queue": {"type": "object", "properties": {"scanned": {"type": "integer"}, "resealed": {"type": "integer"}}},
    "history": {"type": "object", "properties": {"scanned": {"type": "integer"}, "resealed": {"type": "integer"}}},
    "unreadable": {"type": "integer"}, "key_check_moved": {"type": "boolean"},
    "started_ms": {"type": "integer"}, "finished_ms": {"type": ["integer", "null"]}}}
S["Accepted"] = {"type": "object", "required": ["delivery_id"], "properties": {"delivery_id": {"type": "string"}, "duplicate": {"type": "boolean"}}}
S["Published"] = {"type": "object", "required": ["event_id", "event_type", "deliveries"], "properties": {
    "event_id": {"type": "string"}, "event_type": {"type": "string"},
    "deliveries": {"type": "array", "items": {"type": "object", "properties": {"subscription": {"type": ["string", "null"]}, "delivery_id": {"type": "string"}}}},
    "duplicate": {"type": "boolean"}}}

P = {}  # parameters
def qp(name, desc, schema=None):
    P[name] = {"name": name, "in": "query", "required": False, "description": desc, "schema": schema or {"type": "string", "minLength": 1}}
    return {"$ref": f"#/components/parameters/{name}"}
def pp(name, desc, schema=None):
    key = "path_" + name
    P[key] = {"name": name, "in": "path", "required": True, "description": desc, "schema": schema or {"type": "string", "minLength": 1}}
    return {"$ref": f"#/components/parameters/{key}"}

sub_after = qp("subscription_after", "The `next` of the previous page: the last subscription's id (empty or absent: the first page)", {"type": "string"})
P["subscription_after"]["name"] = "after"
limit = qp("limit", "Page size, 1 to 1000 (100 when absent)", {"type": "integer", "minimum": 1, "maximum": 1000})
after = qp("after", "The `next` of the previous page (empty or absent: the first page)", {"type": "string", "pattern": "^([0-9]{1,19}-.+)?$"})
f_endpoint = qp("endpoint", "Only this endpoint's deliveries (`subscriptions` for subscriptions')")
f_route = qp("route", "Only the webhooks this `deliver: queue` route stored")
f_subscription = qp("subscription", "Only this subscription's deliveries")
TENANT = {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"}
f_tenant = qp("tenant", "Only this tenant's", TENANT)
f_event_type = qp("event_type", "Only events of this type")
UNIX_MS = {"type": "integer", "minimum": 0, "maximum": 2**64 - 1}
f_since = qp("since", "Accepted at or after, unix milliseconds", UNIX_MS)
f_until = qp("until", "Accepted at or before, unix milliseconds", UNIX_MS)
f_state = qp("state", "pending, scheduled, dead or delivered (the history); without it, those still stored", {"type": "string", "enum": ["pending", "scheduled", "dead", "delivered"]})
f_event_id = qp("event_id", "Find an event's deliveries")
f_key = qp("idempotency_key", "Find a message by the `Idempotency-Key` it was sent with")
f_all = qp("all", "Purge or replay everything: required when no filter is given", {"type": "string", "enum": ["true", "false"]})
filters = [f_endpoint, f_route, f_subscription, f_tenant, f_event_type, f_since, f_until]
sub_state = qp("subscription_state", "enabled or disabled", {"type": "string", "enum": ["enabled", "disabled"]})
P["subscription_state"]["name"] = "state"
stats = qp("stats", "Add each subscription's delivery counts", {"type": "string", "enum": ["true", "false"]})
id_ = pp("id", "A subscription's id")
delivery_id = pp("delivery", "A delivery's id")
P["path_delivery"]["name"] = "id"
job_id = pp("job", "A job's id")
P["path_job"]["name"] = "id"
name = pp("name", "An endpoint's or a route's name")
tenant = pp("tenant", "A tenant's name", TENANT)

ADMIN = [{"admin_token": []}]
PORTAL = [{"portal_token": []}]
common_admin = {"401": err("No or a wrong admin token", ["unauthorized"]), "403": err("The admin API is off: there is no `admin.token`", ["admin_api_disabled"])}
no_outbound = ["outbound_not_configured"]
store_down = err("The store cannot be read or written now", ["store_unavailable", "queue_unavailable"])

def with_code(responses, status, description, code):
    """`responses` with `code` among those `status` carries."""
    if status not in responses:
        responses[status] = err(description, [code])
        return
    codes = responses[status]["content"]["application/json"]["schema"]["allOf"][1]["properties"]["error"]["enum"]
    if code not in codes:
        codes.append(code)


def op(op_id, summary, tags, security, params=(), body=None, responses=None, description=None):
    responses = responses or {}
    if any(P.get(p["$ref"].rsplit("/", 1)[1], {}).get("in") == "query" for p in params if "$ref" in p):
        with_code(responses, "400", "A query parameter other than `after` given without a value", "bad_request")
    o = {"operationId": op_id, "summary": summary, "tags": tags, "responses": responses}
    if description: o["description"] = description
    if security is not None: o["security"] = security
    if params: o["parameters"] = list(params)
    if body: o["requestBody"] = body
    return o

def reqjson(name, required=True):
    return {"required": required, "content": {"application/json": {"schema": ref(name)}}}

paths = {}
def add(path, method, o, servers=None):
    paths.setdefault(path, {})[method] = o
    if servers: paths[path]["servers"] = servers

ADMIN_SERVER = [{"url": "http://127.0.0.1:9901", "description": "admin.listen"}]
OUTBOUND_SERVER = [{"url": "http://127.0.0.1:9090", "description": "outbound.listen"}]

def admin_op(op_id, summary, tag, params=(), body=None, ok=None, errors=None, outbound=True, description=None):
    responses = copy.deepcopy(dict(ok or {}))
    for status, e in copy.deepcopy(errors or {}).items():
        responses[status] = e
    responses.update(copy.deepcopy(common_admin))
    if outbound:
        if "404" in responses:
            d = responses["404"]
            codes = d["content"]["application/json"]["schema"]["allOf"][1]["properties"]["error"]["enum"] + no_outbound
            responses["404"] = err(d["description"].split(" (`error`")[0] + ", or there is no outbound side", codes)
        else:
            responses["404"] = err("There is no `outbound:` side in this config", no_outbound)
        responses.setdefault("503", copy.deepcopy(store_down))
    return op(op_id, summary, [tag], ADMIN, params, body, responses, description)

# --- admin port, no token
add("/healthz", "get", op("healthz", "The process runs", ["health"], [], responses={"200": jbody(ref("Status"), "It runs")}))
add("/livez", "get", op("livez", "The process runs (as /healthz)", ["health"], [], responses={"200": jbody(ref("Status"), "It runs")}))
add("/readyz", "get", op("readyz", "Whether every listener and the store take traffic", ["health"], [], responses={
    "200": jbody(ref("Readiness"), "Ready"), "503": jbody(ref("Readiness"), "Not ready: `checks` says why")}))
add("/metrics", "get", op("metrics", "Prometheus metrics (OpenMetrics text)", ["health"], [], responses={
    "200": {"description": "The metrics", "content": {"application/openmetrics-text": {"schema": {"type": "string"}}}}}))
add("/admin/openapi.json", "get", op("openapi", "This document", ["health"], [], responses={
    "200": {"description": "The OpenAPI 3.1 description of every listener's API", "content": {"application/json": {"schema": {"type": "object"}}}}}))

# --- admin API
bad_filter = ["bad_request", "invalid_tenant"]
add("/admin/refusals", "get", admin_op("listRefusals", "The last inbound refusals, newest first", "inbound", [qp("refusal_route", "Only this route's"), qp("reason", "Only this reason (an error code)"), qp("refusal_limit", "At most this many, 1 to 10000", {"type": "integer", "minimum": 1, "maximum": 10000})],
    ok={"200": jbody({"type": "object", "required": ["refusals", "kept"], "properties": {"refusals": {"type": "array", "items": {"type": "object"}}, "kept": {"type": "integer"}}}, "The refusals")},
    errors={"400": err("A bad `limit`", ["invalid_limit"])}, outbound=False))
P["refusal_route"]["name"] = "route"; P["refusal_limit"]["name"] = "limit"
add("/admin/overview", "get", admin_op("overview", "Traffic per route in the last minute and hour, the queue, disabled endpoints and subscriptions", "operations",
    ok={"200": jbody({"type": "object"}, "The overview")}, outbound=False))
add("/admin/reload", "post", admin_op("reload", "Read the config file again (as SIGHUP)", "operations", [qp("allow_weaker", "Apply a config that lowers the protection of exposed paths", {"type": "string", "enum": ["true", "false"]})],
    ok={"200": jbody({"type": "object", "required": ["result"], "properties": {"result": {"type": "string", "enum": ["applied", "unchanged"]}, "hash": {"type": "string"}, "needs_restart": {"type": "array", "items": {"type": "string"}}}}, "Applied, or nothing changed")},
    errors={"400": err("A bad `allow_weaker`", ["bad_request"]), "404": err("Not started from a config file", ["reload_unavailable"]),
            "409": err("The config lowers the protection of exposed paths", ["reload_held"]), "422": err("The file fails its check; the running config stays", ["config_invalid"])}, outbound=False))
add("/admin/store/rotate-key", "get", admin_op("rotateKeyStatus", "The running reseal pass's progress, or how the last one ended", "store",
    ok={"200": jbody(ref("Reseal"), "The pass (`state: idle` when none ran)")}, outbound=False))
add("/admin/store/rotate-key", "post", admin_op("rotateKey", "Seal every stored value with the first key of store.encryption.keys, then move the key check to it", "store",
    ok={"202": jbody(ref("Reseal"), "The pass, running in the background")},
    errors={"409": err("store.encryption gives no keys", ["store_not_encrypted"])}, outbound=False))
add("/admin/tenants/{tenant}/portal", "post", admin_op("issuePortalLink", "A signed, expiring link to a tenant's portal", "portal", [tenant],
    body={"required": False, "content": {"application/json": {"schema": {"type": "object", "additionalProperties": False, "properties": {"ttl": {"type": "string", "description": "1s to 30d; 1h when absent", "pattern": "^(([1-9]|[12][0-9]|30)d|([1-9][0-9]?|[1-6][0-9][0-9]|7[01][0-9]|720)h|[1-9][0-9]{0,3}m|[1-9][0-9]{0,5}s)$"}, "read_only": {"type": "boolean"}}}}}},
    ok={"201": jbody({"type": "object", "required": ["url", "token", "expires_at"], "properties": {"url": {"type": "string"}, "token": {"type": "string"}, "expires_at": {"type": "integer", "description": "unix milliseconds"}, "read_only": {"type": "boolean"}, "tenant": {"type": "string"}}}, "The link")},
    errors={"400": err("A bad tenant or field", ["invalid_tenant", "invalid_ttl", "invalid_json", "invalid_field", "unknown_field"]), "404": err("No `admin.portal`", ["portal_not_configured"])}, outbound=False))
add("/admin/tenants/{tenant}/portal/revoke", "post", admin_op("revokePortalLinks", "Refuse every portal link the tenant was given until now", "portal", [tenant],
    ok={"200": jbody({"type": "object", "required": ["tenant", "revoked_at"], "properties": {"tenant": {"type": "string"}, "revoked_at": {"type": "integer"}}}, "Revoked")},
    errors={"400": err("A bad tenant", ["invalid_tenant"]), "404": err("No `admin.portal`", ["portal_not_configured"])}, outbound=False))

sub_field_errors = ["invalid_json", "unknown_field", "missing_field", "read_only_field", "invalid_field", "invalid_url", "destination_not_allowed",
                    "invalid_auth", "invalid_event_types", "invalid_filters", "invalid_scheme", "invalid_algorithm",
                    "invalid_secret", "invalid_policy", "invalid_concurrency", "invalid_tenant", "invalid_label"]
not_found_sub = err("No subscription has that id", ["subscription_not_found"])
def subs(prefix, tag, security_ops):
    mk = security_ops
    created = jbody(ref("SubscriptionWithSecret"), "Created; the secret is shown this once")
    # What a client (and schemathesis's stateful phase) does next with the new id.
    created["links"] = {
        name: {"operationId": (f"portal_{op_id}" if tag == "portal" else op_id), "parameters": {"id": "$response.body#/id"}}
        for name, op_id in [("get", "getSubscription"), ("update", "updateSubscription"), ("rotate", "rotateSubscriptionSecret"),
                            ("test", "testSubscription"), ("disable", "disableSubscription"), ("enable", "enableSubscription"),
                            ("replay", "replaySubscription"), ("delete", "deleteSubscription")]}
    add(f"{prefix}/subscriptions", "post", mk("createSubscription", "Subscribe a URL to event types", tag, body=reqjson(("Portal" if tag == "portal" else "") + "SubscriptionCreate"),
        ok={"201": created},
        errors={"400": err("A field cannot be used", sub_field_errors), "422": err("An event type the catalog does not list", ["unknown_event_type"])}))
    add(f"{prefix}/subscriptions", "get", mk("listSubscriptions", "Subscriptions in creation order, a page at a time", tag,
        params=([f_tenant] if tag != "portal" else []) + [f_event_type, sub_state, sub_after, limit, stats],
        ok={"200": jbody(ref("SubscriptionList"), "A page")}, errors={"400": err("A bad query", ["invalid_limit", "invalid_state", "invalid_field", "invalid_tenant"])}))
    add(f"{prefix}/subscriptions/{{id}}", "get", mk("getSubscription", "One subscription", tag, params=[id_],
        ok={"200": jbody(ref("Subscription"), "The subscription")}, errors={"404": not_found_sub}))
    add(f"{prefix}/subscriptions/{{id}}", "patch", mk("updateSubscription", "Change a subscription's fields", tag, params=[id_], body=reqjson(("Portal" if tag == "portal" else "") + "SubscriptionPatch"),
        ok={"200": jbody(ref("Subscription"), "Changed")},
        errors={"400": err("A field cannot be used", sub_field_errors), "404": not_found_sub, "409": err("Written in the config file", ["subscription_from_config"]),
                "422": err("An event type the catalog does not list", ["unknown_event_type"])}))
    add(f"{prefix}/subscriptions/{{id}}", "delete", mk("deleteSubscription", "Delete a subscription", tag, params=[id_],
        ok={"200": jbody({"type": "object", "required": ["deleted"], "properties": {"deleted": {"type": "string"}}}, "Deleted")},
        errors={"404": not_found_sub, "409": err("Written in the config file", ["subscription_from_config"])}))
    add(f"{prefix}/subscriptions/{{id}}/rotate-secret", "post", mk("rotateSubscriptionSecret", "Sign with a new secret, the old one too for an overlap", tag, params=[id_],
        body={"required": False, "content": {"application/json": {"schema": ref("RotateSecret")}}},
        ok={"200": jbody(ref("SubscriptionWithSecret"), "Rotated; the new secret is shown this once")},
        errors={"400": err("A bad secret or overlap", ["invalid_json", "unknown_field", "invalid_secret", "invalid_overlap"]), "404": not_found_sub,
                "409": err("Written in the config file", ["subscription_from_config"])}))
    for action, word in (("enable", "Deliver to it again"), ("disable", "Stop delivering to it; its messages wait")):
        add(f"{prefix}/subscriptions/{{id}}/{action}", "post", mk(f"{action}Subscription", word, tag, params=[id_],
            ok={"200": jbody(ref("Subscription"), "Done")}, errors={"404": not_found_sub, "409": err("Written in the config file", ["subscription_from_config"])}))
    add(f"{prefix}/subscriptions/{{id}}/test", "post", mk("testSubscription", "Send one signed test event now and show the receiver's answer", tag, params=[id_],
        body={"required": False, "content": {"application/json": {"schema": ref("TestEvent")}}},
        ok={"200": jbody(ref("TestResult"), "The attempt")},
        errors={"400": err("A bad body", ["invalid_json", "unknown_field", "invalid_event_type"]), "404": not_found_sub, "409": err("The subscription cannot be used", ["subscription_unusable"])}))
    add(f"{prefix}/subscriptions/{{id}}/replay", "post", mk("replaySubscription", "Make the subscription's dead deliveries due now", tag, params=[id_, f_since, f_until],
        ok={"200": jbody(ref("Replayed"), "How many")}, errors={"400": err("A bad filter", bad_filter), "404": not_found_sub}))

def deliveries(prefix, tag, mk, admin):
    params = ([f_endpoint, f_route] if admin else []) + [f_subscription] + ([f_tenant] if admin else []) + [f_event_type, f_since, f_until, f_state, f_event_id, f_key, after, limit]
    add(f"{prefix}/deliveries", "get", mk("listDeliveries", "Stored and delivered messages, filtered", tag, params=params,
        ok={"200": dict(jbody(ref("DeliveryList"), "The deliveries"), links={
            name: {"operationId": (op_id if admin else "portal_" + op_id), "parameters": {"id": "$response.body#/deliveries/0/id"}}
            for name, op_id in [("first", "getDelivery"), ("retry_first", "retryDelivery")]})}, errors={"400": err("A bad filter", bad_filter + ["invalid_cursor", "invalid_limit"])}))
    add(f"{prefix}/deliveries/replay", "post", mk("replayDeliveries", "Send stored or delivered messages again, as a job", tag,
        body={"required": False, "content": {"application/json": {"schema": ref(("" if admin else "Portal") + "ReplayRequest")}}},
        ok={"200": jbody(ref("ReplayStarted"), "Finished at once"), "202": dict(jbody(ref("ReplayStarted"), "Running: follow the job"), links={
            "job": {"operationId": ("getJob" if admin else "portal_getJob"), "parameters": {"id": "$response.body#/job/id"}},
            "cancel": {"operationId": ("cancelJob" if admin else "portal_cancelJob"), "parameters": {"id": "$response.body#/job/id"}}})},
        errors={"400": err("A bad filter", bad_filter + ["filter_required", "invalid_json", "unknown_field"]),
                "403": err("A tenant's token named another tenant or a field only the vendor may set", ["tenant_mismatch", "field_not_allowed"]) if not admin else common_admin["403"]}))
    add(f"{prefix}/deliveries/{{id}}", "get", mk("getDelivery", "One delivery with every attempt and its payload", tag, params=[delivery_id],
        ok={"200": jbody(ref("Delivery"), "The delivery")}, errors={"404": err("No delivery has that id", ["delivery_not_found"])}))
    add(f"{prefix}/deliveries/{{id}}/retry", "post", mk("retryDelivery", "Make a stored delivery due now, with a fresh round of attempts", tag, params=[delivery_id],
        ok={"200": jbody({"type": "object", "required": ["retried"], "properties": {"retried": {"type": "boolean"}}}, "Due now")},
        errors={"404": err("No stored delivery has that id", ["delivery_not_found"])}))
    add(f"{prefix}/jobs", "get", mk("listJobs", "The last bulk replays, newest first", tag, ok={"200": jbody(ref("JobList"), "The jobs")}))
    add(f"{prefix}/jobs/{{id}}", "get", mk("getJob", "A job's progress", tag, params=[job_id], ok={"200": jbody(ref("Job"), "The job")},
        errors={"404": err("No job has that id here", ["job_not_found"])}))
    add(f"{prefix}/jobs/{{id}}/cancel", "post", mk("cancelJob", "Stop a running job where it is", tag, params=[job_id], ok={"200": jbody(ref("Job"), "The job")},
        errors={"404": err("No job has that id here", ["job_not_found"])}))

subs("/admin", "subscriptions", admin_op)
deliveries("/admin", "deliveries", admin_op, True)
purge_state = qp("purge_state", "Which stored deliveries: pending, scheduled or dead", {"type": "string", "enum": ["pending", "scheduled", "dead"]})
P["purge_state"].update(name="state", required=True)
add("/admin/deliveries", "delete", admin_op("purgeDeliveries", "Delete stored deliveries", "deliveries", params=filters + [purge_state, f_all],
    ok={"200": jbody({"type": "object", "required": ["purged"], "properties": {"purged": {"type": "integer"}}}, "How many")},
    errors={"400": err("A bad filter, or none without all=true", bad_filter + ["filter_required"])}))
add("/admin/event-types", "get", admin_op("listEventTypes", "The event-type catalog (outbound.event_types)", "subscriptions", ok={"200": jbody(ref("EventTypes"), "The catalog")}))
add("/admin/endpoints", "get", admin_op("listEndpoints", "The configured endpoints and whether each is delivered to", "endpoints",
    ok={"200": jbody({"type": "object", "required": ["endpoints"], "properties": {"endpoints": {"type": "array", "items": ref("Endpoint")}}}, "The endpoints")}))
for action, word in (("enable", "Deliver to the endpoint again"), ("disable", "Stop delivering to the endpoint; its messages wait")):
    add(f"/admin/endpoints/{{name}}/{action}", "post", admin_op(f"{action}Endpoint", word, "endpoints", params=[name],
        ok={"200": jbody(ref("Endpoint"), "Done")}, errors={"404": err("No endpoint has that name", ["endpoint_not_found"])}))
add("/admin/endpoints/{name}/replay", "post", admin_op("replayEndpoint", "Make the endpoint's dead deliveries due now", "endpoints", params=[name] + filters[2:],
    ok={"200": jbody(ref("Replayed"), "How many")}, errors={"400": err("A bad filter", bad_filter), "404": err("No endpoint has that name", ["endpoint_not_found"])}))
add("/admin/queue", "get", admin_op("queueDepth", "Every endpoint's depth by state", "endpoints",
    ok={"200": jbody({"type": "object", "required": ["endpoints"], "properties": {"endpoints": {"type": "array", "items": ref("Depth")}}}, "The depths")}))
add("/admin/routes", "get", admin_op("listQueuedRoutes", "Each `deliver: queue` route: paused or not, its backlog", "inbound",
    ok={"200": jbody({"type": "object", "required": ["routes"], "properties": {"routes": {"type": "array", "items": {"type": "object"}}}}, "The routes")}))
for action, word in (("pause", "Stop sending the route's webhooks to its app; they are still verified and stored"), ("resume", "Send the route's webhooks to its app again")):
    add(f"/admin/routes/{{name}}/{action}", "post", admin_op(f"{action}Route", word, "inbound", params=[name],
        ok={"200": jbody(ref("Route"), "Done")}, errors={"404": err("No `deliver: queue` route has that name", ["route_not_found"])}))

# --- portal API
portal_common = {"401": err("No token, or one that is forged, expired or revoked", ["invalid_portal_token", "portal_token_expired", "portal_token_revoked"]),
                 "403": err("A read-only token asked to change something", ["read_only_token"])}
def portal_op(op_id, summary, tag, params=(), body=None, ok=None, errors=None):
    responses = copy.deepcopy(dict(ok or {}))
    for status, e in copy.deepcopy(errors or {}).items():
        if status == "403":
            codes = e["content"]["application/json"]["schema"]["allOf"][1]["properties"]["error"]["enum"] + ["read_only_token"]
            e = err(e["description"].split(" (`error`")[0] + ", or a read-only token asked to change something", codes)
        responses[status] = e
    for status, e in portal_common.items():
        responses.setdefault(status, copy.deepcopy(e))
    responses.setdefault("503", copy.deepcopy(store_down))
    return op("portal_" + op_id, summary, [tag], PORTAL, params, body, responses)
add("/portal/api/event-types", "get", portal_op("listEventTypes", "The event types the tenant may subscribe to", "portal", ok={"200": jbody(ref("EventTypes"), "The catalog")}))
subs("/portal/api", "portal", portal_op)
deliveries("/portal/api", "portal", portal_op, False)
for path in list(paths):
    if path.startswith("/portal/api/"):
        for method, o in paths[path].items():
            if method == "servers":
                continue
            if o.get("requestBody") and any(k in json.dumps(o["requestBody"]) for k in ("SubscriptionCreate", "SubscriptionPatch", "ReplayRequest")):
                r403 = o["responses"]["403"]
                codes = r403["content"]["application/json"]["schema"]["allOf"][1]["properties"]["error"]["enum"]
                for c in ("tenant_mismatch", "field_not_allowed"):
                    if c not in codes:
                        codes.append(c)

# --- UIs
html = {"200": {"description": "The page", "content": {"text/html": {"schema": {"type": "string"}}}}}
add("/ui/", "get", op("console", "The operator's console (a page that calls the admin API)", ["ui"], [], responses=html))
add("/portal/", "get", op("portal", "The tenant's portal (a page that calls /portal/api with the token after #token=)", ["ui"], [], responses=html))

# --- outbound listener
publish_errors = ["missing_event_type", "invalid_event_type", "invalid_json", "invalid_tenant", "invalid_label", "invalid_idempotency_key", "invalid_content_type", "bad_request_body"]
add("/events", "post", op("publishEvent", "Publish an event to every subscription of its type", ["outbound"], [],
    params=[{"name": "Hookgate-Event-Type", "in": "header", "required": True, "schema": EVENT_TYPE, "description": "The event's type (or where `outbound.events` says)"},
            {"name": "Hookgate-Tenant", "in": "header", "required": False, "schema": TENANT},
            {"name": "Idempotency-Key", "in": "header", "required": False, "schema": HEADER_TEXT}],
    body={"required": False, "description": "The event: JSON by default (any bytes when nothing reads it)", "content": {"application/json": {"schema": {}}}},
    responses={"202": jbody(ref("Published"), "Stored durably for every matching subscription"),
               "400": err("The event cannot be read", publish_errors), "405": err("Not a POST", ["method_not_allowed"]),
               "413": err("Over the body limit", ["body_too_large"]),
               "422": err("The payload fails its type's schema", ["invalid_payload"]),
               "503": err("Not stored; retry later", ["queue_unavailable", "store_unavailable"])}), OUTBOUND_SERVER)
add("/{endpoint}", "post", op("sendToEndpoint", "Sign and deliver a message to a configured endpoint (or, with Hookgate-Destination, to a per-request destination)", ["outbound"], [],
    params=[{"name": "endpoint", "in": "path", "required": True, "schema": {"type": "string"}, "description": "An endpoint's name"},
            {"name": "Idempotency-Key", "in": "header", "required": False, "schema": HEADER_TEXT},
            {"name": "Hookgate-Destination", "in": "header", "required": False, "schema": {"type": "string", "format": "uri", "pattern": "^https?://[!-~]+$"},
             "description": "A per-request destination's URL; with Hookgate-Secret or Hookgate-Secret-Ref"},
            {"name": "Hookgate-Scheme", "in": "header", "required": False, "schema": ref("SchemeName"), "description": "The per-request destination's scheme (`standard-webhooks` when absent)"},
            {"name": "Hookgate-Secret", "in": "header", "required": False, "schema": HEADER_TEXT, "description": "The per-request destination's secret, in its scheme's format"},
            {"name": "Hookgate-Secret-Ref", "in": "header", "required": False, "schema": HEADER_TEXT, "description": "Or the name of a secret in `outbound.secrets`"}],
    body={"required": False, "description": "The message, sent on as it is", "content": {"application/json": {"schema": {}}}},
    responses={"202": jbody(ref("Accepted"), "Stored durably; delivered and retried in the background"),
               "200": {"description": "`mode: sync`: the receiver's answer, relayed"},
               "400": err("The message cannot be read or sent", ["invalid_idempotency_key", "invalid_content_type", "bad_destination", "destination_not_allowed", "bad_scheme", "bad_secret", "missing_secret", "unknown_secret_ref", "bad_request_body"]),
               "404": err("No endpoint has that name", ["endpoint_not_found"]), "405": err("Not a POST", ["method_not_allowed"]),
               "413": err("Over the body limit", ["body_too_large"]),
               "502": err("`mode: sync`: no answer from the receiver", ["delivery_failed", "bad_receiver_answer"]),
               "503": err("Not stored; retry later", ["queue_unavailable", "endpoint_paused", "endpoint_disabled"])}), OUTBOUND_SERVER)

doc = {
    "openapi": "3.1.0",
    "info": {"title": "hookgate", "version": "0.1.0",
             "description": "Every HTTP API of hookgate, a webhook sidecar and gateway: the admin port (health, metrics, the admin API), the tenants' portal API, and the outbound listener the app posts to. Errors are JSON `{\"error\": code, \"message\": ...}`; the codes are listed per answer and in docs/src/errors-and-metrics.md. Lists are paged with `after` (the previous page's `next`) and `limit`.",
             "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"}},
    "servers": ADMIN_SERVER,
    "tags": [{"name": n} for n in ["health", "operations", "store", "inbound", "subscriptions", "deliveries", "endpoints", "portal", "outbound", "ui"]],
    "security": [],
    "paths": paths,
    "components": {
        "schemas": S, "parameters": P,
        "securitySchemes": {
            "admin_token": {"type": "http", "scheme": "bearer", "description": "`admin.token`"},
            "portal_token": {"type": "http", "scheme": "bearer", "description": "A tenant's portal token (`hgp_...`), from POST /admin/tenants/{tenant}/portal"}}},
}
with open(sys.argv[1], "w") as out:
    json.dump(doc, out, indent=2)
    out.write("\n")
