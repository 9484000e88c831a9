#!/usr/bin/env bash
# The router against its peers: wrk -> (spaced | nginx | haproxy) -> the same 3 nginx
# backends, HTTP/1.1 keep-alive, CONNS (64) connections; unpinned and pinned in one run
# (PIN=1: the proxy on CPU 0, wrk and the backends on CPU 1), then spaced's ratios to each
# peer: req/s (higher is better), p99 and CPU µs per request (lower is better).
# haproxy-spec is haproxy doing the header work BEHAVIOR.md asks of spaced (X-Forwarded-*,
# X-Request-Start, a request id to the dyno and back, Via; see start_haproxy), which the
# plain peers skip: the comparison at equal work. haproxy-tcp (not in the default TARGETS)
# is haproxy as a plain L4 relay, no HTTP parsed: a floor under any HTTP proxy, showing
# what the harness itself allows. direct (not in the default TARGETS either) is no proxy at
# all: wrk straight to the first backend, on the load side's CPU. It is the load side's
# own ceiling: with a proxy in between, CPU 1 still runs wrk and the backend and makes the
# same socket calls, so no proxy can push more through it. Its CPU column is the
# backend's, not a proxy's.
#
# Adapted from shared/bench-peers/http.sh: every target is started first (nginx :8080,
# haproxy :8081, spaced :8090 through sut_http.sh), then measured in RUNS interleaved
# rounds, the order rotated each round.
#
# Usage:  cargo build --release        # once, from the repository root
#         benches/load/router.sh       [WORKERS=1] [PINS="0 1"]
#                                      [TARGETS="nginx haproxy haproxy-spec spaced"
#                                       (+ haproxy-tcp, direct)]
# Env: DURATION (10), RUNS (3), WARMUP (2), CONNS (64), WRK_THREADS (1), RESULTS_DIR,
#      KEEP_WORK, SPACED_BIN, SPACED_LOG (warn), SPACED_BALANCE (round-robin),
#      PACE_MS: each connection waits that many ms after a response before its next
#      request (wrk's Lua delay()), so the load is offered at a fixed pace below what the
#      CPUs can carry; latency then shows what the proxy adds when the load side has
#      headroom (wrk times a request from its write, not from the end of the wait).
# Output: results/router-w<WORKERS>-<pinned|unpinned>[-paced<N>ms].tsv, and the ratio
#      table on stdout.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"

if [[ "${ROUTER_SH_INNER:-0}" != 1 ]]; then
  WORKERS="${WORKERS:-1}"
  RESULTS_DIR="${RESULTS_DIR:-$HERE/results}"
  PACE_MS="${PACE_MS:-}"
  export WORKERS RESULTS_DIR PACE_MS
  for pin in ${PINS:-0 1}; do
    ROUTER_SH_INNER=1 PIN="$pin" "$0"
  done
  python3 - "$RESULTS_DIR" "$WORKERS" "${PACE_MS:+-paced${PACE_MS}ms}" <<'PY'
import csv, statistics, sys, os
results, workers, paced = sys.argv[1], sys.argv[2], sys.argv[3]
for label in ("unpinned", "pinned"):
    label += paced
    path = os.path.join(results, f"router-w{workers}-{label}.tsv")
    if not os.path.exists(path):
        continue
    vals = {}
    with open(path) as f:
        for row in csv.reader(f, delimiter="\t"):
            if len(row) < 6 or row[3] == "0":
                continue
            try:
                value = float(row[5])  # the header row has no number: skip it
            except ValueError:
                continue
            vals.setdefault((row[2], row[4]), []).append(value)
    med = {k: statistics.median(v) for k, v in vals.items()}
    print(f"\n## router w{workers} {label}: spaced / peer (medians of the runs)")
    print("| peer | req/s ratio (>1 better) | p99 ratio (<1 better) | CPU us/req ratio (<1 better) | spaced CPU us/req |")
    print("|---|---|---|---|---|")
    for peer in ("nginx", "haproxy", "haproxy-spec", "haproxy-tcp", "direct"):
        if not any(k[0] == peer for k in med):
            continue
        row = [peer]
        for metric in ("rps", "p99", "cpu_us_per_req"):
            s, p = med.get(("spaced", metric)), med.get((peer, metric))
            if peer == "direct" and metric == "cpu_us_per_req":
                p = None  # the backend's CPU, not a proxy's: no ratio
            row.append(f"{s / p:.2f}" if s is not None and p else "n/a")
        s_cpu = med.get(("spaced", "cpu_us_per_req"))
        row.append(f"{s_cpu:.1f}" if s_cpu is not None else "n/a")
        print("| " + " | ".join(row) + " |")
PY
  exit 0
fi

source "$HERE/lib.sh"
source "$PEERS_DIR/http_lib.sh"

WORKERS="${WORKERS:-1}"
SPACED_PORT="${SPACED_PORT:-8090}"
VARIANT="w${WORKERS}-${PIN_LABEL}${PACE_MS:+-paced${PACE_MS}ms}"
TARGETS="${TARGETS:-nginx haproxy haproxy-spec spaced}"
SUT_TEMPLATE="$HERE/sut_http.sh {WORKDIR} {PORT} {BACKENDS} {WORKERS}"

results_open "router-$VARIANT"
log "router suite: variant=$VARIANT targets=[$TARGETS] duration=${DURATION}s runs=$RUNS conns=$CONNS"
start_backends
if [[ -n "${PACE_MS:-}" ]]; then
  [[ "$PACE_MS" =~ ^[1-9][0-9]*$ ]] || die "PACE_MS must be a whole number of ms"
  WRK_SCRIPT="$WORK/paced.lua"
  echo "function delay() return $PACE_MS end" >"$WRK_SCRIPT"
fi

for target in $TARGETS; do
  STARTUP_MS="" TARGET_CMD=""
  case $target in
    nginx)
      start_nginx_proxy nginx-proxy 8080 "$WORKERS"
      check_proxy 8080 3
      register_target nginx "$TARGET_PID" "http://127.0.0.1:8080/" ;;
    haproxy)
      start_haproxy haproxy 8081 "$WORKERS"
      check_proxy 8081 3
      register_target haproxy "$TARGET_PID" "http://127.0.0.1:8081/" ;;
    haproxy-spec)
      HAPROXY_SPEC_HEADERS=1 start_haproxy haproxy-spec 8082 "$WORKERS"
      check_proxy 8082 3
      grep -qi '^x-request-id: ' "$WORK/hdr" || die "haproxy-spec echoes no X-Request-Id"
      register_target haproxy-spec "$TARGET_PID" "http://127.0.0.1:8082/" ;;
    haproxy-tcp)
      HAPROXY_TCP=1 start_haproxy haproxy-tcp 8083 "$WORKERS"
      check_proxy 8083 3
      register_target haproxy-tcp "$TARGET_PID" "http://127.0.0.1:8083/" ;;
    direct)
      # No proxy: the CPU measured is the backends' nginx (on the load side's CPU).
      register_target direct "$BACKENDS_PID" "http://127.0.0.1:${BACKEND_PORTS[0]}/" ;;
    spaced)
      start_http_sut spaced "$SPACED_PORT" "$SUT_TEMPLATE"
      check_proxy "$SPACED_PORT" 3
      register_target spaced "$TARGET_PID" "http://127.0.0.1:$SPACED_PORT/" ;;
    *) die "unknown target $target" ;;
  esac
done

for t in "${TGT_LABELS[@]}"; do wrk_warm "${TGT_URL[$t]}"; done
for run in $(seq "$RUNS"); do
  for t in $(rotated $(( run - 1 )) "${TGT_LABELS[@]}"); do wrk_run router "$VARIANT" "$t" "$run"; done
done
for t in "${TGT_LABELS[@]}"; do target_info router "$VARIANT" "$t"; done
log "done: $RESULT_FILE"
