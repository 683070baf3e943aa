# Shell functions shared by bench/run.sh and bench/replicas.sh (sourced, not run). They use the
# sourcing script's settings: ROOT (the repository), HOST, WORK (its temporary directory),
# RESULTS (its key=value results file), THREADS, CONNECTIONS and DURATION (wrk's -t, -c, -d),
# SINK_PORT and DRAIN_LIMIT; started servers' pids are collected in PIDS, and stop_started (from
# the script's EXIT trap) stops them.

say() { printf '== %s\n' "$*" >&2; }

# Runs a command as root: directly when we are root, else through sudo.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Installs Debian packages that are missing (apt-get update once per script).
APT_UPDATED=
apt_install() {
  say "installing $* (Debian)"
  if [ -z "$APT_UPDATED" ]; then
    as_root apt-get update -qq
    APT_UPDATED=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_wrk() {
  command -v wrk >/dev/null || apt_install wrk
}

PIDS=()
stop_started() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}

record() { echo "$1=$2" >>"$RESULTS"; }
value() { sed -n "s/^$1=//p" "$RESULTS" | tail -1; }

# Starts a server in the background and waits until its port answers; its pid in LAST_PID.
start() {
  local log=$1 port=$2
  shift 2
  "$@" >>"$WORK/$log.log" 2>&1 &
  PIDS+=($!)
  LAST_PID=$!
  for _ in $(seq 1 500); do
    if curl -s -o /dev/null "http://$HOST:$port/"; then return 0; fi
    sleep 0.01
  done
  echo "$log did not start; its log:" >&2
  cat "$WORK/$log.log" >&2
  exit 1
}

stop() { kill "$1"; wait "$1" 2>/dev/null || true; }

# CPU seconds (user + system) used so far by the given processes.
cpu_s() {
  local pid total=0
  for pid in "$@"; do
    total=$(awk -v total="$total" '{ print total + ($14 + $15) / 100 }' "/proc/$pid/stat")
  done
  echo "$total"
}

# Busy and total jiffies of all cores so far (/proc/stat), as "busy total".
machine_jiffies() {
  awk '$1 == "cpu" { total = 0; for (i = 2; i <= NF; i++) total += $i; print total - $5 - $6, total }' /proc/stat
}

# wrk with one of bench/wrk/*.lua; records <name>_{requests,rps,p50_ms,p99_ms,unexpected,...}, the
# CPU seconds the given server processes used meanwhile (<name>_cpu_s), how busy all cores were
# (<name>_machine_busy_percent: everything, wrk included), and counts answers other than 202 in
# UNEXPECTED.
load() {
  local name=$1 script=$2 url=$3
  shift 3
  local cpu_before jiffies_before
  cpu_before=$(cpu_s "$@")
  jiffies_before=$(machine_jiffies)
  local output
  output=$(BENCH_WRK_DIR=$ROOT/bench/wrk BENCH_RUN="$name-$$-$RANDOM" BENCH_THREADS=$THREADS \
    wrk -t$THREADS -c$CONNECTIONS -d"${DURATION}s" -s "$ROOT/bench/wrk/$script" "$url")
  local line
  line=$(grep '^RESULT ' <<<"$output") || { echo "$output" >&2; exit 1; }
  for pair in ${line#RESULT }; do record "${name}_${pair%%=*}" "${pair#*=}"; done
  record "${name}_cpu_s" "$(python3 -c "print(round($(cpu_s "$@") - $cpu_before, 2))")"
  local busy0 total0 busy1 total1
  read -r busy0 total0 <<<"$jiffies_before"
  read -r busy1 total1 <<<"$(machine_jiffies)"
  record "${name}_machine_busy_percent" $((100 * (busy1 - busy0) / (total1 - total0 + 1)))
  local unexpected socket_errors
  unexpected=$(sed -n 's/.* unexpected=\([0-9]*\).*/\1/p' <<<"$line")
  socket_errors=$(sed -n 's/.* socket_errors=\([0-9]*\).*/\1/p' <<<"$line")
  UNEXPECTED=$((UNEXPECTED + unexpected + socket_errors))
  say "$name: ${line#RESULT }"
}
UNEXPECTED=0

sink_count() { curl -s "http://$HOST:$SINK_PORT/count"; }
rss_kb() { awk -v key="$2:" '$1 == key { print $2 }' "/proc/$1/status"; }

# How busy the machine is with other work, in % of all cores over 1 s (the harness itself is idle
# while this runs): other builds or tests during the run make every number here worse.
busy_percent() {
  python3 - <<'PY'
import time
def sample():
    fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)
b0, t0 = sample(); time.sleep(1); b1, t1 = sample()
print(round(100 * (b1 - b0) / max(1, t1 - t0)))
PY
}

# Waits (at most DRAIN_LIMIT seconds) until the sink has every notification that was accepted;
# records <name>_drain_s, or <name>_undelivered when the limit ran out.
drain() {
  local name=$1 expected=$2 started=$EPOCHREALTIME
  local deadline=$((SECONDS + DRAIN_LIMIT))
  while [ "$(sink_count)" -lt "$expected" ]; do
    if [ $SECONDS -ge $deadline ]; then
      record "${name}_undelivered" $((expected - $(sink_count)))
      say "$name: $((expected - $(sink_count))) notifications still undelivered after ${DRAIN_LIMIT} s"
      return
    fi
    sleep 0.02
  done
  record "${name}_drain_s" "$(python3 -c "print(round($EPOCHREALTIME - $started, 2))")"
}
