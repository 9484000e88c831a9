#!/usr/bin/env bash
# sut_egress.sh connect|socks WORKDIR PORT BIND_ADDR
#
# Runs spaced as the egress system under test of egress.sh (or of the peers' own egress.sh
# through SUT_CONNECT_CMD='benches/load/sut_egress.sh connect {WORKDIR} {PORT} {BIND_ADDR}'
# and SUT_SOCKS_CMD='benches/load/sut_egress.sh socks {WORKDIR} {PORT} {BIND_ADDR}').
#
# Writes WORKDIR/spaced-egress-<mode>.toml: the whole of 127.0.0.0/8 inside the space (the
# load driver connects from 127.0.0.1), nothing denied (the backends are on loopback, which
# the default deny list covers), one source IP: BIND_ADDR. No app, so no credentials: the
# driver's clients are served as in-space clients pinned by address, like the peers'
# unauthenticated setups. Then execs `spaced run` (SPACED_BIN overrides the binary, default
# target/release/spaced) so the harness's PID is spaced's own. SPACED_WORKERS: runtime
# worker threads (default 1; empty for one per CPU).
set -euo pipefail
[[ $# -eq 4 ]] || { echo "usage: $0 connect|socks WORKDIR PORT BIND_ADDR" >&2; exit 2; }
mode=$1 work=$2 port=$3 bind=$4
case $mode in
  connect) key=listen ;;
  socks)   key=socks_listen ;;
  *) echo "sut_egress.sh: mode must be connect or socks, not '$mode'" >&2; exit 2 ;;
esac
[[ "$port" =~ ^[0-9]+$ ]] || { echo "sut_egress.sh: bad port '$port'" >&2; exit 2; }
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin="${SPACED_BIN:-$repo/target/release/spaced}"
[[ -x "$bin" ]] || { echo "sut_egress.sh: $bin is missing (cargo build --release)" >&2; exit 1; }

conf="$work/spaced-egress-$mode.toml"
cat >"$conf" <<TOML
[space]
name = "bench"
internal = ["127.0.0.0/8"]

[egress]
$key = ["127.0.0.1:$port"]
source_ips = ["$bind"]
deny = []
TOML

# The peers run with per-connection logs off (squid access_log none, tinyproxy Critical,
# dante errors only): spaced's one line per tunnel goes too unless SPACED_LOG says otherwise.
export RUST_LOG="${SPACED_LOG:-warn}"
# One runtime worker by default, as the router suite runs spaced (WORKERS=1) and as squid
# serves from one process: the per-tunnel CPU is then the gateway's own work, without the
# multi-threaded runtime's hand-offs between workers (≈ 7 % of a tunnel on these 2 cores,
# benches/README.md "Egress"). SPACED_WORKERS= (empty) keeps tokio's default, one per CPU.
workers=${SPACED_WORKERS-1}
if [[ -n "$workers" ]]; then
  [[ "$workers" =~ ^[1-9][0-9]*$ ]] || { echo "sut_egress.sh: bad SPACED_WORKERS '$workers'" >&2; exit 2; }
  export TOKIO_WORKER_THREADS="$workers"
fi
exec "$bin" run --config "$conf"
