#!/bin/bash
# router_instructions.sh BIN [SECONDS]: user-space instructions (callgrind Ir) per proxied
# request of spaced, wrk keep-alive 64 connections to 3 nginx backends. Unlike CPU time it
# barely moves when other work shares the machine, so it compares two builds of the router
# reliably (benches/README.md, Router). TOP=N also prints the N functions with the most
# instructions of their own per request, and who calls memcpy (moves of large futures show
# there). SPACED_LOG=info turns request log lines on (default warn: off); they go to
# LOG_OUT (default /dev/null; a file is what an operator's setup does). Needs valgrind,
# nginx, wrk, curl; ports 8190, 9101-9103.
set -euo pipefail
[[ $# -ge 1 ]] || { echo "usage: $0 SPACED_BIN [SECONDS]" >&2; exit 2; }
BIN=$1; D=${2:-6}
W=$(mktemp -d /tmp/cgwork.XXXX)
source "$(dirname "$0")/backends_conf.sh"
backends_conf "$W"
nginx -p $W -c $W/b.conf & NG=$!
# The router config of the load suite (sut_http.sh), run under callgrind, one worker.
SPACED_WRAP="valgrind --tool=callgrind --compress-strings=no --callgrind-out-file=$W/cg.out" SPACED_BIN=$BIN SPACED_LOG=${SPACED_LOG:-warn} \
  "$(dirname "$0")/sut_http.sh" "$W" 8190 127.0.0.1:9101,127.0.0.1:9102,127.0.0.1:9103 1 >"${LOG_OUT:-/dev/null}" 2>$W/vg.err & VG=$!
for i in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:8190/ && break; sleep 0.3; done
wrk -t1 -c64 -d2s http://127.0.0.1:8190/ >/dev/null
callgrind_control -z $VG >/dev/null
N=$(wrk -t1 -c64 -d${D}s http://127.0.0.1:8190/ | awk '/requests in/{print $1}')
callgrind_control -d $VG >/dev/null
sleep 0.5
F=$(ls -S $W/cg.out.* | head -1)
IR=$(callgrind_annotate $F 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",","",$1); print $1}')
echo "$(basename $BIN): requests=$N Ir=$IR Ir/req=$((IR / N))"
if [[ -n "${TOP:-}" ]]; then
  python3 - "$F" "$N" "$TOP" <<'PY'
import collections, sys
path, n, top = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
own = collections.Counter(); memcpy = collections.Counter()
fn = cfn = None; call = False
for line in open(path, errors="replace"):
    line = line.rstrip("\n")
    if line.startswith("fn="): fn = line[3:]; continue
    if line.startswith("cfn="): cfn = line[4:]; continue
    if line.startswith("calls="): call = True; continue
    if line and (line[0].isdigit() or line[0] in "+-*"):
        p = line.split()
        if len(p) < 2: continue
        if call:
            if cfn and "memcpy" in cfn: memcpy[fn] += int(p[1])
            call = False
        elif fn: own[fn] += int(p[1])
total = sum(own.values())
print(f"top {top} functions, own instructions per request:")
for f, c in own.most_common(top): print(f"{c / n:8.0f} {100 * c / total:5.1f} %  {f[:120]}")
print("memcpy, by caller, per request:")
for f, c in memcpy.most_common(5): print(f"{c / n:8.0f}  {f[:120]}")
PY
fi
kill $VG $NG 2>/dev/null; wait 2>/dev/null || true
rm -rf $W
