#!/usr/bin/env bash
# logs.sh: what request logs cost (issue 20). The router with logs on (RUST_LOG=info,
# stdout to a file, one HTTPS logplex drain and one syslog drain to local receivers)
# against itself with logs off, through router.sh's interleaved rounds, plus the peers:
# nginx with access_log buffered to a file and HAProxy logging to the local rsyslog over
# UDP (PEER_LOGS=1, which http_lib.sh's start_nginx_proxy/start_haproxy read); then
# (STDOUT_ONLY=1) spaced with stdout alone beside nginx, the same one sink on both sides.
# Do not run on a busy machine: the lead runs it on a quiet one.
#
# Usage:  cargo build --release; benches/load/logs.sh   [RUNS=3] [DURATION=10] [PINS="1"]
# Needs: everything router.sh needs, rsyslogd (Debian rsyslog), python3, openssl.
# Output: results/logs-*.tsv and router.sh's ratio tables; the receivers' line counts, and
#         spaced's drain metrics (sent/dropped per drain) after each run.
#
# MODE=count benches/load/logs.sh BIN [SECONDS]: counts instead of times, so it means
# something on a busy machine. For logs off and on (the same receivers and drains):
# user-space instructions per request (callgrind, every thread of spaced, and each
# thread's share), then, on the bare binary, system calls and context switches per request
# (perf stat's raw_syscalls tracepoint and software event) and, with PROFILE=1, a cpu-clock
# profile by thread and function (perf record). wrk keep-alive, 64 connections, one worker;
# ports COUNT_PORT (8290) and 9201-9203, apart from router_instructions.sh's. Needs
# valgrind, perf, nginx, wrk, curl.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
W="$(mktemp -d /tmp/logs-bench.XXXX)"
trap 'kill $(jobs -p) 2>/dev/null || true; [[ -n ${KEEP_WORK:-} ]] || rm -rf "$W"' EXIT

SYSLOG_PORT=${SYSLOG_PORT:-5514}
HTTPS_PORT=${HTTPS_PORT:-5443}

# rsyslog: TCP for spaced's syslog drain, UDP for HAProxy; both to a file.
cat >"$W/rsyslog.conf" <<CONF
global(workDirectory="$W")
module(load="imtcp")
module(load="imudp")
input(type="imtcp" address="127.0.0.1" port="$SYSLOG_PORT")
input(type="imudp" address="127.0.0.1" port="$SYSLOG_PORT")
*.* action(type="omfile" file="$W/syslog.out")
CONF
# The receivers run with the load side (RECEIVER_CPUS, default CPU 1: wrk and the
# backends), so what they spend is not taken from the proxy's core. Empty: unpinned.
RECEIVER_CPUS=${RECEIVER_CPUS-1}
# exec: run in the background, the function is a subshell, and the EXIT trap kills that pid.
pin() { if [[ -n $RECEIVER_CPUS ]]; then exec taskset -c "$RECEIVER_CPUS" "$@"; else exec "$@"; fi; }
pin rsyslogd -n -f "$W/rsyslog.conf" -i "$W/rsyslog.pid" &

# An HTTPS logplex receiver: counts the frames it is sent, answers 200. Its certificate says
# CA:FALSE: webpki refuses a CA certificate as the server's own (CaUsedAsEndEntity).
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$W/key.pem" -out "$W/cert.pem" \
  -days 1 -subj /CN=localhost -addext subjectAltName=DNS:localhost \
  -addext basicConstraints=critical,CA:FALSE 2>/dev/null
pin python3 - "$W" "$HTTPS_PORT" <<'PY' &
import http.server, ssl, sys
w, port = sys.argv[1], int(sys.argv[2])
count = 0
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        global count
        n = int(self.headers.get("Content-Length", 0)); self.rfile.read(n)
        count += int(self.headers.get("Logplex-Msg-Count", 0))
        open(f"{w}/https.count", "w").write(str(count))
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(f"{w}/cert.pem", f"{w}/key.pem")
s.socket = ctx.wrap_socket(s.socket, server_side=True)
s.serve_forever()
PY
sleep 1

# LOG_FORMAT=json: stdout lines as JSON (the drains' wire formats do not change).
DRAINS="[logging]
buffer = 10000
format = \"${LOG_FORMAT:-logfmt}\"

[[drain]]
url = \"https://localhost:$HTTPS_PORT/logs\"
ca = \"$W/cert.pem\"

[[drain]]
url = \"syslog://127.0.0.1:$SYSLOG_PORT\""

if [[ ${MODE:-timed} == count ]]; then
  source "$HERE/logs_count.sh"
  count_main "$@"
  exit 0
fi

# Logs off: the baseline (and the peers with theirs on).
PEER_LOGS=1 PEER_SYSLOG="127.0.0.1:$SYSLOG_PORT" SPACED_LOG=warn \
  RESULTS_DIR="${RESULTS_DIR:-$HERE/results}/logs-off" "$HERE/router.sh"
# Logs on: stdout to a file (router.sh's work dir, spaced.log), both drains. The peers,
# with their logs on, are in both runs.
PEER_LOGS=1 PEER_SYSLOG="127.0.0.1:$SYSLOG_PORT" SPACED_LOG=info SPACED_EXTRA_TOML="$DRAINS" \
  RESULTS_DIR="${RESULTS_DIR:-$HERE/results}/logs-on" "$HERE/router.sh"
# STDOUT_ONLY=1 (default): a third run with spaced writing its lines to stdout (a file) and
# no drain, the one sink nginx writes too, beside nginx; set 0 to skip it.
if [[ ${STDOUT_ONLY:-1} == 1 ]]; then
  PEER_LOGS=1 PEER_SYSLOG="127.0.0.1:$SYSLOG_PORT" SPACED_LOG=info TARGETS="${STDOUT_TARGETS:-nginx spaced}" \
    RESULTS_DIR="${RESULTS_DIR:-$HERE/results}/logs-stdout" "$HERE/router.sh"
fi
echo "syslog lines: $(wc -l <"$W/syslog.out" 2>/dev/null || echo 0)"
echo "https frames: $(cat "$W/https.count" 2>/dev/null || echo 0)"
