#!/bin/bash
# tls_instructions.sh [N]: the server's user-space instructions (callgrind Ir) per TLS 1.3
# handshake, in memory (no sockets), for each crypto provider (ring, aws-lc-rs), key type
# (ECDSA P-256, RSA 2048) and kind (full, resumed by ticket). Only the server's calls are
# counted (examples/tls_handshake_instr.rs toggles collection on around them), so the
# figure is what the router's listener spends in rustls and the provider per handshake;
# unlike CPU time it barely moves when other work shares the machine. Needs valgrind and
# openssl. Builds the example with the bench profile (optimised, no LTO).
set -euo pipefail
N=${1:-20}
cd "$(dirname "$0")/../.."
cargo build -q --profile bench -p spaced-router --example tls_handshake_instr
BIN=${CARGO_TARGET_DIR:-target}/release/examples/tls_handshake_instr
W=$(mktemp -d /tmp/tlsinstr.XXXX)
trap 'rm -rf "$W"' EXIT
for key in ecdsa rsa; do
  if [[ $key == rsa ]]; then newkey=(-newkey rsa:2048); else newkey=(-newkey ec -pkeyopt ec_paramgen_curve:P-256); fi
  openssl req -x509 "${newkey[@]}" -nodes -keyout "$W/$key.key" -out "$W/$key.crt" -days 2 \
    -subj /CN=bench.test -addext subjectAltName=DNS:bench.test 2>/dev/null
done
printf '%-10s %-6s %-8s %12s\n' provider key kind Ir/handshake
for provider in ring aws-lc-rs; do
  for key in ecdsa rsa; do
    for kind in full resumed; do
      out=$W/cg.$provider.$key.$kind
      valgrind --tool=callgrind --collect-atstart=no \
        --toggle-collect='*tls_handshake_instr::counted_*' \
        --callgrind-out-file="$out" "$BIN" $provider $key $kind "$N" "$W/$key.crt" "$W/$key.key" \
        >/dev/null 2>"$W/vg.err" || { cat "$W/vg.err" >&2; exit 1; }
      ir=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",","",$1); print $1}')
      printf '%-10s %-6s %-8s %12d\n' $provider $key $kind $((ir / N))
    done
  done
done
