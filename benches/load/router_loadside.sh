#!/bin/bash
# router_loadside.sh BIN [SECS] [TARGETS]: where the CPU of a proxied request goes, on both
# sides of the pinned router setup (the proxy on CPU 0; wrk and the nginx backend on CPU 1).
#
# Per target (nginx, haproxy, haproxy-hdr = haproxy doing spaced's header work, spaced BIN),
# over ~4 s of a SECS (>= 6) wrk run, keep-alive, 64 connections: req/s; CPU µs per request
# of the proxy, wrk and the backend; per-CPU busy and softirq share; voluntary context
# switches and system calls per request of each; then per socket role (segs.py, from
# `ss -ti` counters) TCP segments, pure ACKs and bytes per request. WRK_ARGS adds wrk
# options (e.g. `-s close.lua` for Connection: close). A diagnostic, not a benchmark: one
# round, no interleaving; compare within a run.
set -u
BIN=$1; D=${2:-7}; TARGETS=${3:-"nginx haproxy haproxy-hdr spaced"}
HERE="$(cd "$(dirname "$0")" && pwd)"
(( D >= 6 )) || { echo "SECS must be >= 6 (the sample window is ~5 s)" >&2; exit 2; }
W=$(mktemp -d /tmp/lswork.XXXX)
cat > $W/b.conf <<C
worker_processes 1; pid $W/b.pid; error_log $W/b.err warn; daemon off; worker_rlimit_nofile 65536;
events { worker_connections 16384; }
http { access_log off; keepalive_requests 1000000; keepalive_timeout 65s; sendfile on; tcp_nopush on; default_type text/plain;
 server { listen 127.0.0.1:9101 backlog=4096; add_header X-Backend 9101 always; location / { return 200 "ok\n"; } }
 server { listen 127.0.0.1:9102 backlog=4096; add_header X-Backend 9102 always; location / { return 200 "ok\n"; } }
 server { listen 127.0.0.1:9103 backlog=4096; add_header X-Backend 9103 always; location / { return 200 "ok\n"; } } }
C
cat > $W/p.conf <<C
worker_processes 1; pid $W/p.pid; error_log $W/p.err warn; daemon off; worker_rlimit_nofile 65536;
events { worker_connections 16384; }
http { access_log off; keepalive_requests 1000000; keepalive_timeout 65s;
 upstream be { server 127.0.0.1:9101; server 127.0.0.1:9102; server 127.0.0.1:9103; keepalive 64; keepalive_requests 1000000; }
 server { listen 127.0.0.1:8180 backlog=4096; location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
C
cat > $W/h.cfg <<C
global
    nbthread 1
    maxconn 8000
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 65s
frontend fe
    bind 127.0.0.1:8181 backlog 4096
    default_backend be
backend be
    balance roundrobin
    server s1 127.0.0.1:9101
    server s2 127.0.0.1:9102
    server s3 127.0.0.1:9103
C
cat > $W/h2.cfg <<C
global
    nbthread 1
    maxconn 8000
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 65s
frontend fe
    bind 127.0.0.1:8182 backlog 4096
    unique-id-format %[uuid()]
    unique-id-header X-Request-Id
    http-request add-header X-Forwarded-For %[src]
    http-request set-header X-Forwarded-Proto http
    http-request set-header X-Forwarded-Port %[dst_port]
    http-request set-header X-Request-Start %[date(0,ms)]
    http-request add-header Via "1.1 spaced"
    http-response set-header X-Request-Id %[unique-id]
    default_backend be
backend be
    balance roundrobin
    server s1 127.0.0.1:9101
    server s2 127.0.0.1:9102
    server s3 127.0.0.1:9103
C
cat > $W/spaced.toml <<T
[space]
name = "bench"
internal = ["127.0.0.0/8"]
[router]
listen = ["127.0.0.1:8190"]
balance = "round-robin"
max_connections = 100000
[router.timeouts]
keepalive = "120s"
pool_idle = "120s"
[[app]]
name = "bench"
hosts = ["127.0.0.1", "localhost"]
[[app.dyno]]
process = "web"
addr = "127.0.0.1:9101"
[[app.dyno]]
process = "web"
addr = "127.0.0.1:9102"
[[app.dyno]]
process = "web"
addr = "127.0.0.1:9103"
T
taskset -c 1 nginx -p $W -c $W/b.conf & NG=$!
taskset -c 0 nginx -p $W -c $W/p.conf & NP=$!
taskset -c 0 haproxy -db -f $W/h.cfg >/dev/null 2>&1 & HP=$!
taskset -c 0 haproxy -db -f $W/h2.cfg >/dev/null 2>&1 & HP2=$!
RUST_LOG=warn TOKIO_WORKER_THREADS=1 taskset -c 0 ${SPACED_WRAP:-} $BIN run --config $W/spaced.toml >/dev/null 2>$W/spaced.err & SP=$!
sleep 1
for port in 8180 8181 8182 8190; do for i in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:$port/ && break; sleep 0.2; done; done
ngw=$(pgrep -P $NG); npw=$(pgrep -P $NP)
ticks() { awk '{print $14+$15}' /proc/$1/stat; }
vcs() { cat /proc/$1/task/*/status | awk '/^voluntary_ctxt_switches/{s+=$2} END{print s}'; }
cpuline() { awk -v c=cpu$1 '$1==c{busy=$2+$3+$4+$7+$8; print busy, $7, $8}' /proc/stat; }
for t in $TARGETS; do
  case $t in nginx) port=8180; pp=$npw;; haproxy) port=8181; pp=$HP;; haproxy-hdr) port=8182; pp=$HP2;; spaced) port=8190; pp=$SP;; esac
  taskset -c 1 wrk -t1 -c64 -d2s ${WRK_ARGS:-} http://127.0.0.1:$port/ >/dev/null
  taskset -c 1 wrk -t1 -c64 -d${D}s ${WRK_ARGS:-} http://127.0.0.1:$port/ > $W/wrk.out & WK=$!
  sleep 0.3; wk=$(pgrep -P $WK || echo $WK); wk=$WK
  python3 $HERE/segs.py snap $W/s0.json; p0=$(ticks $pp); b0=$(ticks $ngw); w0=$(ticks $wk); c0=($(cpuline 0)); c1=($(cpuline 1)); vb0=$(vcs $ngw); vw0=$(vcs $wk); vp0=$(vcs $pp)
  perf stat -e raw_syscalls:sys_enter -p $ngw -o $W/ps_b.txt -- sleep 4 & P1=$!
  perf stat -e raw_syscalls:sys_enter -p $wk -o $W/ps_w.txt -- sleep 4 & P2=$!
  perf stat -e raw_syscalls:sys_enter -p $pp -o $W/ps_p.txt -- sleep 4 & P3=$!
  sleep 4
  python3 $HERE/segs.py snap $W/s1.json; p1=$(ticks $pp); b1=$(ticks $ngw); w1=$(ticks $wk); d0=($(cpuline 0)); d1=($(cpuline 1)); vb1=$(vcs $ngw); vw1=$(vcs $wk); vp1=$(vcs $pp)
  wait $WK $P1 $P2 $P3
  rps=$(awk '/Requests\/sec/{print $2}' $W/wrk.out)
  sb=$(awk '/raw_syscalls/{gsub(",","",$1);print $1}' $W/ps_b.txt); sw=$(awk '/raw_syscalls/{gsub(",","",$1);print $1}' $W/ps_w.txt); sp=$(awk '/raw_syscalls/{gsub(",","",$1);print $1}' $W/ps_p.txt)
  python3 - <<PY
rps=$rps; n=rps*4.0
us=lambda a,b:(b-a)*10000.0/n
print(f"$t rps={rps:.0f} proxy={us($p0,$p1):.1f}us wrk={us($w0,$w1):.1f}us backend={us($b0,$b1):.1f}us | cpu0 busy={(${d0[0]}-${c0[0]})/4:.0f}% si={(${d0[2]}-${c0[2]})/4:.0f}% cpu1 busy={(${d1[0]}-${c1[0]})/4:.0f}% si={(${d1[2]}-${c1[2]})/4:.0f}% irq={(${d1[1]}-${c1[1]})/4:.0f}% | vcs/req p={($vp1-$vp0)/n:.3f} w={($vw1-$vw0)/n:.3f} b={($vb1-$vb0)/n:.3f} | sys/req p={$sp/n:.2f} w={$sw/n:.2f} b={$sb/n:.2f}")
PY
  python3 $HERE/segs.py diff $W/s0.json $W/s1.json $port $(python3 -c "print($rps*4)")
done
kill $SP $HP $HP2 $NP $NG 2>/dev/null; wait 2>/dev/null; rm -rf $W
