# Sourced by the load scripts (after HERE and ROOT are set): the binary under test, a work
# directory removed on exit with every process listed in PIDS, and free ports on 127.0.0.1.
BIN=${HOOKGATE_BIN:-$ROOT/target/release/hookgate}
[ -x "$BIN" ] || (cd "$ROOT" && cargo build --release)

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# wait_port PORT [SECONDS]: until something listens on PORT (10 s unless told).
wait_port() {
  for _ in $(seq $(( ${2:-10} * 20 ))); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on $1" >&2; exit 1
}
