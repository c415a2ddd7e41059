#!/usr/bin/env bash
# Instructions per inbound request, counted by callgrind: a figure that does not move with
# the neighbours of a shared VM (the load script's req/s move by ±10% or more between runs),
# for comparing two builds of the request path.
#
#   benches/load/instructions.sh [--requests N] [--keep DIR] [ROW...]
#                                            ROW: none (default) and/or full
#
# Needs nginx, wrk, valgrind, python3 (`apt-get install nginx wrk valgrind`); HOOKGATE_BIN
# overrides target/release/hookgate. On 127.0.0.1 only: an nginx `return 200` upstream and
# hookgate under callgrind (`server.threads: 1`); wrk (1 thread, 32 connections) posts the
# load script's 1.3 KB webhook, each request signed (Rejento) with a fresh id; 500 requests
# warm up, then N (default 3000) are counted. Only the connection tasks of the inbound port
# are counted (`--toggle-collect`): not the runtime's scheduler, the timer thread or the
# dedupe writer. Prints one line per row: "<row> <instructions per request>". With --keep,
# each row's profile is kept as DIR/callgrind.<row>, for `callgrind_annotate --inclusive=yes`.
set -euo pipefail

REQUESTS=3000 KEEP= ROWS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --requests) REQUESTS=$2; shift 2 ;;
    --keep) KEEP=$2; mkdir -p "$KEEP"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | grep '^#'; exit 0 ;;
    none|full) ROWS+=("$1"); shift ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ ${#ROWS[@]} -gt 0 ] || ROWS=(none)

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
for tool in nginx wrk valgrind callgrind_control python3; do
  command -v "$tool" >/dev/null || { echo "$tool is needed: apt-get install nginx wrk valgrind" >&2; exit 1; }
done
# shellcheck source=common.sh
source "$HERE/common.sh"

UPSTREAM=$(port) ADMIN=$(port) INBOUND=$(port)
cat > "$WORK/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $WORK/nginx.pid; error_log $WORK/nginx.log;
events { worker_connections 1024; }
http {
  client_body_temp_path $WORK; proxy_temp_path $WORK; fastcgi_temp_path $WORK;
  uwsgi_temp_path $WORK; scgi_temp_path $WORK; keepalive_requests 1000000;
  server { listen 127.0.0.1:$UPSTREAM; access_log off; location / { return 200 "ok"; } }
}
CONF
nginx -c "$WORK/nginx.conf" & PIDS+=($!)
wait_port "$UPSTREAM"

SECRET=bench-secret
cat > "$WORK/hookgate.yaml" <<CONF
server: { threads: 1 }
admin: { listen: 127.0.0.1:$ADMIN, token: bench-token }
store: { kind: embedded, path: $WORK/data }
inbound:
  listen: 127.0.0.1:$INBOUND
  upstream: http://127.0.0.1:$UPSTREAM
  routes:
    - { name: none, path: /none, verify: none }
    - name: full
      path: /full
      verify: { scheme: rejento, secrets: ["$SECRET"] }
      dedupe: { id: "header:X-Rejento-Delivery-Id", ttl: 1h }
      rate_limit: { key: route, limit: 1000000/s }
CONF
python3 - "$WORK" "$SECRET" $(( (REQUESTS + 500) * ${#ROWS[@]} + 1000 )) <<'PY'
import hashlib, hmac, json, sys, time
work, secret, count = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3])
event = {"event": "candidate.created", "id": "@ID@", "data": {"id": "cand_1",
         "name": "A. Candidate", "notes": "x" * 1130}}
template = json.dumps(event)
open(f"{work}/body.json", "w").write(template)
head, tail = (part.encode() for part in template.split("@ID@"))
prefix = time.time_ns()
with open(f"{work}/signed.txt", "w") as f:
    for n in range(count):
        id = f"{prefix}-{n:09d}"
        f.write(f"{id} {hmac.new(secret, head + id.encode() + tail, hashlib.sha256).hexdigest()}\n")
PY
# post FILE ROW COUNT: COUNT requests from the signed ids in FILE, then wrk stops.
post() {
  BODY_FILE="$WORK/body.json" ID_HEADER=X-Rejento-Delivery-Id SIG_HEADER=X-Rejento-Signature \
  SIGNED_FILE="$1" STOP_AFTER="$3" \
    wrk -t1 -c32 -d600s -s "$HERE/post.lua" "http://127.0.0.1:$INBOUND/$2" | grep '^stopped'
}

valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.%p" --instr-atstart=no \
  '--toggle-collect=*InboundService*process_new*' "$BIN" run --config "$WORK/hookgate.yaml" \
  >"$WORK/hookgate.log" 2>&1 & GATE=$!; PIDS+=($GATE)
wait_port "$INBOUND" 30  # valgrind starts slowly
offset=0
for row in "${ROWS[@]}"; do
  # Each pass takes ids no pass took before: a row's process never sees an id twice.
  sed -n "$(( offset + 1 )),$(( offset + 500 ))p" "$WORK/signed.txt" > "$WORK/warm.txt"
  sed -n "$(( offset + 501 )),$(( offset + REQUESTS + 1000 ))p" "$WORK/signed.txt" > "$WORK/counted.txt"
  offset=$(( offset + REQUESTS + 1000 ))
  read -r _ _ bad < <(post "$WORK/warm.txt" "$row" 500)
  callgrind_control --zero "$GATE" >/dev/null 2>&1
  callgrind_control --instr=on "$GATE" >/dev/null 2>&1
  read -r _ answered bad < <(post "$WORK/counted.txt" "$row" "$REQUESTS")
  callgrind_control --instr=off "$GATE" >/dev/null 2>&1
  rm -f "$WORK"/callgrind.*.*
  callgrind_control --dump="$row" "$GATE" >/dev/null 2>&1
  [ "$bad" = 0 ] || { echo "$row: $bad of $answered answers were not 2xx" >&2; exit 1; }
  total=$(cat "$WORK"/callgrind.*.* | awk '/^totals:/ { s += $2 } END { print s + 0 }')
  [ -z "$KEEP" ] || cat "$WORK"/callgrind.*.* > "$KEEP/callgrind.$row"
  echo "$row $(( total / answered ))"
done
