#!/usr/bin/env bash
# What one query costs the DNS server at a FIXED offered load, in counts rather than time:
# context switches, CPU migrations, system calls and wakeups the server performs per answer,
# plus its CPU time (task-clock) per answer. Counts barely move with what else runs on the
# machine, so they compare spaced with unbound and dnsmasq even on a busy box, and they show
# HOW a server waits and wakes (a thread that sleeps per query pays a context switch per query;
# one that spins pays CPU without switching).
#
# Targets, each started once and measured in interleaved rounds (order rotated per round):
#   unbound (num-threads 1) :5301, dnsmasq :5302, spaced (sut_dns.sh) :$SUT_DNS_PORT (5303)
# The same 100 names as resolver.sh (harness gen-dns). For each rate in RATES, each target
# gets dnsperf -Q RATE for SECS seconds while `perf stat -p PID` counts, on all its threads:
#   task-clock, context-switches, cpu-migrations, raw_syscalls:sys_enter, sched:sched_wakeup
# (the last counts wakeups the server's threads perform, mostly of dnsperf on an answer).
#
# Variables: RATES ("5000 20000"), SECS (5), RUNS (2), PIN (1: server on CPU 0, dnsperf on
# CPU 1; 0: nothing pinned), HOG (0; 1: a busy loop on HOG_CPU for the whole run, so that the
# load generator shares its core), HOG_CPU (1), TARGETS ("unbound dnsmasq sut"),
# DNS_CLIENTS (1), PER_THREAD (0; 1: also print spaced's per-thread split), VERBOSE (0; 1:
# dnsperf -v, one line per answer into a file, the heavier client of the latency runs),
# CLIENT_OUT (directory of dnsperf's output; default a directory apart from the servers'
# configs; `beside`: the configs' own), SPACED_BIN.
# Output: a table on stdout (medians over RUNS) and results/dns-counts-<variant>.tsv.
# Needs: dnsperf, unbound, dnsmasq, dig, perf (root, or perf_event_paranoid <= 1).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

RATES="${RATES:-5000 20000}"
SECS="${SECS:-5}"
RUNS="${RUNS:-2}"
HOG="${HOG:-0}"
HOG_CPU="${HOG_CPU:-1}"
DNS_CLIENTS="${DNS_CLIENTS:-1}"
ZONE="${ZONE:-app.localspace}"
SUT_DNS_PORT="${SUT_DNS_PORT:-5303}"
SUT_NAME="${SUT_NAME:-spaced}"
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
default_sut_dns_cmd="$REPO/benches/load/sut_dns.sh {WORKDIR} {PORT} {RECORDS_FILE} {ZONE}"
SUT_DNS_CMD="${SUT_DNS_CMD:-$default_sut_dns_cmd}"
TARGETS="${TARGETS:-unbound dnsmasq sut}"
for t in dnsperf dig perf; do command -v "$t" >/dev/null || die "$t is missing (benches/load/setup.sh)"; done
# dnsperf's output goes to a directory of its own: spaced watches its config's directory,
# and a client writing there on every answer wakes the watcher per query (CLIENT_OUT=beside
# puts it beside the configs, as the harness's latency runs did; benches/README.md
# "Moderate load").
CLIENT_OUT="${CLIENT_OUT:-$WORK/client}"
[[ $CLIENT_OUT == beside ]] && CLIENT_OUT=$WORK
mkdir -p "$CLIENT_OUT"
VARIANT=$PIN_LABEL
[[ $HOG == 1 ]] && VARIANT+="-hog$HOG_CPU"
[[ $DNS_CLIENTS != 1 ]] && VARIANT+="-c$DNS_CLIENTS"
[[ ${VERBOSE:-0} == 1 ]] && VARIANT+="-v"
EVENTS="task-clock,context-switches,cpu-migrations,raw_syscalls:sys_enter,sched:sched_wakeup"

results_open "dns-counts-$VARIANT"
$PYTHON "$HARNESS" gen-dns 100 "$ZONE" "$WORK/dns"

if [[ $HOG == 1 ]]; then
  # A pure user-space spin: it competes for the core, makes no syscalls and wakes nobody.
  start hog taskset -c "$HOG_CPU" "$PYTHON" -c 'while True: pass'
fi

declare -A D_PID=() D_PORT=()
LABELS=()
for target in $TARGETS; do
  case $target in
    unbound)
      unbound_conf 5301
      start unbound "${PIN_SUT[@]}" unbound -d -c "$WORK/unbound.conf"; port=5301 ;;
    dnsmasq)
      cat >"$WORK/dnsmasq.conf" <<EOF
port=5302
listen-address=127.0.0.1
bind-interfaces
no-resolv
no-hosts
no-poll
no-negcache
pid-file=$WORK/dnsmasq.pid
$(cat "$WORK/dns/dnsmasq_local.conf")
EOF
      start dnsmasq "${PIN_SUT[@]}" dnsmasq -k -C "$WORK/dnsmasq.conf"; port=5302 ;;
    sut)
      T_PORT=$SUT_DNS_PORT T_RECORDS_FILE="$WORK/dns/records.txt" T_ZONE=$ZONE
      start_sut "$SUT_NAME" "$SUT_DNS_CMD"; port=$SUT_DNS_PORT; target=$SUT_NAME ;;
    *) die "unknown target $target" ;;
  esac
  wait_dns "$port" "h1.$ZONE" "$LAST_PID" || die "$target did not answer"
  LABELS+=("$target"); D_PID[$target]=$LAST_PID; D_PORT[$target]=$port
done

# count LABEL RATE RUN: one fixed-rate dnsperf run under perf stat.
count() {
  local t=$1 rate=$2 run=$3 pid=${D_PID[$1]} pstat="$CLIENT_OUT/perf-$1.csv" out="$CLIENT_OUT/dnsperf-$1.txt"
  local per_thread=()
  [[ "${PER_THREAD:-0}" == 1 && "$t" == "$SUT_NAME" ]] && per_thread=(--per-thread)
  # utime and stime (tick samples scaled to the exact runtime): where the time goes.
  local us0 us1
  us0=$(sed -e 's/^.*) //' "/proc/$pid/stat" | awk '{print $12, $13}')
  perf stat -x, "${per_thread[@]}" -e "$EVENTS" -p "$pid" -o "$pstat" -- sleep "$SECS" &
  local perf_pid=$!
  local verbose=()
  [[ "${VERBOSE:-0}" == 1 ]] && verbose=(-v)
  "${PIN_LOAD[@]}" dnsperf -s 127.0.0.1 -p "${D_PORT[$t]}" -d "$WORK/dns/queries_hit.txt" \
    -c "$DNS_CLIENTS" -q 100 -Q "$rate" -l "$SECS" "${verbose[@]}" >"$out" 2>&1 || true
  wait "$perf_pid" || true
  us1=$(sed -e 's/^.*) //' "/proc/$pid/stat" | awk '{print $12, $13}')
  local answers
  answers=$(awk '/Queries completed:/{print $3}' "$out")
  [[ -n "$answers" && "$answers" -gt 0 ]] || { log "$t: no answers"; cat "$out" >&2; return 0; }
  if [[ ${#per_thread[@]} -gt 0 ]]; then
    log "$t @ $rate q/s per thread (value per answer):"
    awk -F, -v n="$answers" '$0 !~ /^#/ && NF > 3 && $2 + 0 > 0 {
        printf "    %-28s %-24s %10.3f\n", $1, $4, ($4 == "task-clock" ? $2 * 1000 : $2) / n }' "$pstat" >&2
  fi
  # perf -x, lines: value,unit,event,... (task-clock in msec), summed over threads.
  awk -F, -v n="$answers" -v secs="$SECS" -v pt="${#per_thread[@]}" '
    $0 ~ /^#/ || NF < 3 { next }
    # --per-thread lines start with the thread name: value,unit,event shift by one.
    pt { v[$4] += $2; next }
    { v[$3] += $1 }
    END {
      printf "%.2f %.3f %.4f %.3f %.3f %d\n", v["task-clock"] * 1000 / n, v["context-switches"] / n,
        v["cpu-migrations"] / n, v["raw_syscalls:sys_enter"] / n, v["sched:sched_wakeup"] / n, n / secs
    }' "$pstat" >"$WORK/row"
  local cpu cs mig sys wake qps user
  read -r cpu cs mig sys wake qps <"$WORK/row"
  user=$(awk -v a="$us0" -v b="$us1" 'BEGIN{split(a, x, " "); split(b, y, " ");
    u = y[1] - x[1]; k = y[2] - x[2]; printf "%.0f", (u + k) ? 100 * u / (u + k) : 0}')
  for m in "cpu_us_per_q $cpu us" "cs_per_q $cs count" "migrations_per_q $mig count" \
           "syscalls_per_q $sys count" "wakeups_per_q $wake count" "answered_qps $qps q/s" \
           "user_pct $user %"; do
    # shellcheck disable=SC2086
    set -- $m
    record dns-counts "$VARIANT" "$t@$rate" "$run" "$1" "$2" "$3" "dnsperf -Q $rate -c $DNS_CLIENTS"
  done
  log "$t @ $rate q/s run $run: $qps answered/s cpu/q=${cpu}us cs/q=$cs migr/q=$mig syscalls/q=$sys wakeups/q=$wake user=$user%"
}

for rate in $RATES; do
  for run in $(seq "$RUNS"); do
    for t in $(rotated $(( run - 1 )) "${LABELS[@]}"); do count "$t" "$rate" "$run"; done
  done
done

$PYTHON - "$RESULT_FILE" "$VARIANT" <<'PY'
import csv, statistics, sys
path, variant = sys.argv[1], sys.argv[2]
vals = {}
for r in csv.DictReader(open(path), delimiter="\t"):
    vals.setdefault((r["target"], r["metric"]), []).append(float(r["value"]))
targets = sorted({t for t, _ in vals}, key=lambda t: (int(t.split("@")[1]), t))
cols = ["answered_qps", "cpu_us_per_q", "cs_per_q", "migrations_per_q", "syscalls_per_q", "wakeups_per_q",
        "user_pct"]
print(f"\n{variant}: per answer, medians of runs")
print("| target@rate | answered/s | CPU µs | ctx switches | migrations | syscalls | wakeups | user % |")
print("|---|---|---|---|---|---|---|---|")
for t in targets:
    m = [statistics.median(vals.get((t, c), [0])) for c in cols]
    print(f"| {t} | {m[0]:,.0f} | {m[1]:.2f} | {m[2]:.3f} | {m[3]:.4f} | {m[4]:.2f} | {m[5]:.3f} | {m[6]:.0f} |")
PY
