"""A schemathesis check (loaded with SCHEMATHESIS_HOOKS=rules): a request the document calls
valid may be refused with 400 only for a rule OpenAPI cannot state, and each such rule is
listed here with why. Any other 400 to valid data fails the run, as schemathesis's own
positive_data_acceptance would (schemathesis.toml lets 400 through to this check).
"""
import schemathesis

# operationId (a portal operation's without `portal_`) -> {error code: why the document cannot say it}
RULES = {
    # `endpoint` and `route` both name a queue (a route's is `route:NAME`): one, not both.
    # A purge or a replay of everything says all=true: OpenAPI cannot ask for one of several
    # query parameters.
    "listDeliveries": {"bad_request": "endpoint and route are exclusive query parameters"},
    "purgeDeliveries": {"bad_request": "endpoint and route are exclusive query parameters",
                        "filter_required": "one filter, or all=true"},
    "replayDeliveries": {"bad_request": "endpoint and route are exclusive fields",
                         "filter_required": "one filter, or all=true"},
    # A signing secret's format is its scheme's: whsec_ and base64 for HMAC, a whsk_ key
    # pair for Ed25519 (its public half must match its private half), user:password for basic.
    "createSubscription": {"invalid_secret": "a secret's format is its scheme's",
                           # retry takes outbound.defaults.retry's values: presets, durations and their bounds
                           "invalid_policy": "retry's values are checked as the YAML's"},
    "updateSubscription": {"invalid_policy": "retry's values are checked as the YAML's"},
    "rotateSubscriptionSecret": {"invalid_secret": "the new secret's format is the stored subscription's scheme's"},
    # A per-request destination's headers go together: a secret or a reference to one, in
    # the scheme's format.
    "sendToEndpoint": {"missing_secret": "Hookgate-Destination needs Hookgate-Secret or Hookgate-Secret-Ref",
                       "bad_secret": "a secret's format is its scheme's; a secret and a reference are exclusive",
                       "unknown_secret_ref": "a reference names a secret of outbound.secrets"},
}


@schemathesis.check
def valid_data_is_refused_only_for_a_listed_rule(ctx, response, case):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 400:
        return None
    operation = case.operation.definition.raw.get("operationId", "").removeprefix("portal_")
    try:
        code = response.json().get("error")
    except ValueError:
        code = None
    if code not in RULES.get(operation, {}):
        raise AssertionError(f"valid data refused with 400 {code!r} by {operation}: {response.text[:300]}")
    return None
