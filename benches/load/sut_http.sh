#!/usr/bin/env bash
# sut_http.sh WORKDIR PORT BACKENDS [WORKERS]
#
# Runs spaced as the HTTP reverse proxy under test of router.sh (or of the peers' http.sh
# through SUT_HTTP_CMD='benches/load/sut_http.sh {WORKDIR} {PORT} {BACKENDS} {WORKERS}').
#
# Writes WORKDIR/spaced-http-PORT/spaced.toml (a directory of its own: spaced watches its
# config's directory, and every write to a file there, such as the harness's logs in
# WORKDIR, would wake its watcher thread): one router listener on 127.0.0.1:PORT, one app whose
# hosts match what wrk and curl send (`Host: 127.0.0.1:PORT`; the router ignores the port,
# so the host `127.0.0.1` matches, and `localhost` for curl by name), and one web dyno per
# BACKENDS entry (comma-separated ip:port). Round robin, like the nginx/haproxy peers
# (and so that the harness's check sees every backend in six requests); SPACED_BALANCE
# overrides it (least-request, random).
#
# Then execs `spaced run` (SPACED_BIN overrides target/release/spaced) so the harness's
# PID is spaced's own. SPACED_LOG (default warn) is RUST_LOG: no per-request log line, as
# the peers run with access logs off. WORKERS (4th argument, or SPACED_WORKERS) sets the
# runtime's worker threads through TOKIO_WORKER_THREADS; unset, tokio uses one per CPU
# the process may run on (1 when pinned with taskset).
set -euo pipefail
[[ $# -ge 3 && $# -le 4 ]] || { echo "usage: $0 WORKDIR PORT BACKENDS [WORKERS]" >&2; exit 2; }
work=$1 port=$2 backends=$3 workers=${4:-${SPACED_WORKERS:-}}
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin="${SPACED_BIN:-$repo/target/release/spaced}"
[[ -x "$bin" ]] || { echo "sut_http.sh: $bin is missing (cargo build --release)" >&2; exit 1; }
[[ "$port" =~ ^[0-9]+$ ]] || { echo "sut_http.sh: bad port '$port'" >&2; exit 2; }

mkdir -p "$work/spaced-http-$port"
conf="$work/spaced-http-$port/spaced.toml"
{
  printf '[space]\nname = "bench"\ninternal = ["127.0.0.0/8"]\n\n'
  printf '[router]\nlisten = ["127.0.0.1:%s"]\nbalance = "%s"\nmax_connections = 100000\n\n' \
    "$port" "${SPACED_BALANCE:-round-robin}"
  printf '[router.timeouts]\nkeepalive = "120s"\npool_idle = "120s"\n\n'
  printf '[[app]]\nname = "bench"\nhosts = ["127.0.0.1", "localhost"]\n'
  IFS=',' read -ra addrs <<<"$backends"
  for a in "${addrs[@]}"; do
    [[ -z "$a" ]] && continue
    printf '\n[[app.dyno]]\nprocess = "web"\naddr = "%s"\n' "$a"
  done
  # SPACED_EXTRA_TOML (optional) is appended: [logging], [[drain]] for benches/load/logs.sh.
  printf '\n%s\n' "${SPACED_EXTRA_TOML:-}"
} >"$conf"

export RUST_LOG="${SPACED_LOG:-warn}"
if [[ -n "$workers" ]]; then
  export TOKIO_WORKER_THREADS="$workers"
fi
# SPACED_WRAP (optional) runs it under a tool, e.g. valgrind (router_instructions.sh).
# shellcheck disable=SC2086
exec ${SPACED_WRAP:-} "$bin" run --config "$conf"
