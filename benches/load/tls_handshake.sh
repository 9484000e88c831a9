#!/bin/bash
# tls_handshake.sh [SPACED_BIN]: TLS 1.3 handshakes per second and server CPU per handshake,
# spaced vs nginx vs HAProxy, one worker each pinned to CPU 0, the clients on CPU 1: ECDSA P-256 and RSA 2048, full handshakes and resumed ones (tickets).
# RUNS, SECS, CLIENTS as in tls_handshake.py. Needs nginx, haproxy, openssl, taskset;
# ports 9401, 9411-9413. Build first: cargo build --release.
# GEN=storm (the default): tls-storm clients (STORM_PROCS processes of CONCURRENCY
# connections each; built here if missing), which also report each server's share of its
# core and the clients' own CPU per handshake; GEN=s_time: CLIENTS s_time processes.
set -euo pipefail
HERE=$(dirname "$0")
export SPACED_BIN=${1:-${SPACED_BIN:-target/release/spaced}}
[[ -x $SPACED_BIN ]] || { echo "no spaced binary at $SPACED_BIN (cargo build --release)" >&2; exit 2; }
if [[ ${GEN:-storm} == storm && ! -x ${STORM_BIN:-target/release/tls-storm} ]]; then
  cargo build --release -p spaced-loadgen
fi
for key in ec rsa; do
  for mode in full resumed; do
    echo "== $key $mode"
    KEY_TYPE=$key MODE=$mode python3 "$HERE/tls_handshake.py"
  done
done
