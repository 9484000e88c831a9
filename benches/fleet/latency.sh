#!/usr/bin/env bash
# Fleet change-to-served latency (docs/fleet.md, "Measuring"). Needs etcd (Debian's
# etcd-server) and a release build: cargo build --release. SPACED=path overrides the binary.
# Usage: benches/fleet/latency.sh [small|large|both] [CHANGES]
set -euo pipefail
cd "$(dirname "$0")/../.."
exec python3 benches/fleet/latency.py "$@"
