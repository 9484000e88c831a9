#!/usr/bin/env bash
# router_loadside.sh [SECS] [TARGETS]: where the CPU of a proxied request goes, on both
# sides of the pinned router setup (the proxy on CPU 0; wrk and the nginx backend on CPU 1),
# with the targets, backends and configs of router.sh (lib.sh, http_lib.sh, sut_http.sh).
#
# Per target (nginx, haproxy, haproxy-spec, spaced; haproxy-tcp, an L4 relay, on request), over a 4 s window inside a SECS (>= 6)
# wrk run, keep-alive, 64 connections: req/s; CPU µs per request of the proxy (and its
# user-space part), wrk and the backend; each CPU's busy and softirq share; voluntary context switches and system calls
# per request of each process; then per socket role (segs.py, from `ss -ti` counters) TCP
# segments, pure ACKs and bytes per request. WRK_ARGS adds wrk options (e.g. a Lua script
# that sends `Connection: close`). A diagnostic, not a benchmark: one round, no
# interleaving; compare within one run. SPACED_BIN as for router.sh.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
SECS=${1:-7}
TARGETS=${2:-"nginx haproxy haproxy-spec spaced"}
(( SECS >= 6 )) || { echo "SECS must be >= 6 (the sample window is ~5 s)" >&2; exit 2; }
export PIN=1
source "$HERE/lib.sh"
source "$PEERS_DIR/http_lib.sh"

start_backends
ngw=$(pgrep -P "$BACKENDS_PID" | head -1)
declare -A PORT=() PROC=()
for t in $TARGETS; do
  case $t in
    nginx) start_nginx_proxy nginx-proxy 8080 1; PORT[$t]=8080
      PROC[$t]=$(pgrep -P "$TARGET_PID" | head -1) ;;
    haproxy) start_haproxy haproxy 8081 1; PORT[$t]=8081; PROC[$t]=$TARGET_PID ;;
    haproxy-spec) HAPROXY_SPEC_HEADERS=1 start_haproxy haproxy-spec 8082 1; PORT[$t]=8082
      PROC[$t]=$TARGET_PID ;;
    haproxy-tcp) HAPROXY_TCP=1 start_haproxy haproxy-tcp 8083 1; PORT[$t]=8083
      PROC[$t]=$TARGET_PID ;;
    spaced) start_http_sut spaced 8090 "$HERE/sut_http.sh {WORKDIR} {PORT} {BACKENDS} 1"
      PORT[$t]=8090; PROC[$t]=$TARGET_PID ;;
    *) die "unknown target $t" ;;
  esac
  check_proxy "${PORT[$t]}" 3
done

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
uticks() { awk '{print $14}' "/proc/$1/stat"; }
vcs() { cat /proc/"$1"/task/*/status | awk '/^voluntary_ctxt_switches/{s += $2} END{print s}'; }
cpu() { awk -v c="cpu$1" '$1 == c {print $2 + $3 + $4 + $7 + $8, $8}' /proc/stat; }
syscalls() { awk '/raw_syscalls/{gsub(",", "", $1); print $1}' "$1"; }
for t in $TARGETS; do
  url="http://127.0.0.1:${PORT[$t]}/" pp=${PROC[$t]}
  # shellcheck disable=SC2086
  "${PIN_LOAD[@]}" wrk -t1 -c64 -d2s ${WRK_ARGS:-} "$url" >/dev/null
  # shellcheck disable=SC2086
  "${PIN_LOAD[@]}" wrk -t1 -c64 -d"${SECS}s" ${WRK_ARGS:-} "$url" >"$WORK/wrk.out" &
  wk=$!
  sleep 0.3
  python3 "$HERE/segs.py" snap "$WORK/s0.json"
  read -r u0 p0 b0 w0 vp0 vb0 vw0 <<<"$(uticks "$pp") $(ticks "$pp") $(ticks "$ngw") $(ticks "$wk") $(vcs "$pp") $(vcs "$ngw") $(vcs "$wk")"
  read -r c0 s0 <<<"$(cpu 0)"; read -r d0 t0 <<<"$(cpu 1)"
  pids=()
  for who in pp ngw wk; do
    perf stat -e raw_syscalls:sys_enter -p "${!who}" -o "$WORK/sys_$who.txt" -- sleep 4 &
    pids+=($!)
  done
  sleep 4
  python3 "$HERE/segs.py" snap "$WORK/s1.json"
  read -r u1 p1 b1 w1 vp1 vb1 vw1 <<<"$(uticks "$pp") $(ticks "$pp") $(ticks "$ngw") $(ticks "$wk") $(vcs "$pp") $(vcs "$ngw") $(vcs "$wk")"
  read -r c1 s1 <<<"$(cpu 0)"; read -r d1 t1 <<<"$(cpu 1)"
  wait "$wk" "${pids[@]}"
  rps=$(awk '/Requests\/sec/{print $2}' "$WORK/wrk.out")
  n=$(awk -v r="$rps" 'BEGIN{print r * 4}')
  awk -v t="$t" -v r="$rps" -v n="$n" -v hz="$CLK_TCK" \
    -v p="$((p1 - p0))" -v u="$((u1 - u0))" -v w="$((w1 - w0))" -v b="$((b1 - b0))" \
    -v c0="$((c1 - c0))" -v s0="$((s1 - s0))" -v c1="$((d1 - d0))" -v s1="$((t1 - t0))" \
    -v vp="$((vp1 - vp0))" -v vw="$((vw1 - vw0))" -v vb="$((vb1 - vb0))" \
    -v sp="$(syscalls "$WORK/sys_pp.txt")" -v sw="$(syscalls "$WORK/sys_wk.txt")" \
    -v sb="$(syscalls "$WORK/sys_ngw.txt")" 'BEGIN{
      us = 1e6 / hz / n
      printf "%s rps=%.0f proxy=%.1fus (user %.1f) wrk=%.1fus backend=%.1fus", t, r, p*us, u*us, w*us, b*us
      printf " | cpu0 busy=%.0f%% si=%.0f%% cpu1 busy=%.0f%% si=%.0f%%", c0*100/hz/4, s0*100/hz/4, c1*100/hz/4, s1*100/hz/4
      printf " | vcs/req p=%.3f w=%.3f b=%.3f | sys/req p=%.2f w=%.2f b=%.2f\n", vp/n, vw/n, vb/n, sp/n, sw/n, sb/n }'
  python3 "$HERE/segs.py" diff "$WORK/s0.json" "$WORK/s1.json" "${PORT[$t]}" "$n"
done
