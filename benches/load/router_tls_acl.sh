#!/usr/bin/env bash
# Router security costs, measured with the peer harness (lib.sh, http_lib.sh):
#
#  1. L4 allowlist: spaced with a big `space.trusted` (ACL_SIZE CIDRs via `trusted_file`,
#     random and seeded, 127.0.0.0/8 last) against spaced with the default (everyone),
#     plain HTTP keep-alive; nginx `geo` and haproxy `acl src -f` with the same list for
#     reference. spaced checks at accept, so with keep-alive this mostly shows the policy
#     size cost on memory and reloads; CONNS_NEW=1 adds `Connection: close` runs where
#     every request is a new connection and the check is on the hot path.
#  2. HTTPS, TLS 1.3, keep-alive: spaced `tls_listen` against nginx `ssl` and haproxy
#     `bind ... ssl`, one generated ECDSA P-256 certificate for all.
#
# Before measuring, the ACL variant of spaced is started once with the list that lacks
# 127.0.0.0/8 and must close the connection without a byte (L4 denial), so the list is
# really evaluated; nginx/haproxy must answer 403 as in acl.sh.
#
# Targets (TARGETS=...): spaced-noacl spaced-acl nginx-acl haproxy-acl
#                        spaced-tls nginx-tls haproxy-tls
# Ports: spaced 8090 (noacl) 8091 (acl) 8443 (tls); nginx 8082 (acl) 8444 (tls);
#        haproxy 8083 (acl) 8445 (tls). Backends 9001-9003 (lib.sh).
#
# Usage:  cargo build --release        # once, from the repository root
#         ./router_tls_acl.sh          [ACL_SIZE=100000] [WORKERS=1] [PIN=0|1] [TARGETS=...]
# Env: SPACED_BIN (target/release/spaced), SPACED_LOG (warn: no per-request log line, as
#      nginx/haproxy run with access logs off), DURATION (10), RUNS (3), WARMUP (2),
#      CONNS (64), WRK_THREADS (1), CONNS_NEW (0), RESULTS_DIR, KEEP_WORK.
# Output: results/router-tls-acl-w<WORKERS>-<pinned|unpinned>.tsv
source "$(dirname "$0")/lib.sh"
source "$PEERS_DIR/http_lib.sh"

REPO_DIR="$(cd "$PEERS_DIR/../.." && pwd)"
SPACED_BIN="${SPACED_BIN:-$REPO_DIR/target/release/spaced}"
SPACED_LOG="${SPACED_LOG:-warn}"
WORKERS="${WORKERS:-1}"
ACL_SIZE="${ACL_SIZE:-100000}"
CONNS_NEW="${CONNS_NEW:-0}"
VARIANT="w${WORKERS}-${PIN_LABEL}"
TARGETS="${TARGETS:-spaced-noacl spaced-acl nginx-acl haproxy-acl spaced-tls nginx-tls haproxy-tls}"

[[ -x "$SPACED_BIN" ]] || die "no spaced binary at $SPACED_BIN (run: cargo build --release)"

results_open "router-tls-acl-$VARIANT"
log "router tls/acl suite: variant=$VARIANT size=$ACL_SIZE targets=[$TARGETS]"
$PYTHON "$HARNESS" gen-acl "$ACL_SIZE" "$WORK/acl"
log "ACL files: $(wc -l <"$WORK/acl/acl.lst") entries (last: $(tail -1 "$WORK/acl/acl.lst"))"

# One certificate for every TLS target: ECDSA P-256 (what a modern site serves), SANs for
# the names wrk and curl use. PKCS#8 key (spaced accepts PKCS#8, PKCS#1 and SEC1).
mkdir -p "$WORK/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$WORK/tls/key.pem" -out "$WORK/tls/cert.pem" 2>"$WORK/tls/openssl.log" \
  || die "openssl could not make a certificate: $(cat "$WORK/tls/openssl.log")"
cat "$WORK/tls/cert.pem" "$WORK/tls/key.pem" >"$WORK/tls/combined.pem"   # haproxy's form
chmod 644 "$WORK/tls/"*.pem

start_backends

# spaced_config NAME LISTEN_LINE [TRUSTED_FILE] : writes $WORK/NAME.toml. Round robin so
# check_proxy sees all three backends in six requests; hosts cover what wrk/curl send.
spaced_config() {
  local name=$1 listen=$2 trusted=${3:-} conf="$WORK/$1.toml" trusted_line="" tls=""
  [[ -n "$trusted" ]] && trusted_line="trusted = []
trusted_file = \"$trusted\""
  [[ "$listen" == tls_listen* ]] && tls="
[[tls]]
cert = \"$WORK/tls/cert.pem\"
key = \"$WORK/tls/key.pem\""
  cat >"$conf" <<EOF
[space]
name = "bench"
$trusted_line

[router]
$listen
balance = "round-robin"
max_connections = 100000
$tls

[[app]]
name = "bench"
hosts = ["127.0.0.1", "localhost"]
[[app.dyno]]
process = "web"
addr = "127.0.0.1:9001"
[[app.dyno]]
process = "web"
addr = "127.0.0.1:9002"
[[app.dyno]]
process = "web"
addr = "127.0.0.1:9003"
EOF
  "$SPACED_BIN" check "$conf" >"$WORK/$name.check" 2>&1 || die "spaced check $conf: $(cat "$WORK/$name.check")"
}

# start_spaced NAME PORT CONFIG
start_spaced() {
  local name=$1 port=$2 conf=$3 t0
  t0=$(now_ms)
  start "$name" "${PIN_SUT[@]}" env "RUST_LOG=$SPACED_LOG" "$SPACED_BIN" run --config "$conf"
  TARGET_PID=$LAST_PID
  wait_tcp "$port" "$TARGET_PID" || die "$name did not start"
  STARTUP_MS=$(( $(now_ms) - t0 ))
  sleep 0.2
  remember_kids "$TARGET_PID"
  TARGET_CMD="RUST_LOG=$SPACED_LOG spaced run --config \$WORK/$name.toml"
}

# start_nginx_tls NAME PORT WORKERS : nginx TLS 1.3 termination in front of the backends.
start_nginx_tls() {
  local name=$1 port=$2 workers=$3 conf
  conf="$WORK/$name.conf"
  mkdir -p "$WORK/$name"
  cat >"$conf" <<EOF
worker_processes $workers;
worker_rlimit_nofile 65536;
pid $WORK/$name.pid;
error_log $WORK/$name.err warn;
events { worker_connections 16384; }
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 65s;
    upstream be {
        server 127.0.0.1:9001;
        server 127.0.0.1:9002;
        server 127.0.0.1:9003;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$port ssl backlog=4096;
        ssl_certificate $WORK/tls/cert.pem;
        ssl_certificate_key $WORK/tls/key.pem;
        ssl_protocols TLSv1.3;
        location / {
            proxy_pass http://be;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
  launch_server "$name" "$port" "nginx -c \$WORK/$name.conf -g 'daemon off;'" \
    nginx -p "$WORK/$name" -e "$WORK/$name.err" -c "$conf" -g 'daemon off;'
  remember_kids "$TARGET_PID"
}

# start_haproxy_tls NAME PORT NBTHREAD : haproxy TLS 1.3 termination.
start_haproxy_tls() {
  local name=$1 port=$2 threads=$3 conf
  conf="$WORK/$name.cfg"
  cat >"$conf" <<EOF
global
    nbthread $threads
    maxconn 8000
    pidfile $WORK/$name.pid

defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 65s

frontend fe
    bind 127.0.0.1:$port ssl crt $WORK/tls/combined.pem ssl-min-ver TLSv1.3 alpn http/1.1 backlog 4096
    default_backend be

backend be
    balance roundrobin
    server s1 127.0.0.1:9001
    server s2 127.0.0.1:9002
    server s3 127.0.0.1:9003
EOF
  launch_server "$name" "$port" "haproxy -db -f \$WORK/$name.cfg" haproxy -db -f "$conf"
}

expect_403() {   # expect_403 PORT
  local code
  code=$(curl -s -o /dev/null -m 5 -w '%{http_code}' "http://127.0.0.1:$1/") || true
  [[ "$code" == 403 ]] || die "port $1: ACL without 127.0.0.0/8 should deny, got HTTP $code"
  log "port $1: denied (403) with the list that lacks 127.0.0.0/8, as expected"
}

# expect_l4_close PORT : spaced refuses untrusted clients at L4: connection closed, no byte.
expect_l4_close() {
  local code
  code=$(curl -s -o /dev/null -m 5 -w '%{http_code}' "http://127.0.0.1:$1/") || true
  [[ "$code" == 000 ]] || die "port $1: untrusted client should be closed at L4, got HTTP $code"
  log "port $1: closed at L4 with the list that lacks 127.0.0.0/8, as expected"
}

# check_tls PORT : TLS 1.3 with the generated certificate, body "ok" from a backend.
check_tls() {
  local port=$1 body
  body=$(curl -s -m 5 --tlsv1.3 --cacert "$WORK/tls/cert.pem" "https://localhost:$port/") \
    || die "TLS 1.3 curl to $port failed"
  [[ "$body" == "ok" ]] || die "unexpected body from https port $port: $body"
  log "https port $port ok (TLS 1.3)"
}

acl_label="acl${ACL_SIZE}"
# 1. Start every target on its own port.
for target in $TARGETS; do
  STARTUP_MS="" TARGET_CMD=""
  case $target in
    spaced-noacl)
      spaced_config spaced-noacl 'listen = ["127.0.0.1:8090"]'
      start_spaced spaced-noacl 8090 "$WORK/spaced-noacl.toml"
      port=8090 scheme=http label=spaced-noacl ;;
    spaced-acl)
      spaced_config spaced-deny 'listen = ["127.0.0.1:8091"]' "$WORK/acl/acl_nolo.lst"
      start_spaced spaced-deny 8091 "$WORK/spaced-deny.toml"
      expect_l4_close 8091; stop_pid "$TARGET_PID"
      spaced_config spaced-acl 'listen = ["127.0.0.1:8091"]' "$WORK/acl/acl.lst"
      start_spaced spaced-acl 8091 "$WORK/spaced-acl.toml"
      port=8091 scheme=http label="spaced-$acl_label" ;;
    nginx-acl)
      start_nginx_proxy nginx-deny 8082 "$WORKERS" "$WORK/acl/acl_nolo_nginx.conf"
      expect_403 8082; stop_pid "$TARGET_PID"
      start_nginx_proxy nginx-acl 8082 "$WORKERS" "$WORK/acl/acl_nginx.conf"
      port=8082 scheme=http label="nginx-$acl_label" ;;
    haproxy-acl)
      start_haproxy haproxy-deny 8083 "$WORKERS" "$WORK/acl/acl_nolo.lst"
      expect_403 8083; stop_pid "$TARGET_PID"
      start_haproxy haproxy-acl 8083 "$WORKERS" "$WORK/acl/acl.lst"
      port=8083 scheme=http label="haproxy-$acl_label" ;;
    spaced-tls)
      spaced_config spaced-tls 'tls_listen = ["127.0.0.1:8443"]'
      start_spaced spaced-tls 8443 "$WORK/spaced-tls.toml"
      port=8443 scheme=https label=spaced-tls13 ;;
    nginx-tls)
      start_nginx_tls nginx-tls 8444 "$WORKERS"
      port=8444 scheme=https label=nginx-tls13 ;;
    haproxy-tls)
      start_haproxy_tls haproxy-tls 8445 "$WORKERS"
      port=8445 scheme=https label=haproxy-tls13 ;;
    *) die "unknown target $target" ;;
  esac
  if [[ "$scheme" == https ]]; then
    check_tls "$port"
    register_target "$label" "$TARGET_PID" "https://localhost:$port/"
  else
    check_proxy "$port" 3
    register_target "$label" "$TARGET_PID" "http://127.0.0.1:$port/"
  fi
done

# wrk_new_run SUITE VARIANT LABEL RUN : like wrk_run, every request on a new connection
# (the L4 check per request). Recorded under the target name with a "-newconn" suffix.
wrk_new_run() {
  local suite=$1 variant=$2 target=$3 run=$4 out c0 c1 cpu rps p50 p99 reqs errs non2xx
  local url=${TGT_URL[$target]} pid=${TGT_PID[$target]}
  local wrk_cmd=(wrk "-t$WRK_THREADS" "-c$CONNS" "-d${DURATION}s" --latency -H "Connection: close" "$url")
  out="$WORK/wrk-new-$target-$run.txt"
  c0=$(tree_cpu_s "$pid")
  "${PIN_LOAD[@]}" "${wrk_cmd[@]}" >"$out"
  c1=$(tree_cpu_s "$pid")
  read -r rps p50 p99 reqs errs non2xx < <($PYTHON "$HARNESS" parse-wrk "$out")
  cpu=$(awk -v a="$c0" -v b="$c1" -v n="$reqs" 'BEGIN{printf "%.2f", (b-a)*1e6/n}')
  local cmdline; cmdline=$(shjoin "${PIN_LOAD[@]}" "${wrk_cmd[@]}")
  record "$suite" "$variant" "$target-newconn" "$run" rps "$rps" req/s "$cmdline"
  record "$suite" "$variant" "$target-newconn" "$run" p50 "$p50" ms ""
  record "$suite" "$variant" "$target-newconn" "$run" p99 "$p99" ms ""
  record "$suite" "$variant" "$target-newconn" "$run" errors $(( errs + non2xx )) count ""
  record "$suite" "$variant" "$target-newconn" "$run" cpu_us_per_req "$cpu" us ""
  log "$suite/$variant/$target-newconn run $run: $rps req/s p50=${p50}ms p99=${p99}ms cpu/req=${cpu}us errors=$errs"
}

# 2. Warm up each, then RUNS interleaved rounds (order rotated each round).
for t in "${TGT_LABELS[@]}"; do wrk_warm "${TGT_URL[$t]}"; done
for run in $(seq "$RUNS"); do
  for t in $(rotated $(( run - 1 )) "${TGT_LABELS[@]}"); do
    wrk_run router-tls-acl "$VARIANT" "$t" "$run"
    if [[ "$CONNS_NEW" == 1 && "${TGT_URL[$t]}" == http://* ]]; then
      wrk_new_run router-tls-acl "$VARIANT" "$t" "$run"
    fi
  done
done
for t in "${TGT_LABELS[@]}"; do target_info router-tls-acl "$VARIANT" "$t"; done
log "done: $RESULT_FILE"
