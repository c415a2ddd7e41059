#!/usr/bin/env bash
# hookgate's load benchmark, side by side with nginx in one run, on 127.0.0.1 only.
#
#   benches/load/run.sh [--rounds N] [--seconds S] [--backlog N] [--only inbound|outbound|fanout|queue]
#                       [--workers N]
#                       [--json FILE]
#
# Needs nginx, wrk, python3 (and redis-server for the Redis rows; they are skipped
# without it): `apt-get install nginx wrk redis-server`. Builds the release binary if
# target/release/hookgate is missing (HOOKGATE_BIN overrides it).
#
# Inbound (wrk, 1 thread, 32 connections, a 1.3 KB JSON webhook, rounds interleaved):
#   upstream     nginx `return 200` directly (the ceiling)
#   nginx        nginx as a plain reverse proxy in front of it (keepalive 64)
#   none         hookgate, route with `verify: none`
# nginx's worker_processes and hookgate's server.threads are both --workers (default 1).
#   full         hookgate: rejento signature + dedupe + rate limit; every request has its own
#                id in the body and its own signature (pre-computed), so each is forwarded
#   full-redis   the same on the Redis store
#   full-traced  `full` with OpenTelemetry traces at sampling 1.0, exported over OTLP/HTTP
#                to an nginx that answers 200 (every request's spans are built, encoded, sent)
# Each row twice per round: at saturation, and paced (every connection waits 2 ms after
# each answer, so every row is offered the same load and latencies compare at that load).
# Reported per row: req/s, p50/p99/p99.9, CPU seconds per 10,000 requests of the process
# under test (from /proc; every hookgate row has its own process), its peak RSS, and the
# ratios to nginx; as markdown, and as JSON with --json.
# Outbound (hookgate delivering to an nginx receiver that logs each delivery):
#   accepted/s   durable 202s/s (each after its fsync'd commit), wrk for S seconds
#   delivered/s  deliveries/s to the receiver while accepting
#   drain        a backlog of N accepted while the endpoint is disabled, then enabled:
#                time until all are delivered, and RSS with the backlog waiting
#   latency      accept-to-delivered p50/p99 at 500 msg/s offered (latency.py)
#   2 replicas   Redis: the same backlog drained by two hookgate replicas at once
#   sealed       the embedded and Redis rows again with store.encryption (when the binary
#                under test has it): the cost of sealing bodies, secrets and answers
# Inbound store and forward (`deliver: queue`, embedded store; the app is the nginx receiver):
#   accept       wrk at saturation on a route with the rejento signature, dedupe and
#                deliver: queue (verify, dedupe, durable store, 200), beside the nginx proxy
#                row measured in the same section: req/s and the ratio
#   drain        a backlog of N stored while the route is paused, then resumed: time until
#                the app has them all, and RSS with the backlog and after the drain
#   latency      accept-to-app p50/p99 at 500 webhooks/s offered (latency.py, verify: none)
#   sealed       the accept row again with store.encryption (when the binary has it)
# Fan-out (POST /events, embedded store): each event reaches 1, 10 or 100 subscriptions
# (all to the nginx receiver); wrk publishes for S seconds: events/s accepted (each one
# commit of all its deliveries), and deliveries/s from the first publish until every
# delivery has arrived.
set -euo pipefail

ROUNDS=3 SECONDS_EACH=5 BACKLOG=100000 ONLY=all JSON_OUT= WORKERS=1
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --seconds) SECONDS_EACH=$2; shift 2 ;;
    --backlog) BACKLOG=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --json) JSON_OUT=$(realpath -m "$2"); shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | grep '^#'; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
for tool in nginx wrk python3 curl; do
  command -v "$tool" >/dev/null || { echo "$tool is needed: apt-get install $tool" >&2; exit 1; }
done
# shellcheck source=common.sh
source "$HERE/common.sh"
rss_mib() { awk '/VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }

# --- nginx: the upstream (also the outbound receiver) and the plain proxy -------------
UPSTREAM=$(port) RECEIVER=$(port) PROXY=$(port) COLLECTOR=$(port)
mkdir -p "$WORK/nginx"
# nginx_conf NAME HTTP_BLOCK: one nginx with one worker, its files under $WORK/nginx.
nginx_conf() {
  cat > "$WORK/nginx/$1.conf" <<CONF
worker_processes $WORKERS; daemon off; pid $WORK/nginx/$1.pid; error_log $WORK/nginx/error.log;
events { worker_connections 4096; }
http {
  client_body_temp_path $WORK/nginx; proxy_temp_path $WORK/nginx; fastcgi_temp_path $WORK/nginx;
  uwsgi_temp_path $WORK/nginx; scgi_temp_path $WORK/nginx;
  keepalive_requests 1000000;
  $2
}
CONF
}
nginx_conf upstream "
  server { listen 127.0.0.1:$UPSTREAM; access_log off; location / { return 200 \"ok\"; } }
  server { listen 127.0.0.1:$RECEIVER; access_log $WORK/nginx/deliveries.log; location / { return 200 \"ok\"; } }
  server { listen 127.0.0.1:$COLLECTOR; access_log off; client_max_body_size 64m; location / { return 200; } }"
nginx_conf proxy "
  access_log off;
  upstream app { server 127.0.0.1:$UPSTREAM; keepalive 64; }
  server { listen 127.0.0.1:$PROXY;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
nginx -c "$WORK/nginx/upstream.conf" & UPSTREAM_PID=$!; PIDS+=($!)
nginx -c "$WORK/nginx/proxy.conf" & PROXY_PID=$!; PIDS+=($!)
wait_port "$UPSTREAM"; wait_port "$PROXY"

# --- the payload ---------------------------------------------------------------------
SECRET=bench-secret
python3 - "$WORK/body.json" <<'PY'
import json, sys
event = {"event": "candidate.created", "id": "@ID@", "data": {"id": "cand_1",
         "name": "A. Candidate", "notes": "x" * 1130}}
open(sys.argv[1], "w").write(json.dumps(event))
PY
# sign_ids FILE COUNT: COUNT fresh ids, each with the Rejento signature of its body.
sign_ids() {
  python3 - "$WORK/body.json" "$SECRET" "$1" "$2" "$(date +%s%N)" <<'PY'
import hashlib, hmac, sys
template, secret, out, count, prefix = open(sys.argv[1]).read(), sys.argv[2].encode(), sys.argv[3], int(sys.argv[4]), sys.argv[5]
head, tail = (part.encode() for part in template.split("@ID@"))
with open(out, "w") as f:
    for n in range(count):
        id = f"{prefix}-{n:09d}"  # every line the same length (post.lua)
        f.write(f"{id} {hmac.new(secret, head + id.encode() + tail, hashlib.sha256).hexdigest()}\n")
PY
}

# --- hookgate ------------------------------------------------------------------------
REDIS_PORT=
if command -v redis-server >/dev/null; then
  REDIS_PORT=$(port)
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
    >"$WORK/redis.log" 2>&1 & PIDS+=($!)
  wait_port "$REDIS_PORT"
fi

# hookgate_config NAME STORE_YAML: writes $WORK/NAME.yaml and sets ADMIN/INBOUND/OUTBOUND.
hookgate_config() {
  ADMIN=$(port) INBOUND=$(port) OUTBOUND=$(port)
  cat > "$WORK/$1.yaml" <<CONF
server: { threads: $WORKERS }
admin: { listen: 127.0.0.1:$ADMIN, token: bench-token }
store: $2
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
outbound:
  listen: 127.0.0.1:$OUTBOUND
  allow_private_destinations: [127.0.0.0/8]   # the fan-out rows' subscriptions
  endpoints:
    - name: receiver
      url: http://127.0.0.1:$RECEIVER/hooks
      sign: { scheme: rejento, secret: "$SECRET" }
      # Above what two replicas' workers (outbound.concurrency 256 each) have in flight:
      # with Redis the limit is shared, and these rows measure the engine, not the limit.
      concurrency: 512
CONF
}
# start_hookgate NAME: runs it; sets PID.
start_hookgate() {
  "$BIN" run --config "$WORK/$1.yaml" >"$WORK/$1.log" 2>&1 & PID=$!; PIDS+=($PID)
  wait_port "$ADMIN"; wait_port "$INBOUND"; wait_port "$OUTBOUND"
}
admin() { curl -sf -X "$1" -H "authorization: Bearer bench-token" "http://127.0.0.1:$ADMIN/admin/$2" ${3:+-H "content-type: application/json" -d "$3"}; }

# wrk_run URL [ID_HEADER] [STOP_AFTER] [DURATION] [SIGNED_FILE] [DELAY_MS]: prints
# "req/s p50_ms p99_ms p99.9_ms non2xx answers".
wrk_run() {
  BODY_FILE="$WORK/body.json" ID_HEADER="${2:-}" STOP_AFTER="${3:-0}" ID_PREFIX="$(date +%s%N)" \
  SIGNED_FILE="${5:-}" SIG_HEADER=X-Rejento-Signature DELAY_MS="${6:-0}" \
    wrk -t1 -c32 -d"${4:-${SECONDS_EACH}s}" -s "$HERE/post.lua" "$1" > "$WORK/wrk.out" 2>&1 || true
  python3 - "$WORK/wrk.out" <<'PY'
import re, sys
out = open(sys.argv[1]).read()
stopped = re.search(r"stopped (\d+) (\d+)", out)
if stopped:
    print(f"0 0 0 0 {stopped.group(2)} {stopped.group(1)}")
    sys.exit()
rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
p50, p99, p999 = (int(us) / 1000 for us in re.search(r"percentiles_us (\d+) (\d+) (\d+)", out).groups())
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
total = re.search(r"(\d+) requests in", out).group(1)
print(f"{rate:.0f} {p50:.3f} {p99:.3f} {p999:.3f} {bad.group(1) if bad else 0} {total}")
PY
}
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
# cpu_ticks PID...: user + system CPU of the processes (all their threads), in clock ticks.
cpu_ticks() { for pid in "$@"; do awk '{ print $14 + $15 }' "/proc/$pid/stat"; done | awk '{ s += $1 } END { print s }'; }
# peak_rss_mib PID...: the largest peak RSS among the processes.
peak_rss_mib() { for pid in "$@"; do awk '/VmHWM/ { print $2 }' "/proc/$pid/status"; done | sort -n | tail -1 | awk '{ printf "%.0f", $1 / 1024 }'; }
TICKS=$(getconf CLK_TCK)

# --- inbound -------------------------------------------------------------------------
# Each hookgate row has its own process, so its peak RSS and CPU are its own.
if [ "$ONLY" = all ] || [ "$ONLY" = inbound ]; then
  ROWS="upstream nginx none full"
  declare -A URL PROCS
  URL[upstream]=http://127.0.0.1:$UPSTREAM/hooks; PROCS[upstream]="$(pgrep -P "$UPSTREAM_PID")"
  URL[nginx]=http://127.0.0.1:$PROXY/hooks; PROCS[nginx]="$(pgrep -P "$PROXY_PID")"
  hookgate_config inbound-none "{ kind: embedded, path: $WORK/data-inbound-none }"
  start_hookgate inbound-none; URL[none]=http://127.0.0.1:$INBOUND/none; PROCS[none]=$PID
  # Rejento's id is not signed, so each request claims two keys (its id and its signed
  # content): 3 rounds hold over a million. Room for all, so no row is cut short by the cap.
  hookgate_config inbound-full "{ kind: embedded, path: $WORK/data-inbound-full, max_ids: 4000000 }"
  start_hookgate inbound-full; URL[full]=http://127.0.0.1:$INBOUND/full; PROCS[full]=$PID
  hookgate_config inbound-traced "{ kind: embedded, path: $WORK/data-inbound-traced, max_ids: 4000000 }"
  printf 'telemetry:\n  otlp: { endpoint: "http://127.0.0.1:%s" }\n  sampling: 1.0\n' "$COLLECTOR" \
    >> "$WORK/inbound-traced.yaml"
  start_hookgate inbound-traced; URL[full-traced]=http://127.0.0.1:$INBOUND/full; PROCS[full-traced]=$PID
  TRACED_ADMIN=$ADMIN
  ROWS="$ROWS full-traced"
  if [ -n "$REDIS_PORT" ]; then
    hookgate_config inbound-redis "{ kind: redis, url: \"redis://127.0.0.1:$REDIS_PORT\" }"
    start_hookgate inbound-redis; URL[full-redis]=http://127.0.0.1:$INBOUND/full; PROCS[full-redis]=$PID
    ROWS="$ROWS full-redis"
  fi
  # Each connection waits this long after each answer in the paced pass: 32 connections
  # offer a little under 32 / 2 ms = 16,000 req/s to every row.
  PACE_MS=2
  : > "$WORK/inbound.txt"
  for round in $(seq "$ROUNDS"); do
    for pass in max paced; do
      delay=0; [ $pass = paced ] && delay=$PACE_MS
      # Every row gets the same requests: signed, each with a fresh id (more than any row
      # takes in a run; a row's process never sees an id twice).
      signed="$WORK/signed.txt"; sign_ids "$signed" $(( SECONDS_EACH * 60000 ))
      for row in $ROWS; do
        # shellcheck disable=SC2086
        before=$(cpu_ticks ${PROCS[$row]})
        result=$(wrk_run "${URL[$row]}" X-Rejento-Delivery-Id 0 "${SECONDS_EACH}s" "$signed" "$delay")
        # shellcheck disable=SC2086
        after=$(cpu_ticks ${PROCS[$row]})
        echo "$pass $row $result $(( after - before ))" >> "$WORK/inbound.txt"
      done
    done
  done
  # Per row and pass, medians over the rounds: req/s p50 p99 p99.9 non2xx(sum) cpu-s/10k peak-RSS
  # shellcheck disable=SC2086
  python3 - "$WORK/inbound.txt" "$TICKS" $ROWS <<'PY' > "$WORK/inbound.table"
import json, statistics, sys
path, ticks, rows = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
runs = {}
for line in open(path):
    pass_, row, rate, p50, p99, p999, bad, total, cpu = line.split()
    runs.setdefault((pass_, row), []).append(dict(rate=float(rate), p50=float(p50), p99=float(p99),
        p999=float(p999), bad=int(bad), total=int(total), cpu=int(cpu) / ticks))
def summary(pass_, row):
    r = runs[(pass_, row)]
    med = lambda k: statistics.median(x[k] for x in r)
    return dict(req_s=round(med("rate")), p50_ms=med("p50"), p99_ms=med("p99"), p999_ms=med("p999"),
                non_2xx=sum(x["bad"] for x in r),
                cpu_s_per_10k=round(statistics.median(x["cpu"] / x["total"] * 10000 for x in r), 3))
result = {p: {row: summary(p, row) for row in rows} for p in ("max", "paced")}
for p in result:
    base = result[p]["nginx"]
    for row, s in result[p].items():
        s["req_s_vs_nginx"] = round(s["req_s"] / base["req_s"], 2)
        s["p99_vs_nginx"] = round(s["p99_ms"] / base["p99_ms"], 2)
        s["cpu_vs_nginx"] = round(s["cpu_s_per_10k"] / base["cpu_s_per_10k"], 2) if base["cpu_s_per_10k"] else None
print(json.dumps(result))
PY
  for row in $ROWS; do
    # shellcheck disable=SC2086
    echo "$row $(peak_rss_mib ${PROCS[$row]})"
  done > "$WORK/inbound.rss"
  python3 - "$WORK/inbound.table" "$WORK/inbound.rss" "$ROUNDS" "$SECONDS_EACH" "$PACE_MS" "$WORKERS" <<'PY'
import json, sys
result = json.load(open(sys.argv[1]))
rss = dict(line.split() for line in open(sys.argv[2]))
rounds, seconds, pace, workers = sys.argv[3:7]
for p in result.values():
    for row, s in p.items():
        s["peak_rss_mib"] = int(rss[row])
json.dump(result, open(sys.argv[1], "w"), indent=1)
print(f"\n## Inbound: {rounds} rounds of {seconds}s per row, interleaved; medians (wrk -t1 -c32, 1.3 KB JSON; {workers} nginx worker(s), server.threads {workers})\n")
for p, title in (("max", "at saturation"), ("paced", f"at the same offered load (each connection waits {pace} ms after each answer)")):
    print(f"### {title}\n")
    print("| row | req/s | vs nginx | p50 ms | p99 ms | p99.9 ms | p99 vs nginx | CPU s / 10k req | CPU vs nginx | peak RSS MiB | non-2xx |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row, s in result[p].items():
        print(f"| {row} | {s['req_s']:,} | {s['req_s_vs_nginx']:.2f}× | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | "
              f"{s['p999_ms']:.2f} | {s['p99_vs_nginx']:.2f}× | {s['cpu_s_per_10k']:.3f} | {s['cpu_vs_nginx']:.2f}× | "
              f"{s['peak_rss_mib']} | {s['non_2xx']} |")
    print()
PY
  # The traced row is only honest if its spans went out rather than being dropped.
  sleep 1
  echo "full-traced spans: $(curl -s "http://127.0.0.1:$TRACED_ADMIN/metrics" \
    | awk '/^hookgate_trace_spans_total/ { printf "%s ", $0 }')"
  [ -z "$JSON_OUT" ] || { cp "$WORK/inbound.table" "$JSON_OUT"; echo "(JSON in $JSON_OUT)"; }
fi

# --- outbound ------------------------------------------------------------------------
deliveries() { if [ -f "$WORK/nginx/deliveries.log" ]; then wc -l < "$WORK/nginx/deliveries.log"; else echo 0; fi; }
# wait_delivered N: waits until the receiver has N deliveries; prints the seconds it took.
wait_delivered() {
  python3 - "$WORK/nginx/deliveries.log" "$1" <<'PY'
import os, sys, time
path, want, start = sys.argv[1], int(sys.argv[2]), time.monotonic()
while True:
    have = sum(1 for _ in open(path)) if os.path.exists(path) else 0
    if have >= want or time.monotonic() - start > 600:
        print(f"{time.monotonic() - start:.2f}")
        break
    time.sleep(0.05)
PY
}

# store.encryption with a fixed key (32 bytes of 0x01), for the sealed rows.
SEALED='encryption: { keys: ["AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="] }'
# Whether the binary under test has store.encryption.
sealed_supported() {
  printf 'store: { %s }\noutbound: { endpoints: [] }\n' "$SEALED" > "$WORK/sealed-check.yaml"
  "$BIN" check --config "$WORK/sealed-check.yaml" >/dev/null 2>&1
}

outbound_rows() {  # NAME STORE_YAML
  local name=$1
  hookgate_config "$name" "$2"
  start_hookgate "$name"
  local before accepted delivered_during drain_s rss
  # accepted/s and delivered/s together
  before=$(deliveries)
  read -r rate _ _ _ bad total < <(wrk_run "http://127.0.0.1:$OUTBOUND/receiver")
  delivered_during=$(( $(deliveries) - before ))
  wait_delivered $(( before + total - bad )) >/dev/null
  # a backlog, then drained
  admin POST endpoints/receiver/disable >/dev/null
  before=$(deliveries)
  read -r _ _ _ _ bad accepted < <(wrk_run "http://127.0.0.1:$OUTBOUND/receiver" "" "$BACKLOG" 600s)
  rss=$(rss_mib "$PID")
  admin POST endpoints/receiver/enable >/dev/null
  drain_s=$(wait_delivered $(( before + accepted - bad )))
  printf "| %s | %s | %.0f | %s in %ss = %.0f/s | %s | %s |\n" "$name" "$rate" \
    "$(echo "$delivered_during / $SECONDS_EACH" | bc -l)" "$(( accepted - bad ))" "$drain_s" \
    "$(echo "($accepted - $bad) / $drain_s" | bc -l)" "$rss" "$(latency_row "$name")"
  kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true
}

# latency_row NAME: a second hookgate on the same store kind, delivering to latency.py.
latency_row() {
  local port; port=$(port)
  local config="$WORK/$1.yaml" lat="$WORK/$1-latency.yaml"
  sed -e "s#http://127.0.0.1:$RECEIVER/hooks#http://127.0.0.1:$port/hooks#" \
      -e "s#data-$1#data-$1-latency#" "$config" > "$lat"
  local saved_admin=$ADMIN saved_out=$OUTBOUND
  # In this $(...) subshell `wait` cannot wait for $PID: look until it is gone, so that
  # its ports are free.
  kill "$PID" 2>/dev/null; while kill -0 "$PID" 2>/dev/null; do sleep 0.05; done
  "$BIN" run --config "$lat" >"$WORK/$1-latency.log" 2>&1 & local lpid=$!; PIDS+=($lpid)
  wait_port "$OUTBOUND"
  python3 "$HERE/latency.py" "http://127.0.0.1:$OUTBOUND/receiver" "$port" 500 10 2>"$WORK/latency.err" | awk '{ printf "%s / %s", $1, $2 }'
  kill "$lpid"; wait "$lpid" 2>/dev/null || true
  ADMIN=$saved_admin OUTBOUND=$saved_out
}

# two_replicas_drain STORE_YAML: a backlog accepted through one replica, drained by two.
two_replicas_drain() {
  hookgate_config replica-b "$1"; start_hookgate replica-b; local second=$PID
  hookgate_config replica-a "$1"; start_hookgate replica-a
  admin POST endpoints/receiver/disable >/dev/null
  local before; before=$(deliveries)
  read -r _ _ _ _ bad accepted < <(wrk_run "http://127.0.0.1:$OUTBOUND/receiver" "" "$BACKLOG" 600s)
  local rss_a rss_b; rss_a=$(rss_mib "$PID"); rss_b=$(rss_mib "$second")
  admin POST endpoints/receiver/enable >/dev/null
  local drain_s; drain_s=$(wait_delivered $(( before + accepted - bad )))
  printf "| redis, 2 replicas | | | %s in %ss = %.0f/s | %s + %s | |\n" "$(( accepted - bad ))" "$drain_s" \
    "$(echo "($accepted - $bad) / $drain_s" | bc -l)" "$rss_a" "$rss_b"
  kill "$PID" "$second" 2>/dev/null || true; wait "$PID" "$second" 2>/dev/null || true
}

# fanout_row N: events that each reach N subscriptions.
fanout_row() {
  local n=$1
  hookgate_config "fanout-$n" "{ kind: embedded, path: $WORK/data-fanout-$n }"
  start_hookgate "fanout-$n"
  for i in $(seq 1 "$n"); do
    # concurrency as the endpoint rows': these rows measure the engine, not the limit.
    admin POST subscriptions "{\"url\": \"http://127.0.0.1:$RECEIVER/sub/$i\", \"event_types\": [\"candidate.*\"], \"scheme\": \"rejento\", \"concurrency\": 512}" >/dev/null
  done
  local before start_ns rate bad total
  before=$(deliveries); start_ns=$(date +%s%N)
  read -r rate _ _ _ bad total < <(wrk_run "http://127.0.0.1:$OUTBOUND/events")
  local made=$(( (total - bad) * n ))
  wait_delivered $(( before + made )) >/dev/null
  local seconds; seconds=$(echo "($(date +%s%N) - $start_ns) / 1000000000" | bc -l)
  printf "| %s | %s | %.0f | %s in %.1fs | %s |\n" "$n" "$rate" "$(echo "$made / $seconds" | bc -l)" \
    "$made" "$seconds" "$(peak_rss_mib "$PID")"
  kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true
}

# queue_config NAME LATENCY_PORT [STORE_KEYS]: hookgate with deliver: queue routes, the
# signed one to the nginx receiver (its deliveries log counts them), the unsigned one to
# latency.py; STORE_KEYS adds keys to the store (such as $SEALED).
queue_config() {
  ADMIN=$(port) INBOUND=$(port) OUTBOUND=$(port)
  cat > "$WORK/$1.yaml" <<CONF
server: { threads: $WORKERS }
admin: { listen: 127.0.0.1:$ADMIN, token: bench-token }
store: { kind: embedded, path: $WORK/data-$1, max_ids: 4000000${3:+, $3} }
inbound:
  listen: 127.0.0.1:$INBOUND
  upstream: http://127.0.0.1:$RECEIVER
  routes:
    - name: queued
      path: /queued
      verify: { scheme: rejento, secrets: ["$SECRET"] }
      dedupe: { id: "header:X-Rejento-Delivery-Id", ttl: 1h }
      deliver: queue
      queue: { concurrency: 512 }
    - { name: latency, path: /latency, verify: none, deliver: queue, ack_status: 202, upstream: "http://127.0.0.1:$2" }
outbound:
  listen: 127.0.0.1:$OUTBOUND
CONF
}

if [ "$ONLY" = all ] || [ "$ONLY" = queue ]; then
  lat_port=$(port)
  queue_config queue "$lat_port"
  start_hookgate queue
  signed="$WORK/signed-queue.txt"; sign_ids "$signed" $(( SECONDS_EACH * 60000 + BACKLOG ))
  # accept: the nginx proxy and the queued route, one after the other, each at saturation
  read -r nginx_rate _ _ _ _ _ < <(wrk_run "http://127.0.0.1:$PROXY/hooks" X-Rejento-Delivery-Id 0 "${SECONDS_EACH}s" "$signed")
  before=$(deliveries)
  read -r rate p50 p99 _ bad total < <(wrk_run "http://127.0.0.1:$INBOUND/queued" X-Rejento-Delivery-Id 0 "${SECONDS_EACH}s" "$signed")
  delivered_during=$(( $(deliveries) - before ))
  wait_delivered $(( before + total - bad )) >/dev/null
  # drain: a backlog stored while paused, then resumed (fresh ids: past the accept row's)
  admin POST routes/queued/pause >/dev/null
  tail -n "$BACKLOG" "$signed" > "$WORK/signed-backlog.txt"
  before=$(deliveries)
  read -r _ _ _ _ bbad stored < <(wrk_run "http://127.0.0.1:$INBOUND/queued" X-Rejento-Delivery-Id "$BACKLOG" 600s "$WORK/signed-backlog.txt")
  rss_backlog=$(rss_mib "$PID")
  admin POST routes/queued/resume >/dev/null
  drain_s=$(wait_delivered $(( before + stored - bbad )))
  rss_after=$(rss_mib "$PID")
  latency=$(python3 "$HERE/latency.py" "http://127.0.0.1:$INBOUND/latency" "$lat_port" 500 10 2>"$WORK/latency.err" | awk '{ printf "%s / %s", $1, $2 }')
  echo
  echo "## Inbound store and forward (deliver: queue, embedded store): wrk -t1 -c32 for ${SECONDS_EACH}s; a backlog of $BACKLOG; latency at 500/s"
  echo
  echo "| row | result |"
  echo "|---|---|"
  printf "| accept (verify, dedupe, durable store, 200) | %s req/s, p50 %s ms, p99 %s ms, non-2xx %s |\n" "$rate" "$p50" "$p99" "$bad"
  printf "| nginx proxy, same section | %s req/s: accept is %.2f× |\n" "$nginx_rate" "$(echo "$rate / $nginx_rate" | bc -l)"
  printf "| delivered to the app while accepting | %.0f/s |\n" "$(echo "$delivered_during / $SECONDS_EACH" | bc -l)"
  printf "| backlog drain after resume | %s in %ss = %.0f/s |\n" "$(( stored - bbad ))" "$drain_s" "$(echo "($stored - $bbad) / $drain_s" | bc -l)"
  printf "| RSS with the backlog stored / after the drain | %s / %s MiB |\n" "$rss_backlog" "$rss_after"
  printf "| accept-to-app p50 / p99 at 500/s | %s ms |\n" "$latency"
  kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true
  # The accept row with store.encryption (each webhook's body and signature sealed), beside
  # the same row without, each on a fresh gateway after the other's, so both meet the disk
  # in the same state (the rows above leave it busy writing back).
  if sealed_supported; then
    for variant in plain sealed; do
      keys=""
      if [ "$variant" = sealed ]; then keys=$SEALED; fi
      queue_config "queue-$variant" "$lat_port" "$keys"
      start_hookgate "queue-$variant"
      read -r vrate vp50 vp99 _ vbad _ < <(wrk_run "http://127.0.0.1:$INBOUND/queued" X-Rejento-Delivery-Id 0 "${SECONDS_EACH}s" "$signed")
      kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true
      if [ "$variant" = plain ]; then
        plain_rate=$vrate; label=plain
      else
        label="with store.encryption: $(printf '%.2f' "$(echo "$vrate / $plain_rate" | bc -l)")× the plain one"
      fi
      printf "| accept, fresh gateway, %s | %s req/s, p50 %s ms, p99 %s ms, non-2xx %s |\n" \
        "$label" "$vrate" "$vp50" "$vp99" "$vbad"
    done
  fi
fi

if [ "$ONLY" = all ] || [ "$ONLY" = fanout ]; then
  echo
  echo "## Fan-out: POST /events, wrk -t1 -c32 for ${SECONDS_EACH}s, embedded store"
  echo
  echo "| subscriptions per event | events/s (durable) | deliveries/s | deliveries | peak RSS (MiB) |"
  echo "|---|---|---|---|---|"
  for n in 1 10 100; do fanout_row "$n"; done
fi

if [ "$ONLY" = all ] || [ "$ONLY" = outbound ]; then
  echo
  echo "## Outbound: wrk -t1 -c32 for ${SECONDS_EACH}s; a backlog of $BACKLOG; latency at 500 msg/s"
  echo
  echo "| store | accepted/s (durable) | delivered/s while accepting | backlog drain | RSS with backlog (MiB) | accept-to-delivered p50 / p99 ms |"
  echo "|---|---|---|---|---|---|"
  outbound_rows embedded "{ kind: embedded, path: $WORK/data-embedded }"
  # The same with store.encryption (bodies, secrets and answers sealed), where the binary
  # under test has it.
  if sealed_supported; then
    outbound_rows embedded-sealed "{ kind: embedded, path: $WORK/data-sealed, $SEALED }"
  fi
  if [ -n "$REDIS_PORT" ]; then
    redis-cli -p "$REDIS_PORT" flushall >/dev/null 2>&1 || true
    outbound_rows redis "{ kind: redis, url: \"redis://127.0.0.1:$REDIS_PORT\" }"
    if sealed_supported; then
      redis-cli -p "$REDIS_PORT" flushall >/dev/null 2>&1 || true
      outbound_rows redis-sealed "{ kind: redis, url: \"redis://127.0.0.1:$REDIS_PORT\", $SEALED }"
    fi
    two_replicas_drain "{ kind: redis, url: \"redis://127.0.0.1:$REDIS_PORT\" }"
  fi
fi
