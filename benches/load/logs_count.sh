# Sourced by logs.sh (MODE=count): the count side of the logs bench. Uses logs.sh's W,
# HERE, DRAINS and its receivers. count_main BIN [SECONDS].
count_main() {
  local bin=${1:?usage: MODE=count logs.sh SPACED_BIN [SECONDS]} secs=${2:-4}
  local port=${COUNT_PORT:-8290} url
  url=http://127.0.0.1:$port/
  # The 3 backends on 9201-9203 (backends_conf's, moved so router_instructions.sh can run
  # at the same time).
  source "$HERE/backends_conf.sh"
  backends_conf "$W"
  sed -i 's/91\(0[123]\)/92\1/g' "$W/b.conf"
  nginx -p "$W" -c "$W/b.conf" &
  local ng=$!
  local backends=127.0.0.1:9201,127.0.0.1:9202,127.0.0.1:9203
  # stdout goes to a file outside the config's directory: spaced watches that directory,
  # and a log written beside the config wakes the watcher at every write (about 500
  # instructions a request on the watcher thread and the worker, counted before this).
  mkdir -p "$W/out"
  for mode in ${COUNT_MODES:-off on}; do
    local log=warn extra=""
    [[ $mode == on ]] && log=info extra=$DRAINS
    # 1. Instructions: callgrind, one file per thread.
    rm -f "$W"/cg-$mode.out*
    SPACED_WRAP="valgrind --tool=callgrind --separate-threads=yes --compress-strings=no --callgrind-out-file=$W/cg-$mode.out" \
      SPACED_BIN=$bin SPACED_LOG=$log SPACED_EXTRA_TOML=$extra \
      "$HERE/sut_http.sh" "$W" "$port" "$backends" 1 >"$W/out/stdout-$mode.log" 2>"$W/vg.err" &
    local vg=$!
    wait_up "$url"
    # aws-lc seeds its RNG from CPU jitter at the HTTPS drain's first handshake, which
    # takes minutes under valgrind and holds the runtime's one worker: wait it out, so
    # the count is of requests and lines alone.
    if [[ $mode == on ]]; then wait_drained "$url" 300; fi
    wrk -t1 -c64 -d2s "$url" >/dev/null
    callgrind_control -z $vg >/dev/null 2>&1
    local n
    n=$(wrk -t1 -c64 -d"${secs}s" "$url" | tee "$W/wrk-cg-$mode.txt" | awk '/requests in/{print $1}')
    callgrind_control -d $vg >/dev/null 2>&1
    sleep 1
    python3 - "$W" "$n" "$mode" <<'PY'
import glob, sys, collections
w, n, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
per = collections.Counter(); names = {}
# The dump after zeroing (cg-MODE.out.1-TT, one per thread TT), not the files a stop
# writes. KEEP_WORK=1 keeps them for callgrind_annotate.
for f in glob.glob(f"{w}/cg-{mode}.out.1-*"):
    tid = f.rsplit("-", 1)[1]; total = 0; name = None
    for line in open(f, errors="replace"):
        if line.startswith(("summary:", "totals:")): total = int(line.split()[1])
        if name is None and line.startswith("fn="):
            if "spaced_logs::stdout::run" in line: name = "stdout writer"
            elif "multi_thread::worker" in line: name = "runtime worker"
    per[tid] += total; names[tid] = name or "other"
tot = sum(per.values())
print(f"logs {mode}: requests={n} Ir={tot} Ir/req={tot // max(n, 1)}")
for t, c in sorted(per.items(), key=lambda x: -x[1])[:6]:
    if c: print(f"  thread {t} ({names[t]}): Ir/req={c // max(n, 1)}")
PY
    kill $vg 2>/dev/null; wait $vg 2>/dev/null || true
    # 2. System calls and context switches on the bare binary.
    SPACED_BIN=$bin SPACED_LOG=$log SPACED_EXTRA_TOML=$extra \
      "$HERE/sut_http.sh" "$W" "$port" "$backends" 1 >"$W/out/stdout-$mode.log" 2>"$W/sut.err" &
    local sp=$!
    wait_up "$url"
    wrk -t1 -c64 -d2s "$url" >/dev/null
    perf stat -x, -e raw_syscalls:sys_enter,context-switches -p $sp -o "$W/ps.txt" &
    local ps=$!
    sleep 0.2
    n=$(wrk -t1 -c64 -d"${secs}s" "$url" | awk '/requests in/{print $1}')
    kill -INT $ps; wait $ps 2>/dev/null || true
    awk -F, -v n="$n" -v m="$mode" '$3 ~ /raw_syscalls|context-switches/ {printf "logs %s: %s per request %.3f (%s in %s requests)\n", m, $3, $1 / n, $1, n}' "$W/ps.txt"
    if [[ -n ${PROFILE:-} ]]; then
      perf record -q -F 499 -e cpu-clock -g -p $sp -o "$W/perf-$mode.data" -- sleep "$secs" &
      local pr=$!
      wrk -t1 -c64 -d"${secs}s" "$url" >/dev/null
      wait $pr || true
      perf report -i "$W/perf-$mode.data" --no-children --sort comm,sym --stdio 2>/dev/null |
        grep -v '^#' | grep '%' | head -"${PROFILE_TOP:-40}" >"${PROFILE_OUT:-/tmp}/logs-profile-$mode.txt" || true
      echo "profile: ${PROFILE_OUT:-/tmp}/logs-profile-$mode.txt"
    fi
    kill $sp 2>/dev/null; wait $sp 2>/dev/null || true
  done
  echo "syslog lines: $(wc -l <"$W/syslog.out" 2>/dev/null || echo 0)"
  echo "https lines: $(cat "$W/https.count" 2>/dev/null || echo 0)"
  kill $ng 2>/dev/null || true
}

# wait_drained URL SECS: until a line sent now reaches the HTTPS receiver.
wait_drained() {
  local before after
  before=$(cat "$W/https.count" 2>/dev/null || echo 0)
  for _ in $(seq "$2"); do
    curl -s -o /dev/null -m 5 "$1" || true
    after=$(cat "$W/https.count" 2>/dev/null || echo 0)
    [[ $after -gt $before ]] && return 0
    sleep 1
  done
  echo "the HTTPS drain delivered nothing in $2 s" >&2
  return 1
}

wait_up() {
  for _ in $(seq 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.3; done
  echo "spaced did not answer on $1" >&2
  return 1
}
