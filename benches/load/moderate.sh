#!/usr/bin/env bash
# Moderate load: fixed offered rates BELOW saturation, where most servers live, for the
# router (against nginx and HAProxy) and the resolver (against unbound and dnsmasq), in ONE
# interleaved run. Reported per target and rate: the server's CPU per request or query
# (its process tree's time on CPU, from schedstat, over what it answered) and latency
# p50/p99 at the client.
#
# Every server is pinned to CPU 0 with one worker (nginx worker_processes 1, HAProxy
# nbthread 1, unbound num-threads 1, spaced TOKIO_WORKER_THREADS=1 and, pinned, one UDP
# loop); the load generators and the HTTP backends run on CPU 1. Two variants (HOGS="0 1"):
#   pinned       nothing else started;
#   pinned-hog   a busy loop (python3 `while True: pass`) on HOG_CPU (1) for the whole
#                variant, so the load generators share their core with a CPU hog;
#                HOG_CPU=0 puts it on the servers' core instead.
# Targets are started once per variant and measured in RUNS rounds, the order rotated by
# one each round; rates in RATES ("5000 20000") requests or queries per second.
#   router:   h2load --h1 -c H2_CLIENTS (50) --rps RATE/H2_CLIENTS -D SECS --log-file
#             (keep-alive HTTP/1.1; p50/p99 from the per-request log), 3 nginx backends
#   resolver: dnsperf -c DNS_CLIENTS (1) -q 100 -Q RATE -l SECS -v (p50/p99 from the
#             per-answer lines, written to a file: the heavier client of the harness's
#             latency runs), the 100 names of resolver.sh
# Usage:  benches/load/moderate.sh   [SUITES="router resolver"] [HOGS="0 1"] [RATES="5000 20000"]
#         [SECS=8] [RUNS=3] [SPACED_BIN=target/release/spaced] [NO_BUILD=1]
# Output: results/moderate.tsv, and on stdout a Markdown table per suite and variant with
# spaced's CPU as a multiple of the leaner peer's (goals: <= 0.9x the faster of nginx and
# HAProxy, <= 0.8x the faster of unbound and dnsmasq, p99 no worse).
# Needs: nginx, haproxy, h2load (nghttp2-client), dnsperf, unbound, dnsmasq, dig, curl
# (benches/load/setup.sh).
set -euo pipefail
export PIN=1
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/http_lib.sh"

SUITES="${SUITES:-router resolver}"
HOGS="${HOGS:-0 1}"
HOG_CPU="${HOG_CPU:-1}"
RATES="${RATES:-5000 20000}"
SECS="${SECS:-8}"
H2_CLIENTS="${H2_CLIENTS:-50}"
DNS_CLIENTS="${DNS_CLIENTS:-1}"
ZONE="${ZONE:-app.localspace}"
NGINX_PORT="${NGINX_PORT:-8180}" HAPROXY_PORT="${HAPROXY_PORT:-8181}" SUT_HTTP_PORT="${SUT_HTTP_PORT:-8190}"
UNBOUND_PORT="${UNBOUND_PORT:-5401}" DNSMASQ_PORT="${DNSMASQ_PORT:-5402}" SUT_DNS_PORT="${SUT_DNS_PORT:-5403}"
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
SPACED_BIN="${SPACED_BIN:-$REPO/target/release/spaced}"
export SPACED_BIN
if [[ ! -x "$SPACED_BIN" && "${NO_BUILD:-0}" != 1 ]]; then
  log "building target/release/spaced"
  (cd "$REPO" && cargo build --release --bin spaced) >&2
fi
for t in h2load dnsperf dig curl nginx haproxy unbound dnsmasq; do
  command -v "$t" >/dev/null || die "$t is missing (benches/load/setup.sh)"
done

results_open moderate
# The clients' per-request output goes apart from the servers' configs: spaced watches its
# config's directory, and a client writing beside it would wake the watcher per request.
CLIENT_OUT="$WORK/client"
mkdir -p "$CLIENT_OUT"

# --- router ---------------------------------------------------------------------------
declare -A R_PID=() R_PORT=()
R_LABELS=()
start_router_targets() {
  start_backends
  start_nginx_proxy nginx "$NGINX_PORT" 1; R_PID[nginx]=$TARGET_PID; R_PORT[nginx]=$NGINX_PORT
  start_haproxy haproxy "$HAPROXY_PORT" 1; R_PID[haproxy]=$TARGET_PID; R_PORT[haproxy]=$HAPROXY_PORT
  start_http_sut spaced "$SUT_HTTP_PORT" "$REPO/benches/load/sut_http.sh {WORKDIR} {PORT} {BACKENDS} 1"
  R_PID[spaced]=$TARGET_PID; R_PORT[spaced]=$SUT_HTTP_PORT
  R_LABELS=(nginx haproxy spaced)
  for t in "${R_LABELS[@]}"; do check_proxy "${R_PORT[$t]}" 3; done
}

router_run() {   # router_run VARIANT LABEL RATE RUN
  local v=$1 t=$2 rate=$3 run=$4 out="$CLIENT_OUT/h2-$2.txt" lf="$CLIENT_OUT/h2-$2.log" c0 c1 done_ p50 p99 cpu
  local cmd=(h2load --h1 -c "$H2_CLIENTS" --rps "$(( rate / H2_CLIENTS ))" -D "$SECS"
             --log-file "$lf" "http://127.0.0.1:${R_PORT[$t]}/")
  rm -f "$lf"
  c0=$(tree_run_s "${R_PID[$t]}")
  "${PIN_LOAD[@]}" "${cmd[@]}" >"$out" 2>&1 || true
  c1=$(tree_run_s "${R_PID[$t]}")
  done_=$(awk '/^requests:/{for (i = 1; i <= NF; i++) if ($i == "succeeded,") print $(i - 1)}' "$out")
  [[ -n "$done_" && "$done_" -gt 0 ]] || { log "router/$t: no requests succeeded"; tail -5 "$out" >&2; return 0; }
  read -r p50 p99 < <(percentiles 3 1000 <"$lf")
  cpu=$(awk -v a="$c0" -v b="$c1" -v n="$done_" 'BEGIN{printf "%.2f", (b-a)*1e6/n}')
  record moderate-router "$v" "$t@$rate" "$run" cpu_us_per_req "$cpu" us "$(shjoin "${PIN_LOAD[@]}" "${cmd[@]}")"
  record moderate-router "$v" "$t@$rate" "$run" done_rps "$(( done_ / SECS ))" req/s ""
  record moderate-router "$v" "$t@$rate" "$run" p50 "$p50" ms ""
  record moderate-router "$v" "$t@$rate" "$run" p99 "$p99" ms ""
  log "router/$v/$t @ $rate req/s run $run: $(( done_ / SECS )) req/s cpu/req=${cpu}us p50=${p50}ms p99=${p99}ms"
}

# --- resolver -------------------------------------------------------------------------
declare -A D_PID=() D_PORT=()
D_LABELS=()
start_dns_targets() {
  $PYTHON "$HARNESS" gen-dns 100 "$ZONE" "$WORK/dns"
  unbound_conf "$UNBOUND_PORT"
  start unbound "${PIN_SUT[@]}" unbound -d -c "$WORK/unbound.conf"
  D_PID[unbound]=$LAST_PID; D_PORT[unbound]=$UNBOUND_PORT
  cat >"$WORK/dnsmasq.conf" <<EOF
port=$DNSMASQ_PORT
listen-address=127.0.0.1
bind-interfaces
no-resolv
no-hosts
no-poll
no-negcache
pid-file=$WORK/dnsmasq.pid
$(cat "$WORK/dns/dnsmasq_local.conf")
EOF
  start dnsmasq "${PIN_SUT[@]}" dnsmasq -k -C "$WORK/dnsmasq.conf"
  D_PID[dnsmasq]=$LAST_PID; D_PORT[dnsmasq]=$DNSMASQ_PORT
  T_PORT=$SUT_DNS_PORT T_RECORDS_FILE="$WORK/dns/records.txt" T_ZONE=$ZONE
  TOKIO_WORKER_THREADS=1 start_sut spaced-dns "$REPO/benches/load/sut_dns.sh {WORKDIR} {PORT} {RECORDS_FILE} {ZONE}"
  D_PID[spaced]=$LAST_PID; D_PORT[spaced]=$SUT_DNS_PORT
  D_LABELS=(unbound dnsmasq spaced)
  for t in "${D_LABELS[@]}"; do
    wait_dns "${D_PORT[$t]}" "h1.$ZONE" "${D_PID[$t]}" || die "$t did not answer"
  done
}

dns_run() {   # dns_run VARIANT LABEL RATE RUN
  local v=$1 t=$2 rate=$3 run=$4 out="$CLIENT_OUT/dnsperf-$2.txt" c0 c1 cpu p50 p99 p999 answers timeouts qps
  local cmd=(dnsperf -s 127.0.0.1 -p "${D_PORT[$t]}" -d "$WORK/dns/queries_hit.txt" -c "$DNS_CLIENTS"
             -q 100 -Q "$rate" -l "$SECS" -v)
  c0=$(tree_run_s "${D_PID[$t]}")
  "${PIN_LOAD[@]}" "${cmd[@]}" >"$out" 2>&1 || true
  c1=$(tree_run_s "${D_PID[$t]}")
  read -r p50 p99 p999 answers timeouts qps < <($PYTHON "$HARNESS" parse-dnsperf-verbose "$out")
  [[ "${answers:-0}" -gt 0 ]] || { log "resolver/$t: no answers"; tail -5 "$out" >&2; return 0; }
  cpu=$(awk -v a="$c0" -v b="$c1" -v n="$answers" 'BEGIN{printf "%.2f", (b-a)*1e6/n}')
  record moderate-dns "$v" "$t@$rate" "$run" cpu_us_per_q "$cpu" us "$(shjoin "${PIN_LOAD[@]}" "${cmd[@]}")"
  record moderate-dns "$v" "$t@$rate" "$run" answered_qps "$qps" q/s ""
  record moderate-dns "$v" "$t@$rate" "$run" p50 "$p50" ms ""
  record moderate-dns "$v" "$t@$rate" "$run" p99 "$p99" ms ""
  record moderate-dns "$v" "$t@$rate" "$run" timeouts "$timeouts" count ""
  log "resolver/$v/$t @ $rate q/s run $run: $qps q/s cpu/q=${cpu}us p50=${p50}ms p99=${p99}ms timeouts=$timeouts"
  rm -f "$out"
}

# CPU seconds of PID's process tree, from every thread's schedstat (nanoseconds on CPU,
# counted at each context switch). /proc/PID/stat's utime+stime (lib.sh tree_cpu_s) are
# sampled at the 10 ms tick: a server that runs a few microseconds per query is charged a
# whole tick or nothing, which over a few seconds at 5,000 q/s is noise of tens of percent.
tree_run_s() {
  local pid=$1 p
  for p in "$pid" $(descendants "$pid"); do
    cat /proc/"$p"/task/*/schedstat 2>/dev/null || true
  done | awk '{ns += $1} END {printf "%.6f", ns / 1e9}'
}

# percentiles COLUMN DIVISOR < lines : "p50 p99" of a numeric column, divided (µs -> ms).
percentiles() {
  $PYTHON -c '
import sys
col, div = int(sys.argv[1]) - 1, float(sys.argv[2])
v = sorted(float(l.split()[col]) / div for l in sys.stdin if len(l.split()) > col)
pick = lambda q: v[min(len(v) - 1, int(q * len(v)))] if v else float("nan")
print(f"{pick(0.50):.3f} {pick(0.99):.3f}")' "$1" "$2"
}

# --- the run --------------------------------------------------------------------------
for suite in $SUITES; do
  case $suite in
    router) start_router_targets ;;
    resolver) start_dns_targets ;;
    *) die "unknown suite $suite (router, resolver)" ;;
  esac
done
for hog in $HOGS; do
  variant=pinned hog_pid=""
  if [[ $hog == 1 ]]; then
    variant="pinned-hog$HOG_CPU"
    # A pure user-space spin: it takes its core's time and makes no syscall.
    start hog taskset -c "$HOG_CPU" "$PYTHON" -c 'while True: pass'
    hog_pid=$LAST_PID
  fi
  for rate in $RATES; do
    for run in $(seq "$RUNS"); do
      for suite in $SUITES; do
        if [[ $suite == router ]]; then
          for t in $(rotated $(( run - 1 )) "${R_LABELS[@]}"); do router_run "$variant" "$t" "$rate" "$run"; done
        else
          for t in $(rotated $(( run - 1 )) "${D_LABELS[@]}"); do dns_run "$variant" "$t" "$rate" "$run"; done
        fi
      done
    done
  done
  [[ -n "$hog_pid" ]] && stop_pid "$hog_pid"
done

$PYTHON - "$RESULT_FILE" <<'PY'
import csv, statistics, sys
vals = {}
for r in csv.DictReader(open(sys.argv[1]), delimiter="\t"):
    try:
        vals.setdefault((r["suite"], r["variant"], r["target"], r["metric"]), []).append(float(r["value"]))
    except ValueError:
        pass
med = {k: statistics.median(v) for k, v in vals.items()}
for suite, cpu_m, rate_m, goal, unit in (("moderate-router", "cpu_us_per_req", "done_rps", 0.9, "req"),
                                         ("moderate-dns", "cpu_us_per_q", "answered_qps", 0.8, "query")):
    for variant in sorted({k[1] for k in med if k[0] == suite}):
        keys = sorted({k[2] for k in med if k[0] == suite and k[1] == variant},
                      key=lambda t: (int(t.split("@")[1]), t))
        if not keys:
            continue
        print(f"\n{suite} {variant}: medians of runs")
        print(f"| target@rate | done/s | CPU µs/{unit} | p50 ms | p99 ms | spaced CPU ÷ leaner peer |")
        print("|---|---|---|---|---|---|")
        for t in keys:
            name, rate = t.split("@")
            g = lambda m, tt=t: med.get((suite, variant, tt, m), float("nan"))
            ratio = ""
            if name == "spaced":
                peers = [med.get((suite, variant, k, cpu_m)) for k in keys
                         if k.endswith("@" + rate) and not k.startswith("spaced@")]
                peers = [p for p in peers if p]
                if peers:
                    ratio = f"{g(cpu_m) / min(peers):.2f}× (goal ≤ {goal}×)"
            print(f"| {t} | {g(rate_m):,.0f} | {g(cpu_m):.2f} | {g('p50'):.3f} | {g('p99'):.3f} | {ratio} |")
PY
log "done: $RESULT_FILE"
