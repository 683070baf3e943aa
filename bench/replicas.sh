#!/usr/bin/env bash
# Several replicas on PostgreSQL (issue 14): how many webhooks/s 1, 2 and 3 replicas of the bridge
# sharing one PostgreSQL outbox accept, next to what that PostgreSQL server can insert at all and
# to the default redb outbox, measured in one run on this machine. Prints one table and how long
# the whole run took, and exits. Everything listens on 127.0.0.1 and every load run is bounded in
# time. Results and what they mean: BENCHMARKS.md, "Several replicas on PostgreSQL (issue 14)".
#
#   bench/replicas.sh                      # about 1.5 minutes once built
#   BENCH_DURATION=5 bench/replicas.sh     # shorter runs (default 10 s each)
#   BENCH_DRAIN_LIMIT=60 bench/replicas.sh # wait longer for a backlog to be delivered (default 30 s)
#   BENCH_BRIDGE=/path/to/pushjet-bridge bench/replicas.sh   # another build
#   BENCH_PROFILE=1 bench/replicas.sh      # also profile PostgreSQL in the replicas runs (slower):
#       pg_stat_statements (calls per accepted webhook, mean time of each statement) and what the
#       database's backends were doing, sampled every 50 ms from pg_stat_activity
#   BENCH_ROUTES=4 bench/replicas.sh       # the webhooks spread over 4 routes instead of 1 (an
#       enqueue holds its route's lock until its commit: this shows what one route's lock costs)
#
# What it does:
#   1. installs Debian's wrk, and postgresql when no /usr/lib/postgresql/*/bin/initdb exists;
#      builds the release binary and the reference servers (examples/reference: the sink);
#   2. starts a throwaway PostgreSQL (the newest under /usr/lib/postgresql): initdb into a
#      temporary directory (as the `postgres` user when we are root), trust authentication,
#      127.0.0.1 on a free port, the server's durability defaults (fsync on, synchronous_commit
#      on, full_page_writes on); prints those settings;
#   3. starts the sink (a Pushjet stand-in that counts messages) and, once, a replica on a scratch
#      database that cannot deliver, posts one webhook to it and reads the notification the bridge
#      stored (outbox_pending.message), so the ceiling below inserts exactly that text;
#   4. the ceiling: pgbench, a custom script of one INSERT per transaction (autocommit, prepared)
#      into a table shaped like outbox_pending (bigserial id, route, that message, attempts, three
#      bigint times, the (route, id) index), with as many clients as wrk has connections (-j 2),
#      for the same duration;
#   5. the release binary with the default redb outbox (no DATABASE_URL), fresh data directory;
#   6. 1, 2 and 3 replicas with PUSHJET_BRIDGE_DATABASE_URL on a fresh database each, all
#      delivering to the sink; one wrk spreads its threads (and so its connections) evenly over
#      the replicas (BENCH_TARGETS in bench/wrk/common.lua), so rates and latency percentiles are
#      over all of them.
#   Steps 5 and 6 send the Alertmanager group of 5 alerts of bench/run.sh (bearer token, a new
#   groupKey per request) to one route; only 202 answers count as accepted, others are counted.
#   After each, it waits until the sink has every accepted notification (or BENCH_DRAIN_LIMIT
#   runs out). Before each step it prints `uptime`: numbers taken while other work runs on the
#   machine are worth little.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DURATION=${BENCH_DURATION:-10}
THREADS=6       # divides evenly over 1, 2 and 3 replicas: 6, 3 or 2 wrk threads each
CONNECTIONS=48  # 8 per wrk thread; pgbench gets as many clients
FIXTURES=${BENCH_FIXTURES:-$ROOT/tests/fixtures}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
HOST=127.0.0.1
DRAIN_LIMIT=${BENCH_DRAIN_LIMIT:-30}
SINK_PORT=18210 BRIDGE_PORT=18200   # replicas: 18201, 18202, 18203
ALERTS_TOKEN=bench-alertmanager-token
WEBHOOK_SECRET=bench-github-webhook-secret
REPLICA_COUNTS=(1 2 3)
ROUTES=${BENCH_ROUTES:-1}     # >1: the webhooks go to that many routes in turn (see below)
PROFILE=${BENCH_PROFILE:-}   # 1: also where PostgreSQL's time goes in each replicas run (below)

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

ensure_wrk
# shellcheck disable=SC2012
newest_pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | while read -r bin; do
  [ -x "$bin/initdb" ] && echo "$bin"; done | tail -1; }
PG_BIN=$(newest_pg_bin)
if [ -z "$PG_BIN" ]; then
  apt_install postgresql
  PG_BIN=$(newest_pg_bin)
fi

say "building release binaries"
BUILD_STARTED=$SECONDS
cargo build --release --locked --quiet --bin pushjet-bridge --example reference
BUILD_S=$((SECONDS - BUILD_STARTED))
BRIDGE=${BENCH_BRIDGE:-$TARGET/release/pushjet-bridge}
REFERENCE=$TARGET/release/examples/reference

WORK=$(mktemp -d)
RESULTS=$WORK/results
PG_DIR=$(mktemp -d -t pushjet-bench-pg-XXXXXX)
PG_STARTED=
# PostgreSQL's programs refuse to run as root: as root they run as `postgres`.
pg_run() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
cleanup() {
  stop_started
  if [ -n "$PG_STARTED" ]; then
    pg_run "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK" "$PG_DIR"
}
trap cleanup EXIT

# The load average, printed before each step and recorded as <step>_load1.
load_before() {
  say "$1: $(uptime)"
  record "$1_load1" "$(cut -d' ' -f1 /proc/loadavg)"
}

record drain_limit_s "$DRAIN_LIMIT"
record duration_s "$DURATION"
record connections "$CONNECTIONS"
record busy_before_percent "$(busy_percent)"
say "the machine was $(value busy_before_percent)% busy with other work before the run"

say "payloads from $FIXTURES"
python3 "$ROOT/bench/payloads.py" "$FIXTURES" "$WORK" "$WEBHOOK_SECRET"
AM_BODY=$WORK/alertmanager-5.json

# --- PostgreSQL ---------------------------------------------------------------------------------
PG_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
[ "$(id -u)" -ne 0 ] || chown postgres: "$PG_DIR"
say "PostgreSQL ($PG_BIN) in $PG_DIR on $HOST:$PG_PORT"
# --no-sync: initdb does not flush the files it wrote (it is a throwaway); the server syncs as usual.
pg_run "$PG_BIN/initdb" -A trust -U postgres -E UTF8 --locale=C --no-sync --no-instructions \
  -D "$PG_DIR/data" >/dev/null
PG_STARTED=1
PG_OPTIONS="-p $PG_PORT -k $PG_DIR -c listen_addresses=$HOST -c max_connections=200"
[ -z "$PROFILE" ] || PG_OPTIONS+=" -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all"
pg_run "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w -o "$PG_OPTIONS" start >/dev/null
PG_POSTMASTER=$(head -1 "$PG_DIR/data/postmaster.pid")
psql_in() {
  local database=$1
  shift
  "$PG_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$HOST" -p "$PG_PORT" -U postgres -d "$database" "$@"
}
pg_url() { echo "postgres://postgres@$HOST:$PG_PORT/$1?sslmode=disable"; }
record pg_version "$(psql_in postgres -c 'SHOW server_version' | cut -d' ' -f1)"
record pg_settings "$(psql_in postgres -F= -c "SELECT name, current_setting(name) FROM pg_settings
  WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes', 'wal_sync_method',
                 'shared_buffers', 'commit_delay', 'max_connections') ORDER BY name" | paste -sd' ')"
say "PostgreSQL $(value pg_version): $(value pg_settings)"

# CPU seconds of the PostgreSQL server so far: the postmaster with the children it reaped, plus
# the children still running (backends come and go with their clients).
pg_cpu_s() {
  python3 - "$PG_POSTMASTER" <<'PY'
import os, sys
postmaster = sys.argv[1]
hz = os.sysconf("SC_CLK_TCK")
def fields(pid):
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()
total = sum(int(x) for x in fields(postmaster)[11:15])
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            stat = fields(pid)
        except OSError:
            continue
        if stat[1] == postmaster:
            total += int(stat[11]) + int(stat[12])
print(round(total / hz, 2))
PY
}

# --- The bridge's settings (each replica adds its listen address, data directory, database) ---
start sink $SINK_PORT "$REFERENCE" sink "$HOST:$SINK_PORT"
SINK_PID=$LAST_PID
export PUSHJET_API_URL=http://$HOST:$SINK_PORT/
export PUSHJET_BRIDGE_EMBEDDED_PUSHJET=false
export PUSHJET_BRIDGE_MAX_QUEUE=10000000   # as bench/run.sh: measure the service, not its backpressure
# The route `alerts`, and with BENCH_ROUTES=N also alerts2 ... alertsN, the requests in turn.
ROUTE_NAMES=(alerts)
for n in $(seq 2 "$ROUTES"); do ROUTE_NAMES+=("alerts$n"); done
export PUSHJET_BRIDGE_ROUTES
PUSHJET_BRIDGE_ROUTES=$(IFS=,; echo "${ROUTE_NAMES[*]}")
ROUTE_PATHS=
for route in "${ROUTE_NAMES[@]}"; do
  upper=${route^^}
  export "PUSHJET_BRIDGE_ROUTE_${upper}_SECRET=0123456789abcdef0123456789abcdef"
  export "PUSHJET_BRIDGE_ROUTE_${upper}_SOURCE=alertmanager"
  export "PUSHJET_BRIDGE_ROUTE_${upper}_TOKEN=$ALERTS_TOKEN"
  ROUTE_PATHS+=" /hooks/$route"
done
record routes "$ROUTES"
unset PUSHJET_BRIDGE_DATABASE_URL PUSHJET_BRIDGE_DATABASE_URL_FILE

# Starts `count` replicas (ports BRIDGE_PORT+1...) on database `database` ("" for redb), each with
# its own data directory; their pids in REPLICA_PIDS, their host:port in REPLICA_TARGETS.
start_replicas() {
  local count=$1 database=$2 api=${3:-$PUSHJET_API_URL} n
  REPLICA_PIDS=() REPLICA_TARGETS=()
  for n in $(seq 1 "$count"); do
    local port=$((BRIDGE_PORT + n)) settings=()
    settings=(PUSHJET_BRIDGE_LISTEN="$HOST:$port" PUSHJET_API_URL="$api"
      PUSHJET_BRIDGE_DATA_DIR="$WORK/data-${database:-redb}-$n")
    [ -z "$database" ] || settings+=(PUSHJET_BRIDGE_DATABASE_URL="$(pg_url "$database")")
    start "replica-${database:-redb}-$n" $port env "${settings[@]}" "$BRIDGE"
    REPLICA_PIDS+=("$LAST_PID")
    REPLICA_TARGETS+=("$HOST:$port")
  done
}
stop_replicas() {
  local pid
  for pid in "${REPLICA_PIDS[@]}"; do stop "$pid"; done
}

# --- What the bridge stores for one of these webhooks --------------------------------------------
say "one webhook into a replica that cannot deliver, for the notification it stores"
psql_in postgres -c "CREATE DATABASE probe"
start_replicas 1 probe "http://$HOST:1/"
sed 's/@ID@/probe/' "$AM_BODY" >"$WORK/probe.json"
curl -fsS -o /dev/null -X POST -H "Authorization: Bearer $ALERTS_TOKEN" \
  -H 'Content-Type: application/json' --data-binary "@$WORK/probe.json" \
  "http://${REPLICA_TARGETS[0]}/hooks/alerts"
psql_in probe -c "SELECT message FROM outbox_pending ORDER BY id LIMIT 1" >"$WORK/message.json"
stop_replicas
MESSAGE_BYTES=$(($(wc -c <"$WORK/message.json") - 1))
[ "$MESSAGE_BYTES" -gt 0 ] || { echo "the probe webhook stored no notification" >&2; exit 1; }
record message_bytes "$MESSAGE_BYTES"
record body_bytes "$(wc -c <"$WORK/probe.json")"

# --- (a) The ceiling: pgbench, one INSERT of such a row per transaction ---------------------------
load_before ceiling
psql_in postgres -c "CREATE DATABASE ceiling"
psql_in ceiling -c "CREATE TABLE outbox_ceiling (
    id              BIGSERIAL PRIMARY KEY,
    route           TEXT NOT NULL,
    message         TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    queued_at       BIGINT NOT NULL,
    retrying_since  BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT
  );
  CREATE INDEX outbox_ceiling_by_route ON outbox_ceiling (route, id)"
cat >"$WORK/insert.sql" <<'SQL'
\set now 1764000000000
INSERT INTO outbox_ceiling (route, message, attempts, queued_at, retrying_since, next_attempt_at) VALUES ('alerts', :message, 0, :now, :now, :now);
SQL
PG_CPU_BEFORE=$(pg_cpu_s)
JIFFIES_BEFORE=$(machine_jiffies)
"$PG_BIN/pgbench" -n -M prepared -c "$CONNECTIONS" -j 2 -T "$DURATION" -f "$WORK/insert.sql" \
  -D message="$(head -c "$MESSAGE_BYTES" "$WORK/message.json")" -l --log-prefix="$WORK/pgbench-log" \
  -h "$HOST" -p "$PG_PORT" -U postgres ceiling >"$WORK/pgbench.out" 2>&1 \
  || { cat "$WORK/pgbench.out" >&2; exit 1; }
read -r busy0 total0 <<<"$JIFFIES_BEFORE"
read -r busy1 total1 <<<"$(machine_jiffies)"
record ceiling_machine_busy_percent $((100 * (busy1 - busy0) / (total1 - total0 + 1)))
sleep 0.2   # the backends exit once pgbench has gone
record ceiling_pg_cpu_s "$(python3 -c "print(round($(pg_cpu_s) - $PG_CPU_BEFORE, 2))")"
record ceiling_rps "$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$WORK/pgbench.out")"
record ceiling_failed "$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$WORK/pgbench.out")"
record ceiling_rows "$(psql_in ceiling -c 'SELECT count(*) FROM outbox_ceiling')"
# pgbench's per-transaction log: the third field is the latency in microseconds.
python3 - "$WORK" >>"$RESULTS" <<'PY'
import glob, sys
latencies = sorted(int(line.split()[2]) for path in glob.glob(sys.argv[1] + "/pgbench-log.*")
                   for line in open(path))
pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] / 1000
print(f"ceiling_p50_ms={pick(0.50):.3f}\nceiling_p99_ms={pick(0.99):.3f}")
PY
say "ceiling: $(value ceiling_rps) inserts/s, p99 $(value ceiling_p99_ms) ms"

# --- (b) and (c): the bridge ----------------------------------------------------------------------
export BENCH_BODY=$AM_BODY BENCH_PATHS=$ROUTE_PATHS BENCH_TOKEN=$ALERTS_TOKEN

# wrk over the running replicas, then the wait for the sink; records <name>_* (see lib.sh's load),
# <name>_{sink,pg}_cpu_s, <name>_delivered_during and <name>_delivered (after the wait).
measure() {
  local name=$1 before sink_before pg_before
  load_before "$name"
  before=$(sink_count)
  sink_before=$(cpu_s "$SINK_PID")
  pg_before=$(pg_cpu_s)
  local database=${2:-} sampler=
  if [ -n "$PROFILE" ] && [ -n "$database" ]; then
    psql_in "$database" -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" \
      -c "SELECT pg_stat_statements_reset()" >/dev/null
    sample_activity "$database" >"$WORK/$name.activity" &
    sampler=$!
    PIDS+=("$sampler")
  fi
  BENCH_TARGETS="${REPLICA_TARGETS[*]}" load "$name" alertmanager.lua \
    "http://${REPLICA_TARGETS[0]}" "${REPLICA_PIDS[@]}"
  if [ -n "$sampler" ]; then
    wait "$sampler" || true
    profile "$name" "$database" >>"$WORK/profile"
  fi
  record "${name}_pg_cpu_s" "$(python3 -c "print(round($(pg_cpu_s) - $pg_before, 2))")"
  record "${name}_sink_cpu_s" "$(python3 -c "print(round($(cpu_s "$SINK_PID") - $sink_before, 2))")"
  record "${name}_delivered_during" $(($(sink_count) - before))
  local accepted=$(($(value "${name}_requests") - $(value "${name}_unexpected")))
  record "${name}_accepted" "$accepted"
  drain "$name" $((before + accepted))
  record "${name}_delivered" $(($(sink_count) - before))
}

# What the database's backends of `database` do, every 50 ms for DURATION s: one line per backend
# that is running a statement or inside a transaction ("state wait_event"), a blank line between
# samples (pg_sleep's empty result).
sample_activity() {
  local i
  for i in $(seq 1 $((DURATION * 20))); do
    echo "SELECT state || ' ' || coalesce(wait_event_type || ':' || wait_event, 'on CPU')
          FROM pg_stat_activity WHERE datname = '$1' AND pid <> pg_backend_pid()
          AND state IN ('active', 'idle in transaction');
          SELECT pg_sleep(0.05);"
  done | psql_in postgres
}

# The statements run in `database` during the run (calls per accepted webhook, mean time), and
# how many of its backends were in each state on average.
profile() {
  local name=$1 database=$2
  local accepted=$(($(value "${name}_requests") - $(value "${name}_unexpected")))
  echo "-- $name: statements in $database per accepted webhook ($accepted), mean ms, total s"
  psql_in "$database" -F' | ' -c "SELECT round(calls::numeric / greatest($accepted, 1), 2),
      round(mean_exec_time::numeric, 3), round(total_exec_time::numeric / 1000, 2),
      left(regexp_replace(query, '\s+', ' ', 'g'), 110)
    FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = '$database')
    ORDER BY calls DESC LIMIT 14"
  echo "-- $name: backends of $database in each state, on average over the run (pg_stat_activity)"
  python3 - "$WORK/$name.activity" <<'PY'
import collections, sys
samples, counts = 0, collections.Counter()
for line in open(sys.argv[1]):
    line = line.strip()
    if line:
        counts[line] += 1
    else:
        samples += 1
for state, count in counts.most_common():
    print(f"{count / max(samples, 1):6.2f}  {state}")
PY
}

say "redb outbox (no DATABASE_URL), one process"
start_replicas 1 ""
measure redb
stop_replicas

for count in "${REPLICA_COUNTS[@]}"; do
  say "$count replica(s) on PostgreSQL (database replicas_$count)"
  psql_in postgres -c "CREATE DATABASE replicas_$count"
  start_replicas "$count" "replicas_$count"
  measure "pg$count" "replicas_$count"
  stop_replicas
done

record unexpected_answers "$UNEXPECTED"
record busy_after_percent "$(busy_percent)"
record cores "$(nproc)"
record load_after "$(cut -d' ' -f1-3 /proc/loadavg)"

python3 "$ROOT/bench/replicas_report.py" "$RESULTS"
[ -z "$PROFILE" ] || cat "$WORK/profile"
echo "harness: $SECONDS s (build $BUILD_S s)"   # wall time since the script started
