#!/usr/bin/env bash
# spaced's egress gateway against the egress peers, in ONE run (adapted from
# shared/bench-peers/egress.sh). Every proxy binds its OUTBOUND connections to EGRESS_BIND
# (127.0.0.10, a second loopback address; checked through the backend's /ip page):
#   squid      HTTP CONNECT on 127.0.0.1:3128  (tcp_outgoing_address)
#   tinyproxy  HTTP CONNECT on 127.0.0.1:8888  (Bind)
#   dante      SOCKS5       on 127.0.0.1:1080  (external:)
#   spaced     HTTP CONNECT on 127.0.0.1:$SUT_CONNECT_PORT (3129)  (sut_egress.sh connect)
#              SOCKS5       on 127.0.0.1:$SUT_SOCKS_PORT   (1081)  (sut_egress.sh socks)
#   direct     no proxy (ceiling of the driver / curl on this machine)
# Parts (PARTS="rate bulk"):
#   rate  new tunnels per second: connrate.py, CONCURRENCY (32) tasks, each tunnel
#         carries one GET / with Connection: close, DURATION seconds; CPU us per tunnel
#         (the proxy's user+system time over completed tunnels)
#   bulk  one tunnel, curl downloads a 1 GiB sparse file (/big) to /dev/null
#         (one unrecorded download per target first); MiB/s and CPU s per GiB
# All proxies are started at once; each part runs RUNS interleaved rounds. At the end,
# spaced is compared with its peers: CPU us per tunnel (goal <= 100; peers 280-650) and
# bulk throughput as a fraction of direct (goal >= 0.9).
#
# Usage:  benches/load/egress.sh  [PARTS="rate bulk"] [TARGETS="direct squid tinyproxy dante sut-connect sut-socks"] [PIN=0|1]
#         SPACED_BIN=path/to/spaced benches/load/egress.sh
#         SPACED_WORKERS=1 (default; empty = one runtime worker per CPU), see sut_egress.sh
# Builds target/release/spaced first unless it exists (NO_BUILD=1 never builds).
# Output: results/egress-spaced-<pinned|unpinned>.tsv and a comparison on stderr.
source "$(dirname "$0")/lib.sh"

PARTS="${PARTS:-rate bulk}"
EGRESS_BIND="${EGRESS_BIND:-127.0.0.10}"
CONCURRENCY="${CONCURRENCY:-32}"
BULK_MAX_TIME="${BULK_MAX_TIME:-60}"
SUT_CONNECT_PORT="${SUT_CONNECT_PORT:-3129}"
SUT_SOCKS_PORT="${SUT_SOCKS_PORT:-1081}"
SUT_NAME="${SUT_NAME:-spaced}"
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
# (Defaults go through variables: inside ${VAR-…} the first "}" of a placeholder would end it.)
default_connect_cmd="$REPO/benches/load/sut_egress.sh connect {WORKDIR} {PORT} {BIND_ADDR}"
default_socks_cmd="$REPO/benches/load/sut_egress.sh socks {WORKDIR} {PORT} {BIND_ADDR}"
SUT_CONNECT_CMD="${SUT_CONNECT_CMD-$default_connect_cmd}"
SUT_SOCKS_CMD="${SUT_SOCKS_CMD-$default_socks_cmd}"
if [[ -z "${SPACED_BIN:-}" && ! -x "$REPO/target/release/spaced" && "${NO_BUILD:-0}" != 1 ]]; then
  log "building target/release/spaced"
  (cd "$REPO" && cargo build --release --bin spaced) >&2
fi
VARIANT="$PIN_LABEL"
default_targets="direct squid tinyproxy dante"
[[ -n "${SUT_CONNECT_CMD:-}" ]] && default_targets="$default_targets sut-connect"
[[ -n "${SUT_SOCKS_CMD:-}" ]] && default_targets="$default_targets sut-socks"
TARGETS="${TARGETS:-$default_targets}"
TARGET_URL_HOST=127.0.0.1:9001
# Tunnel-rate driver: uvloop from ./.venv (made by setup.sh) when present, as it
# roughly doubles the driver's ceiling on this 2-core machine; plain asyncio
# otherwise. DRIVER_LOOP=asyncio forces the stdlib loop.
if [[ -z "${DRIVER_LOOP:-}" ]]; then
  if [[ -x "$PEERS_DIR/.venv/bin/python" ]] && "$PEERS_DIR/.venv/bin/python" -c 'import uvloop' 2>/dev/null; then
    DRIVER_LOOP=uvloop
  else
    DRIVER_LOOP=asyncio
  fi
fi
if [[ "$DRIVER_LOOP" == uvloop ]]; then DRIVER_PY="$PEERS_DIR/.venv/bin/python"; else DRIVER_PY="$PYTHON"; fi

results_open "egress-spaced-$VARIANT"
log "egress suite: parts=[$PARTS] targets=[$TARGETS] bind=$EGRESS_BIND driver loop=$DRIVER_LOOP"
# An 8 GiB (sparse) download: at ~2 GiB/s the 1 GiB default lasts half a second, and
# back-to-back runs of the same binary then vary from 0.64x to 1.11x direct.
export BIG_SIZE="${BIG_SIZE:-8G}"
start_backends

start_squid() {
  : >"$WORK/squid-cache.log"; chown proxy "$WORK/squid-cache.log" 2>/dev/null || chmod 666 "$WORK/squid-cache.log"
  cat >"$WORK/squid.conf" <<EOF
http_port 127.0.0.1:3128
tcp_outgoing_address $EGRESS_BIND
acl lo_src src 127.0.0.0/8
acl lo_dst dst 127.0.0.0/8
http_access allow lo_src lo_dst
http_access deny all
cache deny all
cache_mem 8 MB
access_log none
cache_log $WORK/squid-cache.log
pid_filename $WORK/squid.pid
coredump_dir $WORK
netdb_filename none
visible_hostname localhost
dns_nameservers 127.0.0.1
pinger_enable off
client_db off
shutdown_lifetime 1 seconds
max_filedescriptors 16384
EOF
  start squid "${PIN_SUT[@]}" squid -N -f "$WORK/squid.conf"
  TARGET_PID=$LAST_PID PORT=3128 MODE=connect
  TARGET_CMD="squid -N -f \$WORK/squid.conf"
}

start_tinyproxy() {
  : >"$WORK/tinyproxy.log"; chown nobody "$WORK/tinyproxy.log"
  cat >"$WORK/tinyproxy.conf" <<EOF
User nobody
Group nogroup
Port 8888
Listen 127.0.0.1
Bind $EGRESS_BIND
Timeout 600
LogFile "$WORK/tinyproxy.log"
LogLevel Critical
MaxClients 1024
Allow 127.0.0.0/8
ConnectPort 9001
DisableViaHeader Yes
EOF
  start tinyproxy "${PIN_SUT[@]}" tinyproxy -d -c "$WORK/tinyproxy.conf"
  TARGET_PID=$LAST_PID PORT=8888 MODE=connect
  TARGET_CMD="tinyproxy -d -c \$WORK/tinyproxy.conf"
}

start_dante() {
  cat >"$WORK/danted.conf" <<EOF
logoutput: $WORK/danted.log
internal: 127.0.0.1 port = 1080
external: $EGRESS_BIND
socksmethod: none
clientmethod: none
user.privileged: root
user.unprivileged: nobody
client pass {
    from: 127.0.0.0/8 to: 127.0.0.0/8
    log: error
}
client block {
    from: 0.0.0.0/0 to: 0.0.0.0/0
    log: error
}
socks pass {
    from: 127.0.0.0/8 to: 127.0.0.0/8
    command: connect
    log: error
}
socks block {
    from: 0.0.0.0/0 to: 0.0.0.0/0
    log: error
}
EOF
  start dante "${PIN_SUT[@]}" danted -f "$WORK/danted.conf" -p "$WORK/danted.pid"
  TARGET_PID=$LAST_PID PORT=1080 MODE=socks5
  TARGET_CMD="danted -f \$WORK/danted.conf -p \$WORK/danted.pid"
}

start_egress_sut() {   # start_egress_sut NAME PORT MODE TEMPLATE
  T_PORT=$2 T_BIND_ADDR=$EGRESS_BIND
  start_sut "$1" "$4"
  TARGET_PID=$LAST_PID PORT=$2 MODE=$3
  TARGET_CMD=$(expand_template "$4")
}

curl_proxy_args() {   # curl options that send a request through target $1
  local port=${E_PORT[$1]}
  case ${E_MODE[$1]} in
    connect) echo "-p -x http://127.0.0.1:$port" ;;
    socks5)  echo "--socks5 127.0.0.1:$port" ;;
    direct)  echo "" ;;
  esac
}

# 1. Start every proxy (each on its own port), check its outbound source address.
declare -A E_PID=() E_PORT=() E_MODE=() E_CMD=() E_SRC=()
LABELS=()
for target in $TARGETS; do
  label=$target
  case $target in
    direct)      TARGET_PID=$BACKENDS_PID PORT="" MODE=direct
                 TARGET_CMD="(no proxy; the CPU column is the backend's)" ;;
    squid)       start_squid ;;
    tinyproxy)   start_tinyproxy ;;
    dante)       start_dante ;;
    sut-connect) start_egress_sut "$SUT_NAME-connect" "$SUT_CONNECT_PORT" connect "$SUT_CONNECT_CMD"; label="$SUT_NAME-connect" ;;
    sut-socks)   start_egress_sut "$SUT_NAME-socks" "$SUT_SOCKS_PORT" socks5 "$SUT_SOCKS_CMD"; label="$SUT_NAME-socks" ;;
    *) die "unknown target $target" ;;
  esac
  if [[ -n "$PORT" ]]; then
    wait_tcp "$PORT" "$TARGET_PID" || die "$target did not start"
    sleep 0.3
    remember_kids "$TARGET_PID"
  fi
  LABELS+=("$label"); E_PID[$label]=$TARGET_PID; E_PORT[$label]=$PORT; E_MODE[$label]=$MODE; E_CMD[$label]=$TARGET_CMD
  # shellcheck disable=SC2046
  src=$(curl -s -m 5 $(curl_proxy_args "$label") "http://$TARGET_URL_HOST/ip") || die "$target: request through proxy failed"
  E_SRC[$label]=$src
  log "$label: backend sees source address '$src'"
  if [[ "$MODE" != direct && "$src" != "$EGRESS_BIND" ]]; then
    log "WARNING: $label outbound source is '$src', not $EGRESS_BIND"
  fi
done

rate_run() {   # rate_run LABEL RUN|warm
  local t=$1 run=$2 json c0 c1 ok errs rate p50 p99 ferr cpu cmdline
  local drv=("$DRIVER_PY" "$PEERS_DIR/connrate.py" --loop "$DRIVER_LOOP" --mode "${E_MODE[$t]}" --target "$TARGET_URL_HOST" --concurrency "$CONCURRENCY")
  [[ -n "${E_PORT[$t]}" ]] && drv+=(--proxy "127.0.0.1:${E_PORT[$t]}")
  if [[ "$run" == warm ]]; then
    [[ "$WARMUP" -gt 0 ]] && { "${PIN_LOAD[@]}" "${drv[@]}" --duration "$WARMUP" >/dev/null || true; }
    return 0
  fi
  c0=$(tree_cpu_s "${E_PID[$t]}")
  json=$("${PIN_LOAD[@]}" "${drv[@]}" --duration "$DURATION") || log "WARNING: driver reported no successful tunnel"
  c1=$(tree_cpu_s "${E_PID[$t]}")
  read -r ok errs rate p50 p99 ferr < <($PYTHON -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["ok"], d["errors"], d["rate"], d["p50_ms"], d["p99_ms"], (d["first_error"] or "-").replace(" ", "_")[:80])' "$json")
  cpu=$(awk -v a="$c0" -v b="$c1" -v n="$ok" 'BEGIN{if (n>0) printf "%.1f", (b-a)*1e6/n; else print "nan"}')
  cmdline=$(shjoin "${PIN_LOAD[@]}" "${drv[@]}" --duration "$DURATION")
  record egress-rate "$VARIANT" "$t" "$run" rate "$rate" conn/s "$cmdline"
  record egress-rate "$VARIANT" "$t" "$run" p50 "$p50" ms ""
  record egress-rate "$VARIANT" "$t" "$run" p99 "$p99" ms ""
  record egress-rate "$VARIANT" "$t" "$run" errors "$errs" count ""
  record egress-rate "$VARIANT" "$t" "$run" cpu_us_per_tunnel "$cpu" us ""
  log "egress-rate/$t run $run: $rate tunnels/s p50=${p50}ms p99=${p99}ms errors=$errs ($ferr) cpu/tunnel=${cpu}us"
}

bulk_run() {   # bulk_run LABEL RUN|warm
  local t=$1 run=$2 c0 c1 code size secs speed mibs cpu cmdline
  # shellcheck disable=SC2207
  local cc=(curl -s -o /dev/null --max-time "$BULK_MAX_TIME" -w '%{http_code} %{size_download} %{time_total} %{speed_download}\n' $(curl_proxy_args "$t") "http://$TARGET_URL_HOST/big")
  if [[ "$run" == warm ]]; then "${PIN_LOAD[@]}" "${cc[@]}" >/dev/null || true; return 0; fi
  c0=$(tree_cpu_s "${E_PID[$t]}")
  read -r code size secs speed < <("${PIN_LOAD[@]}" "${cc[@]}" || true)
  c1=$(tree_cpu_s "${E_PID[$t]}")
  [[ "$code" == 200 ]] || log "WARNING: $t bulk run $run: HTTP $code, $size bytes"
  mibs=$(awk -v s="$speed" 'BEGIN{printf "%.1f", s/1048576}')
  cpu=$(awk -v a="$c0" -v b="$c1" -v n="$size" 'BEGIN{if (n>0) printf "%.3f", (b-a)*1073741824/n; else print "nan"}')
  cmdline=$(shjoin "${PIN_LOAD[@]}" "${cc[@]}")
  record egress-bulk "$VARIANT" "$t" "$run" mib_s "$mibs" MiB/s "$cmdline"
  record egress-bulk "$VARIANT" "$t" "$run" seconds "$secs" s ""
  record egress-bulk "$VARIANT" "$t" "$run" bytes "$size" B ""
  record egress-bulk "$VARIANT" "$t" "$run" cpu_s_per_gib "$cpu" s ""
  log "egress-bulk/$t run $run: HTTP $code $size B in ${secs}s = $mibs MiB/s, proxy cpu ${cpu}s/GiB"
}

# 2. Per part: warm up each target, then RUNS interleaved rounds (order rotated each round).
for part in $PARTS; do
  case $part in
    rate) fn=rate_run ;;
    bulk) fn=bulk_run ;;
    *) die "unknown part $part" ;;
  esac
  for t in "${LABELS[@]}"; do $fn "$t" warm; done
  for run in $(seq "$RUNS"); do
    for t in $(rotated $(( run - 1 )) "${LABELS[@]}"); do $fn "$t" "$run"; done
  done
  for t in "${LABELS[@]}"; do
    scmd="${PIN_SUT[*]} ${E_CMD[$t]}"
    record "egress-$part" "$VARIANT" "$t" 0 src_ip "${E_SRC[$t]}" "" ""
    record "egress-$part" "$VARIANT" "$t" 0 server_cmd "-" "" "${scmd# }"
  done
done
# 3. spaced against its peers: medians over the runs.
$PYTHON - "$RESULT_FILE" "$SUT_NAME" <<'PY' >&2 || true
import csv, statistics, sys
path, sut = sys.argv[1], sys.argv[2]
vals = {}
for row in csv.DictReader(open(path), delimiter="\t"):
    if row["run"] == "0":
        continue
    try:
        vals.setdefault((row["suite"], row["target"], row["metric"]), []).append(float(row["value"]))
    except ValueError:
        pass
med = {k: statistics.median(v) for k, v in vals.items()}
def get(suite, target, metric):
    return med.get((suite, target, metric))
for mine, peers in ((f"{sut}-connect", ("squid", "tinyproxy")), (f"{sut}-socks", ("dante",))):
    rate, cpu = get("egress-rate", mine, "rate"), get("egress-rate", mine, "cpu_us_per_tunnel")
    if rate is not None:
        others = ", ".join(
            f"{p} {get('egress-rate', p, 'rate'):.0f}/s {get('egress-rate', p, 'cpu_us_per_tunnel'):.0f} us"
            for p in peers if get("egress-rate", p, "rate") is not None)
        print(f"[rate] {mine}: {rate:.0f} tunnels/s, cpu {cpu:.0f} us/tunnel (goal <= 100) | {others}")
    direct = get("egress-bulk", "direct", "mib_s")
    bulk = get("egress-bulk", mine, "mib_s")
    if bulk is not None and direct:
        others = ", ".join(
            f"{p} {get('egress-bulk', p, 'mib_s') / direct:.2f}x"
            for p in peers if get("egress-bulk", p, "mib_s") is not None)
        print(f"[bulk] {mine}: {bulk:.0f} MiB/s = {bulk / direct:.2f}x direct (goal >= 0.9), "
              f"cpu {get('egress-bulk', mine, 'cpu_s_per_gib'):.3f} s/GiB | {others}")
PY
log "done: $RESULT_FILE"
