#!/bin/bash
# router_ab.sh OLD_BIN NEW_BIN [ROUNDS] [SECONDS]: CPU per proxied request of two builds of
# spaced, interleaved. Both run at once, pinned on CPU 0 (one worker each, the config of
# sut_http.sh), and wrk and the 3 nginx backends on CPU 1. Then ROUNDS (10) alternating wrk
# runs of SECONDS (5), keep-alive, 64 connections, each after 1 s of warm-up. Prints each
# round and the medians: req/s, CPU µs/request and its user-space part. On this host the
# speed swings between rounds by up to ~50 %, so only the same run's medians compare.
# Needs nginx, wrk, curl; ports 8190, 8191, 9101-9103.
set -euo pipefail
[[ $# -ge 2 ]] || { echo "usage: $0 OLD_BIN NEW_BIN [ROUNDS] [SECONDS]" >&2; exit 2; }
A=$1 B=$2 R=${3:-10} D=${4:-5}
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/backends_conf.sh"
pinned_backends abwork
backends=127.0.0.1:9101,127.0.0.1:9102,127.0.0.1:9103
mkdir "$W/a" "$W/b"
SPACED_WRAP="taskset -c 0" SPACED_BIN=$A SPACED_LOG=warn "$HERE/sut_http.sh" "$W/a" 8190 $backends 1 \
  >/dev/null 2>&1 & PA=$!
SPACED_WRAP="taskset -c 0" SPACED_BIN=$B SPACED_LOG=warn "$HERE/sut_http.sh" "$W/b" 8191 $backends 1 \
  >/dev/null 2>&1 & PB=$!
PIDS+=("$PA" "$PB")
for port in 8190 8191; do
  for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.2; done
done
ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
for r in $(seq "$R"); do
  for x in old new; do
    if [[ $x == old ]]; then port=8190 pp=$PA; else port=8191 pp=$PB; fi
    taskset -c 1 wrk -t1 -c64 -d1s "http://127.0.0.1:$port/" >/dev/null
    read -r u0 s0 <<<"$(ticks "$pp")"
    taskset -c 1 wrk -t1 -c64 -d"${D}s" "http://127.0.0.1:$port/" >"$W/w.out"
    read -r u1 s1 <<<"$(ticks "$pp")"
    n=$(awk '/requests in/{print $1}' "$W/w.out")
    awk -v x=$x -v r="$r" -v n="$n" -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v hz="$HZ" -v d="$D" \
      'BEGIN{printf "%s %d %.0f %.2f %.2f\n", x, r, n/d, (u+s)*1e6/hz/n, u*1e6/hz/n}'
  done
done | tee "$W/res" | awk '{printf "%s round %d: %s req/s, %s us/req (user %s)\n", $1, $2, $3, $4, $5}'
python3 - "$W/res" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
for x in ("old", "new"):
    cols = list(zip(*[[float(v) for v in r[2:]] for r in rows if r[0] == x]))
    rps, cpu, user = (statistics.median(c) for c in cols)
    print(f"{x} (median): {rps:.0f} req/s, {cpu:.2f} us/req, user {user:.2f}")
PY
