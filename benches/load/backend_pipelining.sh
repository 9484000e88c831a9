#!/bin/bash
# backend_pipelining.sh [SECONDS] [DEPTHS]: what HTTP/1.1 pipelining to the dyno would save
# the load side of router.sh. wrk and the backends' nginx share CPU 1 (as in the pinned
# router suite); wrk sends each of its 64 connections DEPTH requests at a time (the
# headers spaced adds to a proxied request), for DEPTH in DEPTHS ("1 2 4 8"). Prints req/s
# and the backend's CPU µs per request: the part of CPU 1's cost per request a proxy that
# pipelined to its dynos could lower (wrk's own part it cannot). A diagnostic: one round
# per depth, compare within a run. Needs nginx, wrk; ports 9101-9103.
set -euo pipefail
D=${1:-5} DEPTHS=${2:-"1 2 4 8"}
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/backends_conf.sh"
pinned_backends plwork
for _ in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:9101/ && break; sleep 0.2; done
worker=$(pgrep -P "${PIDS[0]}" | head -1)
cat >"$W/p.lua" <<'L'
init = function(args)
  local r = {}
  for i = 1, tonumber(args[1]) do
    r[i] = wrk.format("GET", "/", {
      ["X-Forwarded-For"] = "127.0.0.1", ["X-Forwarded-Proto"] = "http",
      ["X-Forwarded-Port"] = "8090", ["X-Request-Start"] = "1764442800123",
      ["X-Request-Id"] = "7c4a8d09-ca37-4b5e-9d2a-5f3c1e0b8a61", ["Via"] = "1.1 spaced" })
  end
  req = table.concat(r)
end
request = function() return req end
L
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
for depth in $DEPTHS; do
  taskset -c 1 wrk -t1 -c64 -d1s -s "$W/p.lua" http://127.0.0.1:9101/ -- "$depth" >/dev/null
  t0=$(ticks "$worker")
  taskset -c 1 wrk -t1 -c64 -d"${D}s" -s "$W/p.lua" http://127.0.0.1:9101/ -- "$depth" >"$W/w.out"
  t1=$(ticks "$worker")
  n=$(awk '/requests in/{print $1}' "$W/w.out")
  awk -v d="$depth" -v n="$n" -v t=$((t1 - t0)) -v hz="$HZ" -v s="$D" \
    'BEGIN{printf "depth=%d req/s=%.0f backend=%.2f us/req\n", d, n / s, t * 1e6 / hz / n}'
done
