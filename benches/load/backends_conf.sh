# Sourced by the stand-alone router diagnostics (router_instructions.sh, router_ab.sh,
# backend_pipelining.sh):
# backends_conf DIR writes DIR/b.conf, one nginx process serving the 3 backends of the load
# suite on 127.0.0.1:9101-9103 (`ok`, an X-Backend header), as lib.sh's start_backends does
# on 9001-9003 for the harness; run it with `nginx -p DIR -c DIR/b.conf`.
backends_conf() {
  cat >"$1/b.conf" <<C
worker_processes 1; pid $1/b.pid; error_log $1/b.err warn; daemon off;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
 server { listen 127.0.0.1:9101; add_header X-Backend 9101 always; location / { return 200 "ok\n"; } }
 server { listen 127.0.0.1:9102; add_header X-Backend 9102 always; location / { return 200 "ok\n"; } }
 server { listen 127.0.0.1:9103; add_header X-Backend 9103 always; location / { return 200 "ok\n"; } } }
C
}

# pinned_backends TAG: for the diagnostics that pin the load side to CPU 1 (router_ab.sh,
# backend_pipelining.sh). Makes the work dir W (/tmp/TAG.XXXX), starts those backends in it
# on CPU 1 (PIDS[0]), and on exit kills every pid in PIDS and removes W.
pinned_backends() {
  W=$(mktemp -d "/tmp/$1.XXXX")
  PIDS=()
  trap 'kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$W"' EXIT
  backends_conf "$W"
  taskset -c 1 nginx -p "$W" -c "$W/b.conf" &
  PIDS+=($!)
}
