#!/usr/bin/env bash
# The console in a real browser: Playwright (from PyPI) driving the distribution's
# chromium (nothing is downloaded at test time but the Python package).
#   tests/console/run.sh path/to/hookgate [screenshot dir]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=$(realpath "$1")
SHOTS=$(realpath -m "${2:-$ROOT/target/console-screenshots}")
CHROMIUM=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
[ -n "$CHROMIUM" ] || { echo "chromium is needed: apt-get install chromium" >&2; exit 1; }
VENV="$ROOT/target/console-venv"
if ! "$VENV/bin/python" -c 'import playwright' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r "$HERE/requirements.txt"
fi
mkdir -p "$SHOTS"
"$VENV/bin/python" "$HERE/console_test.py" "$BIN" "$CHROMIUM" "$SHOTS"
"$VENV/bin/python" "$HERE/portal_test.py" "$BIN" "$CHROMIUM" "$SHOTS"
