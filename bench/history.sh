#!/usr/bin/env bash
# The delivery history's cost (issue 20): accepted webhooks/s of the release binary with the
# history off (PUSHJET_BRIDGE_HISTORY=0) and on with bodies kept (PUSHJET_BRIDGE_HISTORY_BODIES=true),
# in one run, for both senders of bench/run.sh (the Alertmanager group of 5 alerts with a bearer
# token, the signed GitHub push), and the disk bytes of history.redb per recorded webhook. Prints
# one table and exits. Everything listens on 127.0.0.1 and every load run is bounded in time.
#
#   bench/history.sh                     # about 2 minutes once built
#   BENCH_DURATION=5 bench/history.sh    # shorter runs (default 10 s each)
#   BENCH_ROUNDS=1 bench/history.sh      # one round instead of two
#   BENCH_HISTORY_BODIES=false bench/history.sh   # "on" without the bodies (what they cost)
#
# Each run starts the bridge on a fresh data directory (redb outbox), delivering to the sink of
# bench/run.sh, and sends one sender's requests with wrk at full speed (-t2 -c50). Off and on
# alternate, sender by sender, for BENCH_ROUNDS rounds, so that other work on a shared machine
# weighs on both alike; the table gives each round and the ratio of the sums. After an "on" run the
# bridge is stopped (its last history writes flushed) and history.redb's size on disk (allocated
# blocks) is divided by the webhooks it accepted.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DURATION=${BENCH_DURATION:-10}
ROUNDS=${BENCH_ROUNDS:-2}
THREADS=2
CONNECTIONS=50
FIXTURES=${BENCH_FIXTURES:-$ROOT/tests/fixtures}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
HOST=127.0.0.1
SINK_PORT=18290 BRIDGE_PORT=18280
ALERTS_TOKEN=bench-alertmanager-token
WEBHOOK_SECRET=bench-github-webhook-secret

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

ensure_wrk
say "building release binaries"
cargo build --release --locked --quiet --bin pushjet-bridge --example reference
BRIDGE=${BENCH_BRIDGE:-$TARGET/release/pushjet-bridge}
REFERENCE=$TARGET/release/examples/reference

WORK=$(mktemp -d)
RESULTS=$WORK/results
cleanup() {
  stop_started
  rm -rf "$WORK"
}
trap cleanup EXIT

record busy_before_percent "$(busy_percent)"
python3 "$ROOT/bench/payloads.py" "$FIXTURES" "$WORK" "$WEBHOOK_SECRET"
export BENCH_TOKEN=$ALERTS_TOKEN BENCH_SIGNATURE=$WORK/github-push.sig

start sink $SINK_PORT "$REFERENCE" sink "$HOST:$SINK_PORT"
SINK_PID=$LAST_PID

export PUSHJET_API_URL=http://$HOST:$SINK_PORT/
export PUSHJET_BRIDGE_EMBEDDED_PUSHJET=false
export PUSHJET_BRIDGE_LISTEN=$HOST:$BRIDGE_PORT
export PUSHJET_BRIDGE_MAX_QUEUE=10000000
export PUSHJET_BRIDGE_ROUTES=alerts,github
export PUSHJET_BRIDGE_ROUTE_ALERTS_SECRET=0123456789abcdef0123456789abcdef
export PUSHJET_BRIDGE_ROUTE_ALERTS_SOURCE=alertmanager
export PUSHJET_BRIDGE_ROUTE_ALERTS_TOKEN=$ALERTS_TOKEN
export PUSHJET_BRIDGE_ROUTE_GITHUB_SECRET=fedcba9876543210fedcba9876543210
export PUSHJET_BRIDGE_ROUTE_GITHUB_SOURCE=github
export PUSHJET_BRIDGE_ROUTE_GITHUB_WEBHOOK_SECRET=$WEBHOOK_SECRET

# One run: sender ($1: am or gh), mode ($2: off or on), round ($3).
run() {
  local sender=$1 mode=$2 round=$3 name="$1_$2_$3"
  local data=$WORK/data-$name
  if [ "$mode" = on ]; then
    export PUSHJET_BRIDGE_HISTORY=7d PUSHJET_BRIDGE_HISTORY_BODIES=${BENCH_HISTORY_BODIES:-true}
  else
    export PUSHJET_BRIDGE_HISTORY=0 PUSHJET_BRIDGE_HISTORY_BODIES=false
  fi
  PUSHJET_BRIDGE_DATA_DIR=$data start "bridge-$name" $BRIDGE_PORT "$BRIDGE"
  local pid=$LAST_PID
  sleep 1
  if [ "$sender" = am ]; then
    BENCH_BODY=$WORK/alertmanager-5.json BENCH_PATHS=/hooks/alerts \
      load "$name" alertmanager.lua "http://$HOST:$BRIDGE_PORT" "$pid" "$SINK_PID"
  else
    BENCH_BODY=$WORK/github-push.json BENCH_PATHS=/hooks/github \
      load "$name" github.lua "http://$HOST:$BRIDGE_PORT" "$pid" "$SINK_PID"
  fi
  if [ "$mode" = on ]; then
    record "${name}_history_written" "$(curl -s "http://$HOST:$BRIDGE_PORT/metrics" |
      awk '$1 == "pushjet_bridge_history_records_written_total" { print $2 }')"
  fi
  stop "$pid"
  if [ "$mode" = on ]; then
    # Allocated blocks, not the apparent size: what the file takes on disk.
    record "${name}_history_disk_bytes" $(($(stat -c '%b * %B' "$data/history.redb")))
    record "${name}_history_dropped" "$(grep -c 'history write' "$WORK/bridge-$name.log" || true)"
  fi
  rm -rf "$data"
  sync
}

for round in $(seq 1 "$ROUNDS"); do
  for sender in am gh; do
    say "round $round, $sender: history off"
    run "$sender" off "$round"
    say "round $round, $sender: history on, bodies kept: ${BENCH_HISTORY_BODIES:-true}"
    run "$sender" on "$round"
  done
done
record busy_after_percent "$(busy_percent)"
record rounds "$ROUNDS"
record bodies "${BENCH_HISTORY_BODIES:-true}"
record unexpected_answers "$UNEXPECTED"

python3 - "$RESULTS" <<'PY'
import sys
r = {}
for line in open(sys.argv[1]):
    key, _, value = line.strip().partition("=")
    if key:
        r[key] = value
rounds = int(r["rounds"])
print(f"machine busy with other work: {r['busy_before_percent']}% before, {r['busy_after_percent']}% after; "
      f"unexpected answers: {r['unexpected_answers']}")
bodies = "bodies" if r["bodies"] == "true" else "no bodies"
print(f"sender | round | off: accepted/s | on ({bodies}): accepted/s | on/off | records written | disk bytes/webhook")
print("-|-|-|-|-|-|-")
for sender in ("am", "gh"):
    off_sum = on_sum = 0.0
    for n in range(1, rounds + 1):
        off = float(r[f"{sender}_off_{n}_rps"])
        on = float(r[f"{sender}_on_{n}_rps"])
        off_sum += off
        on_sum += on
        requests = int(r[f"{sender}_on_{n}_requests"])
        written = float(r.get(f"{sender}_on_{n}_history_written", "0") or 0)
        disk = int(r[f"{sender}_on_{n}_history_disk_bytes"])
        per = disk / max(1, requests)
        print(f"{sender} | {n} | {off:,.0f} | {on:,.0f} | {on / off:.0%} | {written:,.0f} of {requests:,} | {per:,.0f}")
    print(f"{sender} | all | {off_sum / rounds:,.0f} | {on_sum / rounds:,.0f} | {on_sum / off_sum:.0%} | |")
PY
