#!/usr/bin/env bash
# The API contract, checked with tools we did not write, all from PyPI:
#   - openapi-spec-validator validates docs/openapi.json as OpenAPI 3.1;
#   - schemathesis fuzzes every operation of it against the live binary, and a client
#     generated from it by openapi-python-client creates a subscription, publishes an event
#     and reads the delivery (contract.py), in a network namespace with only loopback.
# (tests/openapi.rs holds the document to the routes the code serves.)
#   tests/api/run.sh path/to/hookgate
# A longer run, for a release: SCHEMATHESIS_EXAMPLES=200 tests/api/run.sh path/to/hookgate
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=$(realpath "$1")
VENV="$ROOT/target/api-venv"
if ! "$VENV/bin/python" -c 'import openapi_spec_validator, schemathesis, openapi_python_client' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r "$HERE/requirements.txt"
fi
"$VENV/bin/python" -m openapi_spec_validator "$ROOT/docs/openapi.json"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
unshare --map-root-user --net -- sh -c 'ip link set lo up && exec "$0" "$@"' \
  "$VENV/bin/python" "$HERE/contract.py" "$BIN" "$WORK"
