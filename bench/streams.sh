#!/usr/bin/env bash
# The live-stream benchmark (results and how they were taken: BENCHMARKS.md, "Live streams").
#
#   1. builds the release binary and examples/stream_bench;
#   2. starts target/release/pushjet-bridge on 127.0.0.1:18195 with a fresh data directory and no
#      routes, so the demo route, its Pushjet service and its device exist (data/demo.json);
#   3. opens 1,000 idle listeners on the fresh service and prints its resident memory per stream;
#   4. for 100 and 1,000 ntfy WebSocket listeners on the demo device, at 50 and 500 messages/s for
#      BENCH_STREAM_SECONDS (default 10) each, sends POST /pushjet/message and prints the latency
#      from the 200 (and from the request's start) to the frame on every listening socket;
#   5. the same through the webhook route (POST /hooks/demo, the 202) with 100 listeners at 50/s
#      (run second: the runs go from the lightest to the heaviest).
#
# Everything listens on 127.0.0.1; every run is bounded in time; the script stops what it started
# and deletes its temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH=${BENCH_STREAM_SECONDS:-10}
PORT=18195
BASE=http://127.0.0.1:$PORT
TARGET=${CARGO_TARGET_DIR:-target}

cargo build --release --locked --quiet --bin pushjet-bridge --example stream_bench
DATA=$(mktemp -d)
SERVER=
cleanup() {
  if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
  rm -rf "$DATA"
}
trap cleanup EXIT

PUSHJET_BRIDGE_LISTEN=127.0.0.1:$PORT PUSHJET_BRIDGE_DATA_DIR=$DATA \
  PUSHJET_BRIDGE_MAX_STREAMS_PER_DEVICE=5000 PUSHJET_BRIDGE_STREAM_BUFFER=4096 RUST_LOG=warn \
  "$TARGET/release/pushjet-bridge" &
SERVER=$!
for _ in $(seq 100); do
  curl -fs "$BASE/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
read -r SECRET DEVICE < <(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["secret"], d["device"])' "$DATA/demo.json")
BENCH="$TARGET/release/examples/stream_bench"

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$SERVER/status"; }
sleep 2
BEFORE=$(rss_kb)
IDLE_OUT=$(mktemp -p "$DATA")
"$BENCH" "$BASE" "$DEVICE" idle - 1000 0 20 >"$IDLE_OUT" &
IDLE=$!
for _ in $(seq 200); do grep -q ready "$IDLE_OUT" && break; sleep 0.1; done
sleep 2
AFTER=$(rss_kb)
kill "$IDLE" 2>/dev/null || true
wait "$IDLE" 2>/dev/null || true
sleep 2
echo "idle streams: $(head -1 "$IDLE_OUT"); RSS ${BEFORE} KB before, ${AFTER} KB with them: $(( (AFTER - BEFORE) * 1024 / 1000 )) bytes per idle stream"

# Lightest first; a pause after each run lets the service finish what it still holds.
run() { "$BENCH" "$BASE" "$DEVICE" "$@" "$SECONDS_EACH" | tail -1; sleep 5; }
run api "$SECRET" 100 50
run webhook demo 100 50
run api "$SECRET" 100 500
run api "$SECRET" 1000 50
run api "$SECRET" 1000 500
