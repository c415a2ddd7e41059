#!/usr/bin/env bash
# The API contract, checked with tools we did not write: openapi-spec-validator (PyPI)
# validates docs/openapi.json as OpenAPI 3.1. (tests/openapi.rs holds the document to the
# routes the code serves.)
#   tests/api/run.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
VENV="$ROOT/target/api-venv"
if ! "$VENV/bin/python" -c 'import openapi_spec_validator' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r "$HERE/requirements.txt"
fi
"$VENV/bin/python" -m openapi_spec_validator "$ROOT/docs/openapi.json"
