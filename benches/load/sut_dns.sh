#!/usr/bin/env bash
# sut_dns.sh WORKDIR PORT RECORDS_FILE ZONE
#
# Runs spaced as the DNS system under test of resolver.sh (or the peers' dns.sh through
# SUT_DNS_CMD='benches/load/sut_dns.sh {WORKDIR} {PORT} {RECORDS_FILE} {ZONE}').
#
# The harness serves names directly under the zone (`h1.app.localspace A 127.1.0.1`). spaced
# has no static records: its names are `<process>.<app>.<domain>`. Splitting the zone at its
# first label maps the harness onto that shape exactly, with no query rewritten:
#   domain = "localspace", one app "app", one dyno per record: process "hN", addr IP:80
# so `hN.app.localspace` is the `hN` process of app `app` (one A record, its dyno's IP),
# and `nxI-….app.localspace` is NXDOMAIN like at the peers. (See benches/README.md.)
#
# Writes WORKDIR/spaced-dns.toml, then execs `spaced run` (SPACED_BIN overrides the binary,
# default target/release/spaced) so that the harness's PID is spaced's own.
set -euo pipefail
[[ $# -eq 4 ]] || { echo "usage: $0 WORKDIR PORT RECORDS_FILE ZONE" >&2; exit 2; }
work=$1 port=$2 records=$3 zone=$4
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin="${SPACED_BIN:-$repo/target/release/spaced}"
[[ -x "$bin" ]] || { echo "sut_dns.sh: $bin is missing (cargo build --release)" >&2; exit 1; }

app=${zone%%.*}
domain=${zone#*.}
if [[ "$app" == "$zone" || -z "$domain" || ! "$app" =~ ^[a-z0-9-]{1,30}$ ]]; then
  echo "sut_dns.sh: zone '$zone' must be <app>.<domain> with an app-name first label" >&2
  exit 1
fi

conf="$work/spaced-dns.toml"
{
  printf '[space]\nname = "bench"\ninternal = ["127.0.0.0/8"]\n\n'
  printf '[resolver]\nlisten = ["127.0.0.1:%s"]\ndomain = "%s"\n\n' "$port" "$domain"
  printf '[[app]]\nname = "%s"\n' "$app"
  while read -r name ip; do
    [[ -z "$name" ]] && continue
    label=${name%%.*}
    if [[ "${name#*.}" != "$zone" || ! "$label" =~ ^[a-z0-9-]{1,30}$ ]]; then
      echo "sut_dns.sh: record '$name' is not one label under $zone" >&2
      exit 1
    fi
    printf '\n[[app.dyno]]\nprocess = "%s"\naddr = "%s:80"\n' "$label" "$ip"
  done <"$records"
} >"$conf"

# No per-query log lines exist, but keep startup chatter down like the peers (SPACED_LOG).
export RUST_LOG="${SPACED_LOG:-warn}"
exec "$bin" run --config "$conf"
