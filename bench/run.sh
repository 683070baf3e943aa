#!/usr/bin/env bash
# Load harness: measures the bridge and three reference servers in one run on this machine, prints
# one table and how long the whole run took, and exits. Everything listens on 127.0.0.1 and every
# load run is bounded in time.
#
#   bench/run.sh                      # about 2.5 minutes once built
#   BENCH_DURATION=5 bench/run.sh     # shorter runs
#
# What it does (BENCHMARKS.md explains each number):
#   1. builds the release binary and the reference servers of examples/reference/ (one example
#      binary, `reference NAME`: bare_handler, minimal_forwarder, sink, durable_acceptor), and
#      installs Debian's wrk if it is missing;
#   2. wrk -t2 -c50 with a small JSON POST against the bare handler, then against the minimal
#      forwarder (forwarding to the sink);
#   3. starts target/release/pushjet-bridge with two routes delivering to the sink (which answers
#      POST /message with {"status": "ok"}, as Pushjet does), the durable outbox on, and for each
#      of an Alertmanager group of 5 alerts (bearer token, a new group per request) and a signed
#      GitHub push (a new X-GitHub-Delivery per request): wrk at full speed (accepted webhooks/s,
#      latency of the 202, notifications counted at the sink while it runs), the time until the
#      backlog is delivered, then wrk paced to half the accepted rate (latency under normal load);
#      Then the Alertmanager requests spread over 8 routes (am1 … am8, the same source and token),
#      at full speed only, so that routes delivered in parallel show;
#   4. reads RSS from /proc (VmRSS idle, VmHWM peak), restarts the bridge on its data directory
#      and times the first 200 on /readyz, then stops it;
#   5. starts the durable acceptor, the least work that keeps each request on disk (each body
#      appended to a log file in the temporary directory, on the same disk as the bridge's data
#      directory, group-committed with fdatasync, 202 after), so that what the disk costs can be
#      told apart from what the bridge costs: wrk with the Alertmanager requests at full speed,
#      then paced to the higher of the bridge's two half rates with that sender's requests; then stops
#      it and deletes its log (3.3 KB per Alertmanager request: gigabytes after a fast full-speed
#      run).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DURATION=${BENCH_DURATION:-10}
THREADS=2
CONNECTIONS=50
FIXTURES=${BENCH_FIXTURES:-$ROOT/tests/fixtures}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
HOST=127.0.0.1
DRAIN_LIMIT=${BENCH_DRAIN_LIMIT:-30}
BARE_PORT=18181 FORWARDER_PORT=18182 DURABLE_PORT=18183 SINK_PORT=18190 BRIDGE_PORT=18180
ALERTS_TOKEN=bench-alertmanager-token
WEBHOOK_SECRET=bench-github-webhook-secret

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

ensure_wrk

say "building release binaries"
BUILD_STARTED=$SECONDS
cargo build --release --locked --quiet --bin pushjet-bridge --example reference
BUILD_S=$((SECONDS - BUILD_STARTED))
BRIDGE=${BENCH_BRIDGE:-$TARGET/release/pushjet-bridge}   # BENCH_BRIDGE: compare another build
REFERENCE=$TARGET/release/examples/reference

WORK=$(mktemp -d)
RESULTS=$WORK/results
cleanup() {
  stop_started
  rm -rf "$WORK"
}
trap cleanup EXIT

record drain_limit_s "$DRAIN_LIMIT"
record busy_before_percent "$(busy_percent)"
say "the machine was $(value busy_before_percent)% busy with other work before the run"

say "payloads from $FIXTURES"
python3 "$ROOT/bench/payloads.py" "$FIXTURES" "$WORK" "$WEBHOOK_SECRET"
export BENCH_BODY BENCH_PATHS BENCH_TOKEN=$ALERTS_TOKEN BENCH_SIGNATURE=$WORK/github-push.sig

say "reference: bare handler"
start bare $BARE_PORT "$REFERENCE" bare_handler "$HOST:$BARE_PORT"
BENCH_BODY=$WORK/small.json BENCH_PATHS=/hooks/bench load bare small.lua "http://$HOST:$BARE_PORT" "$LAST_PID"
stop "$LAST_PID"

say "reference: minimal forwarder and sink"
start sink $SINK_PORT "$REFERENCE" sink "$HOST:$SINK_PORT"
SINK_PID=$LAST_PID
start forwarder $FORWARDER_PORT "$REFERENCE" minimal_forwarder "$HOST:$FORWARDER_PORT" \
  "http://$HOST:$SINK_PORT/message"
FORWARDER_PID=$LAST_PID
BENCH_BODY=$WORK/small.json BENCH_PATHS=/hooks/bench load forwarder small.lua "http://$HOST:$FORWARDER_PORT" \
  "$FORWARDER_PID" "$SINK_PID"
stop "$FORWARDER_PID"

# The bridge: two routes delivering to the sink, the durable outbox in a fresh data directory.
export PUSHJET_API_URL=http://$HOST:$SINK_PORT/
export PUSHJET_BRIDGE_EMBEDDED_PUSHJET=false
export PUSHJET_BRIDGE_LISTEN=$HOST:$BRIDGE_PORT
export PUSHJET_BRIDGE_DATA_DIR=$WORK/data
export PUSHJET_BRIDGE_MAX_QUEUE=10000000   # measure the service, not its backpressure
ROUTES8=""
for n in 1 2 3 4 5 6 7 8; do
  ROUTES8="$ROUTES8,am$n"
  export "PUSHJET_BRIDGE_ROUTE_AM${n}_SECRET=0123456789abcdef0123456789abcde$n"
  export "PUSHJET_BRIDGE_ROUTE_AM${n}_SOURCE=alertmanager"
  export "PUSHJET_BRIDGE_ROUTE_AM${n}_TOKEN=$ALERTS_TOKEN"
done
export PUSHJET_BRIDGE_ROUTES=alerts,github$ROUTES8
export PUSHJET_BRIDGE_ROUTE_ALERTS_SECRET=0123456789abcdef0123456789abcdef
export PUSHJET_BRIDGE_ROUTE_ALERTS_SOURCE=alertmanager
export PUSHJET_BRIDGE_ROUTE_ALERTS_TOKEN=$ALERTS_TOKEN
export PUSHJET_BRIDGE_ROUTE_GITHUB_SECRET=fedcba9876543210fedcba9876543210
export PUSHJET_BRIDGE_ROUTE_GITHUB_SOURCE=github
export PUSHJET_BRIDGE_ROUTE_GITHUB_WEBHOOK_SECRET=$WEBHOOK_SECRET

say "bridge: start"
start bridge $BRIDGE_PORT "$BRIDGE"
BRIDGE_PID=$LAST_PID
sleep 1
record first_idle_rss_kb "$(rss_kb "$BRIDGE_PID" VmRSS)"

# One sender at full speed, then the backlog, then (unless the fifth argument is "full-only") at
# half the accepted rate.
measure() {
  local name=$1 script=$2 body=$3 path=$4 only=${5:-}
  local before after delivered accepted
  before=$(sink_count)
  BENCH_BODY=$body BENCH_PATHS=$path load "$name" "$script" "http://$HOST:$BRIDGE_PORT" \
    "$BRIDGE_PID" "$SINK_PID"
  after=$(sink_count)
  delivered=$((after - before))
  accepted=$(value "${name}_requests")
  record "${name}_delivered_rps" "$(python3 -c "print($delivered / $(value "${name}_duration_s"))")"
  record "${name}_backlog" $((before + accepted - after))
  drain "$name" $((before + accepted))
  [ "$only" = full-only ] && return
  # What the full-speed run left in the page cache is written out now, not during the next run.
  sync
  local half
  half=$(python3 -c "print(round($(value "${name}_rps") / 2))")
  record "${name}_half_rate" "$half"
  before=$(sink_count)
  BENCH_RATE=$half BENCH_BODY=$body BENCH_PATHS=$path load "${name}_half" "$script" \
    "http://$HOST:$BRIDGE_PORT" "$BRIDGE_PID" "$SINK_PID"
  drain "${name}_half" $((before + $(value "${name}_half_requests")))
}

say "bridge: Alertmanager"
measure am alertmanager.lua "$WORK/alertmanager-5.json" /hooks/alerts
say "bridge: GitHub"
measure gh github.lua "$WORK/github-push.json" /hooks/github
say "bridge: Alertmanager over 8 routes"
sync
measure am8 alertmanager.lua "$WORK/alertmanager-5.json" \
  "/hooks/am1 /hooks/am2 /hooks/am3 /hooks/am4 /hooks/am5 /hooks/am6 /hooks/am7 /hooks/am8" full-only

record peak_rss_kb "$(rss_kb "$BRIDGE_PID" VmHWM)"
sleep 1
record after_rss_kb "$(rss_kb "$BRIDGE_PID" VmRSS)"

say "bridge: restart on the same data directory"
record ready_pending "$(curl -s "http://$HOST:$BRIDGE_PORT/metrics" | awk '$1 == "pushjet_bridge_outbox_pending" { print $2 }')"
record ready_dedup_keys $(($(value am_requests) + $(value am_half_requests) + $(value gh_requests) + $(value gh_half_requests) + $(value am8_requests)))
stop "$BRIDGE_PID"
python3 "$ROOT/bench/ready.py" "$BRIDGE" "$HOST" "$BRIDGE_PORT" "$WORK/bridge.log" >"$WORK/ready"
BRIDGE_PID=$(sed -n 's/^pid=//p' "$WORK/ready")
PIDS+=("$BRIDGE_PID")
record ready_ms "$(sed -n 's/^ready_ms=//p' "$WORK/ready")"
sleep 1
record idle_rss_kb "$(rss_kb "$BRIDGE_PID" VmRSS)"

stop "$BRIDGE_PID"

# The durable acceptor, with the bridge stopped: the Alertmanager requests at full speed, then
# paced to the higher of the bridge's two half rates with that sender's requests, so that the
# p99s can be compared (at the lower rate the acceptor would only do better).
say "reference: durable acceptor"
DURABLE_LOG=$WORK/durable-acceptor.log
start durable $DURABLE_PORT "$REFERENCE" durable_acceptor "$HOST:$DURABLE_PORT" "$DURABLE_LOG"
DURABLE_PID=$LAST_PID
BENCH_BODY=$WORK/alertmanager-5.json BENCH_PATHS=/hooks/alerts load durable alertmanager.lua \
  "http://$HOST:$DURABLE_PORT" "$DURABLE_PID"
# Its full-speed log is gigabytes: deleted and written out before the paced run, which starts
# with an empty log, as the bridge's paced runs start after a sync.
stop "$DURABLE_PID"
rm -f "$DURABLE_LOG"
sync
start durable $DURABLE_PORT "$REFERENCE" durable_acceptor "$HOST:$DURABLE_PORT" "$DURABLE_LOG"
DURABLE_PID=$LAST_PID
if [ "$(value gh_half_rate)" -ge "$(value am_half_rate)" ]; then
  record durable_half_sender gh
  BENCH_RATE=$(value gh_half_rate) BENCH_BODY=$WORK/github-push.json BENCH_PATHS=/hooks/github \
    load durable_half github.lua "http://$HOST:$DURABLE_PORT" "$DURABLE_PID"
else
  record durable_half_sender am
  BENCH_RATE=$(value am_half_rate) BENCH_BODY=$WORK/alertmanager-5.json BENCH_PATHS=/hooks/alerts \
    load durable_half alertmanager.lua "http://$HOST:$DURABLE_PORT" "$DURABLE_PID"
fi
stop "$DURABLE_PID"
rm -f "$DURABLE_LOG"

record unexpected_answers "$UNEXPECTED"
record busy_after_percent "$(busy_percent)"
record cores "$(nproc)"

python3 "$ROOT/bench/report.py" "$RESULTS"
echo "harness: $SECONDS s (build $BUILD_S s)"   # wall time since the script started
