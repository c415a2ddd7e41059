#!/usr/bin/env bash
# Checks deploy/ (manifests, Helm chart, injector, Prometheus rules and dashboard) with
# independent tools; see check.py. Installs its Python packages into deploy/test/.venv.
# Needs promtool and prometheus (Debian package prometheus) and openssl.
# Usage: deploy/test/run.sh [PATH/TO/hookgate]   (default: target/debug/hookgate)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
hookgate="$(realpath "${1:-$here/../../target/debug/hookgate}")"
[ -x "$hookgate" ] || { echo "no hookgate binary at $hookgate: run cargo build first" >&2; exit 2; }
cd "$here"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
.venv/bin/python check.py "$hookgate"
