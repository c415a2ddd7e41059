#!/usr/bin/env bash
# Installs the providers' official libraries into this folder (interop/.venv and
# interop/node_modules), cross-checks the hookgate binary against them both ways
# (check.py, check.mjs), then sends their webhooks through a running hookgate to a
# small app (through_server.py, through_server.mjs).
# Usage: interop/run.sh [PATH/TO/hookgate]   (default: target/debug/hookgate)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
hookgate="$(realpath "${1:-$here/../target/debug/hookgate}")"
[ -x "$hookgate" ] || { echo "no hookgate binary at $hookgate: run cargo build first" >&2; exit 2; }

cd "$here"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
npm ci --silent --no-audit --no-fund

.venv/bin/python check.py "$hookgate"
node check.mjs "$hookgate"
.venv/bin/python through_server.py "$hookgate"
# Subscriptions: secret rotation with the official library, Ed25519 v1a both ways.
.venv/bin/python subscriptions.py "$hookgate"
