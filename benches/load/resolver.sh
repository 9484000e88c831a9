#!/usr/bin/env bash
# spaced's resolver against the DNS peers, in ONE run (adapted from shared/bench-peers/dns.sh):
# 100 A records hN.app.localspace served by
#   unbound (local-zone static + local-data) on 127.0.0.1:5301, num-threads 1
#   dnsmasq (local=/app.localspace/ + host-record=) on 127.0.0.1:5302
#   spaced  (sut_dns.sh: app "app", one process per name) on 127.0.0.1:$SUT_DNS_PORT (5303)
# all started at once, measured with dnsperf (UDP) in RUNS interleaved rounds on two query
# files: hit (the 100 names, shuffled) and mix10nx (90 % existing, 10 % NXDOMAIN).
# Reported per target: q/s and latency (avg/max/stddev) of saturating runs, CPU µs per
# query (the server's user+system time over answered queries), the server's CPU use during
# the run (100 % = one core: the server, not dnsperf, is the limit), and p50/p99/p99.9 at a
# fixed offered load; then spaced's q/s as a multiple of the faster peer, its CPU/query, and
# the per-core capacity ratio (peer CPU/query over spaced's).
#
# Two variants, each run by default (PINS="0 1"), each the same for all three targets:
#   unpinned  dnsperf -c 1 -q 100, nothing pinned (the historical setup);
#   pinned    the server on CPU 0 and dnsperf on CPU 1 (taskset), dnsperf -c 8 -q 160: eight
#             client sockets (source ports), as a server with many clients sees them. Not
#             more outstanding: unbound and dnsmasq keep the default 208 KiB receive buffer,
#             which overflows at dnsperf's opening burst of ~200 queries, and each query lost
#             then holds one of dnsperf's slots for its 5 s timeout (-q 500 cost both peers
#             307 slots while spaced, with its 1 MiB buffer, lost none).
# DNS_CLIENTS / DNS_OUTSTANDING / DNS_THREADS (dnsperf -c / -q / -T) override both variants.
#
# Usage:  benches/load/resolver.sh   [PINS="0 1"] [TARGETS="unbound dnsmasq sut"] [DURATION=10] [RUNS=3]
#         SPACED_BIN=path/to/spaced benches/load/resolver.sh
# Builds target/release/spaced first unless it exists (NO_BUILD=1 never builds).
# Output: results/dns-spaced-<pinned|unpinned>.tsv and a comparison on stderr.
# Goals (ISSUE): <= 5 us CPU per query, >= 1.5x the faster peer's q/s.
set -euo pipefail
if [[ "${RESOLVER_SH_INNER:-0}" != 1 ]]; then
  for pin in ${PINS:-0 1}; do
    RESOLVER_SH_INNER=1 PIN="$pin" "$0"
  done
  exit 0
fi
source "$(dirname "$0")/lib.sh"

ZONE="${ZONE:-app.localspace}"
NRECORDS="${NRECORDS:-100}"
if [[ "${PIN:-0}" == 1 ]]; then
  DNS_CLIENTS="${DNS_CLIENTS:-8}"
  DNS_OUTSTANDING="${DNS_OUTSTANDING:-160}"
else
  DNS_CLIENTS="${DNS_CLIENTS:-1}"
  DNS_OUTSTANDING="${DNS_OUTSTANDING:-100}"
fi
DNS_THREADS="${DNS_THREADS:-1}"
DNS_LAT_QPS="${DNS_LAT_QPS:-20000}"   # offered load of the latency-percentile runs
SUT_DNS_PORT="${SUT_DNS_PORT:-5303}"
SUT_NAME="${SUT_NAME:-spaced}"
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
# (A default inside ${VAR:-…} would end at the first "}" of the placeholders.)
default_sut_dns_cmd="$REPO/benches/load/sut_dns.sh {WORKDIR} {PORT} {RECORDS_FILE} {ZONE}"
SUT_DNS_CMD="${SUT_DNS_CMD:-$default_sut_dns_cmd}"
if [[ -z "${SPACED_BIN:-}" && ! -x "$REPO/target/release/spaced" && "${NO_BUILD:-0}" != 1 ]]; then
  log "building target/release/spaced"
  (cd "$REPO" && cargo build --release --bin spaced) >&2
fi
VARIANT="$PIN_LABEL"
default_targets="unbound dnsmasq"
[[ -n "${SUT_DNS_CMD:-}" ]] && default_targets="$default_targets sut"
TARGETS="${TARGETS:-$default_targets}"

results_open "dns-spaced-$VARIANT"
$PYTHON "$HARNESS" gen-dns "$NRECORDS" "$ZONE" "$WORK/dns"
log "dns suite: $NRECORDS records in $ZONE; targets=[$TARGETS]"

start_unbound() {
  unbound_conf 5301
  start unbound "${PIN_SUT[@]}" unbound -d -c "$WORK/unbound.conf"
  TARGET_PID=$LAST_PID; PORT=5301
  TARGET_CMD="unbound -d -c \$WORK/unbound.conf"
}

start_dnsmasq() {
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
  start dnsmasq "${PIN_SUT[@]}" dnsmasq -k -C "$WORK/dnsmasq.conf"
  TARGET_PID=$LAST_PID; PORT=5302
  TARGET_CMD="dnsmasq -k -C \$WORK/dnsmasq.conf"
}

start_dns_sut() {
  T_PORT=$SUT_DNS_PORT T_RECORDS_FILE="$WORK/dns/records.txt" T_ZONE=$ZONE
  start_sut "$SUT_NAME" "$SUT_DNS_CMD"
  TARGET_PID=$LAST_PID; PORT=$SUT_DNS_PORT
  TARGET_CMD=$(expand_template "$SUT_DNS_CMD")
}

check_dns() {   # check_dns PORT
  local a nx
  a=$(dig +time=2 +tries=1 @127.0.0.1 -p "$1" "h1.$ZONE" A +short)
  [[ "$a" == "127.1.0.1" ]] || die "port $1: h1.$ZONE -> '$a', expected 127.1.0.1"
  nx=$(dig +time=2 +tries=1 @127.0.0.1 -p "$1" "nope.$ZONE" A | awk '/status:/{print $6}' | tr -d ,)
  [[ "$nx" == NXDOMAIN ]] || die "port $1: nope.$ZONE status '$nx', expected NXDOMAIN"
  log "port $1: h1.$ZONE -> $a, nope.$ZONE -> $nx"
}

# 1. Start every server (each on its own port), check it.
declare -A D_PID=() D_PORT=() D_CMD=()
LABELS=()
for target in $TARGETS; do
  case $target in
    unbound) start_unbound ;;
    dnsmasq) start_dnsmasq ;;
    sut) [[ -n "${SUT_DNS_CMD:-}" ]] || die "target sut needs SUT_DNS_CMD"; start_dns_sut; target=$SUT_NAME ;;
    *) die "unknown target $target" ;;
  esac
  wait_dns "$PORT" "h1.$ZONE" "$TARGET_PID" || die "$target did not answer"
  check_dns "$PORT"
  LABELS+=("$target"); D_PID[$target]=$TARGET_PID; D_PORT[$target]=$PORT; D_CMD[$target]=$TARGET_CMD
done

dnsperf_sat() {   # dnsperf_sat LABEL QUERYSET RUN|warm : saturating run
  local t=$1 qf=$2 run=$3 out c0 c1 cpu util qps avg mn mx sd sent comp lost nxpct cmdline
  local base=(dnsperf -s 127.0.0.1 -p "${D_PORT[$t]}" -d "$WORK/dns/queries_$qf.txt" -c "$DNS_CLIENTS" -T "$DNS_THREADS" -q "$DNS_OUTSTANDING")
  if [[ "$run" == warm ]]; then
    [[ "$WARMUP" -gt 0 ]] && "${PIN_LOAD[@]}" "${base[@]}" -l "$WARMUP" >/dev/null 2>&1
    return 0
  fi
  out="$WORK/dnsperf-$t-$qf-$run.txt"
  c0=$(tree_cpu_s "${D_PID[$t]}")
  "${PIN_LOAD[@]}" "${base[@]}" -l "$DURATION" >"$out" 2>&1
  c1=$(tree_cpu_s "${D_PID[$t]}")
  read -r qps avg mn mx sd sent comp lost nxpct < <($PYTHON "$HARNESS" parse-dnsperf "$out")
  cpu=$(awk -v a="$c0" -v b="$c1" -v n="$comp" 'BEGIN{printf "%.2f", (b-a)*1e6/n}')
  util=$(awk -v a="$c0" -v b="$c1" -v d="$DURATION" 'BEGIN{printf "%.0f", (b-a)*100/d}')
  cmdline=$(shjoin "${PIN_LOAD[@]}" "${base[@]}" -l "$DURATION")
  record dns "$VARIANT" "$t-$qf" "$run" qps "$qps" q/s "$cmdline"
  record dns "$VARIANT" "$t-$qf" "$run" avg "$avg" ms ""
  record dns "$VARIANT" "$t-$qf" "$run" max "$mx" ms ""
  record dns "$VARIANT" "$t-$qf" "$run" stddev "$sd" ms ""
  record dns "$VARIANT" "$t-$qf" "$run" lost "$lost" count ""
  record dns "$VARIANT" "$t-$qf" "$run" nxdomain_pct "$nxpct" % ""
  record dns "$VARIANT" "$t-$qf" "$run" cpu_us_per_q "$cpu" us ""
  record dns "$VARIANT" "$t-$qf" "$run" server_cpu_pct "$util" % ""
  log "dns/$t/$qf run $run: $qps q/s avg=${avg}ms max=${mx}ms sd=${sd}ms lost=$lost nx=${nxpct}% cpu/q=${cpu}us server=${util}%"
}

# Latency percentiles at a fixed offered load (below every peer's capacity),
# from dnsperf -v (one line per answer). -v itself costs dnsperf ~10 % QPS,
# which is why the saturating runs do not use it.
dnsperf_lat() {   # dnsperf_lat LABEL RUN
  local t=$1 run=$2 out c0 c1 cpu p50 p99 p999 answers timeouts aqps cmdline
  local lat=(dnsperf -s 127.0.0.1 -p "${D_PORT[$t]}" -d "$WORK/dns/queries_hit.txt" -c "$DNS_CLIENTS" -T "$DNS_THREADS" -q "$DNS_OUTSTANDING" -Q "$DNS_LAT_QPS" -v -l "$DURATION")
  local label="$t-hit@${DNS_LAT_QPS}qps"
  out="$WORK/dnsperf-$t-lat-$run.txt"
  c0=$(tree_cpu_s "${D_PID[$t]}")
  "${PIN_LOAD[@]}" "${lat[@]}" >"$out" 2>&1
  c1=$(tree_cpu_s "${D_PID[$t]}")
  read -r p50 p99 p999 answers timeouts aqps < <($PYTHON "$HARNESS" parse-dnsperf-verbose "$out")
  cpu=$(awk -v a="$c0" -v b="$c1" -v n="$answers" 'BEGIN{printf "%.2f", (b-a)*1e6/n}')
  cmdline=$(shjoin "${PIN_LOAD[@]}" "${lat[@]}")
  record dns-latency "$VARIANT" "$label" "$run" achieved_qps "$aqps" q/s "$cmdline"
  record dns-latency "$VARIANT" "$label" "$run" p50 "$p50" ms ""
  record dns-latency "$VARIANT" "$label" "$run" p99 "$p99" ms ""
  record dns-latency "$VARIANT" "$label" "$run" p999 "$p999" ms ""
  record dns-latency "$VARIANT" "$label" "$run" timeouts "$timeouts" count ""
  record dns-latency "$VARIANT" "$label" "$run" cpu_us_per_q "$cpu" us ""
  log "dns-latency/$t run $run: ${aqps} q/s p50=${p50}ms p99=${p99}ms p99.9=${p999}ms timeouts=$timeouts cpu/q=${cpu}us"
  rm -f "$out"
}

# 2. For each query set: warm up each server, then RUNS interleaved rounds
#    (order rotated each round); then the latency runs, interleaved the same way.
for qf in hit mix10nx; do
  for t in "${LABELS[@]}"; do dnsperf_sat "$t" "$qf" warm; done
  for run in $(seq "$RUNS"); do
    for t in $(rotated $(( run - 1 )) "${LABELS[@]}"); do dnsperf_sat "$t" "$qf" "$run"; done
  done
done
for run in $(seq "$RUNS"); do
  for t in $(rotated $(( run - 1 )) "${LABELS[@]}"); do dnsperf_lat "$t" "$run"; done
done
for t in "${LABELS[@]}"; do
  scmd="${PIN_SUT[*]} ${D_CMD[$t]}"
  for qf in hit mix10nx; do record dns "$VARIANT" "$t-$qf" 0 server_cmd "-" "" "${scmd# }"; done
  record dns-latency "$VARIANT" "$t-hit@${DNS_LAT_QPS}qps" 0 server_cmd "-" "" "${scmd# }"
  record dns "$VARIANT" "$t-hit" 0 rss_kb "$(tree_rss_kb "${D_PID[$t]}")" kB ""
done
# 3. spaced against the faster peer: medians over the runs.
$PYTHON - "$RESULT_FILE" "$SUT_NAME" <<'PY' >&2 || true
import csv, statistics, sys
path, sut = sys.argv[1], sys.argv[2]
vals = {}
for row in csv.DictReader(open(path), delimiter="\t"):
    if row["suite"] != "dns" or row["run"] == "0":
        continue
    try:
        vals.setdefault((row["target"], row["metric"]), []).append(float(row["value"]))
    except ValueError:
        pass
med = {k: statistics.median(v) for k, v in vals.items()}
for qf in ("hit", "mix10nx"):
    peers = {t.rsplit("-", 1)[0]: q for (t, m), q in med.items()
             if m == "qps" and t.endswith("-" + qf) and not t.startswith(sut + "-")}
    ours = med.get((f"{sut}-{qf}", "qps"))
    cpu = med.get((f"{sut}-{qf}", "cpu_us_per_q"))
    if ours is None or not peers:
        continue
    best = max(peers, key=peers.get)
    util = {t: med.get((f"{t}-{qf}", "server_cpu_pct")) for t in [sut, *peers]}
    print(f"[{qf}] {sut}: {ours:.0f} q/s = {ours / peers[best]:.2f}x {best} ({peers[best]:.0f} q/s); "
          f"cpu {cpu:.2f} us/query (goals: >= 1.5x, <= 5 us); server CPU "
          + ", ".join(f"{t} {u:.0f}%" for t, u in util.items() if u is not None))
    # Per core: the q/s one fully busy core would serve, 1 / (CPU per query). It is what the
    # q/s ratio becomes once every server, rather than dnsperf, is the limit.
    pcpu = {t: med.get((f"{t}-{qf}", "cpu_us_per_q")) for t in peers}
    pcpu = {t: c for t, c in pcpu.items() if c}
    if cpu and pcpu:
        lean = min(pcpu, key=pcpu.get)
        print(f"[{qf}] per core: {sut} {1e6 / cpu:.0f} q/s = {pcpu[lean] / cpu:.2f}x {lean} "
              f"({1e6 / pcpu[lean]:.0f} q/s)")
PY
log "done: $RESULT_FILE"
