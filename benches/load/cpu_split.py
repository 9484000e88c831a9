#!/usr/bin/env python3
"""Where a proxy's CPU per request goes, user space against kernel: spaced, nginx and
HAProxy side by side (stdlib only), for the loads where issue 22 asks spaced to spend
0.8-0.85x the faster peer's CPU. It shows how much of that budget the kernel's share
alone already takes, which is the floor no user-space change can go below.

Loads (MODES, default "close h2"):
  close  HTTP/1.1 `Connection: close`, one request per connection (wrk, 64 connections)
  h2     HTTP/2 over TLS 1.3, ECDSA P-256 (h2load, CONNS x STREAMS, default 32 x 32)
  ka     HTTP/1.1 keep-alive (wrk, 64 connections), for comparison

Each proxy runs with one worker pinned to CPU 0; the load generator and one nginx
backend (`200 ok`, keep-alive) on CPU 1. The proxies' utime and stime (/proc/PID/stat, of
the process and its children) are read around each round; rounds interleave the targets
(RUNS, SECS). Prints per round and then medians: req/s, user us/req, system us/req,
total, and for spaced the kernel's share against the faster peer's total.

  cpu_split.py [--spaced target/release/spaced]     (RUNS=3 SECS=8 MODES="close h2")

Ports 9721-9733. Needs nginx, haproxy, wrk, h2load, openssl, taskset.
"""
import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

RUNS = int(os.environ.get("RUNS", "3"))
SECS = int(os.environ.get("SECS", "8"))
CONNS = int(os.environ.get("CONNS", "32"))
STREAMS = int(os.environ.get("STREAMS", "32"))
MODES = os.environ.get("MODES", "close h2").split()
HZ = os.sysconf("SC_CLK_TCK")
BACKEND = 9721
PLAIN = {"nginx": 9722, "haproxy": 9723, "spaced": 9724}
TLS = {"nginx": 9731, "haproxy": 9732, "spaced": 9733}


def times(pid):
    """(user, system) seconds of `pid` and its children (nginx's worker, HAProxy's)."""
    kids = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    u = s = 0.0
    for p in [pid, *map(int, kids)]:
        try:
            f = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        u += int(f[11]) / HZ
        s += int(f[12]) / HZ
    return u, s


def wait_port(port):
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"port {port} never opened")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spaced", default=os.environ.get("SPACED_BIN", "target/release/spaced"))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cpu-split-"))
    procs = []

    def start(cmd, cpu, env=None):
        log = open(work / f"{len(procs)}.log", "wb")
        p = subprocess.Popen(["taskset", "-c", str(cpu), *cmd], stdout=log, stderr=subprocess.STDOUT,
                             env={**os.environ, **(env or {})}, start_new_session=True)
        procs.append(p)
        return p

    key, crt = work / "k.pem", work / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", str(key), "-out", str(crt), "-days", "2", "-subj", "/CN=bench.test",
                    "-addext", "subjectAltName=DNS:bench.test,IP:127.0.0.1"], check=True, capture_output=True)
    (work / "both.pem").write_text(crt.read_text() + key.read_text())
    (work / "be.conf").write_text(
        f"worker_processes 1; pid {work}/be.pid; error_log {work}/be.err; events {{ worker_connections 8192; }}"
        f" http {{ access_log off; keepalive_requests 1000000;"
        f" server {{ listen 127.0.0.1:{BACKEND}; location / {{ return 200 ok; }} }} }}")
    (work / "ng.conf").write_text(f"""worker_processes 1; pid {work}/ng.pid; error_log {work}/ng.err;
events {{ worker_connections 8192; }}
http {{ access_log off; keepalive_requests 1000000; http2_max_requests 10000000;
 upstream be {{ server 127.0.0.1:{BACKEND}; keepalive 64; keepalive_requests 1000000; }}
 server {{ listen 127.0.0.1:{PLAIN['nginx']}; listen 127.0.0.1:{TLS['nginx']} ssl http2;
  ssl_certificate {crt}; ssl_certificate_key {key}; ssl_protocols TLSv1.3;
  http2_max_concurrent_streams 128;
  location / {{ proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection ""; }} }} }}""")
    (work / "hap.cfg").write_text(
        "global\n  nbthread 1\n  maxconn 8000\ndefaults\n  mode http\n  timeout connect 5s\n"
        "  timeout client 30s\n  timeout server 30s\nfrontend fe\n"
        f"  bind 127.0.0.1:{PLAIN['haproxy']}\n"
        f"  bind 127.0.0.1:{TLS['haproxy']} ssl crt {work}/both.pem alpn h2,http/1.1 ssl-min-ver TLSv1.3\n"
        f"  default_backend be\nbackend be\n  http-reuse always\n  server b1 127.0.0.1:{BACKEND}\n")
    (work / "sp.toml").write_text(
        f'[space]\nname="b"\ninternal=["127.0.0.0/8"]\n[router]\nlisten=["127.0.0.1:{PLAIN["spaced"]}"]\n'
        f'tls_listen=["127.0.0.1:{TLS["spaced"]}"]\n[[tls]]\ncert="{crt}"\nkey="{key}"\n'
        f'[[app]]\nname="b"\nhosts=["bench.test","127.0.0.1"]\n[[app.dyno]]\nprocess="web"\n'
        f'addr="127.0.0.1:{BACKEND}"\n')
    try:
        start(["nginx", "-p", str(work), "-c", str(work / "be.conf"), "-g", "daemon off;"], 1)
        targets = {
            "nginx": start(["nginx", "-p", str(work), "-c", str(work / "ng.conf"), "-g", "daemon off;"], 0),
            "haproxy": start(["haproxy", "-db", "-f", str(work / "hap.cfg")], 0),
            "spaced": start([args.spaced, "run", "--config", str(work / "sp.toml")], 0,
                            {"RUST_LOG": "warn", "TOKIO_WORKER_THREADS": "1"}),
        }
        for port in [BACKEND, *PLAIN.values(), *TLS.values()]:
            wait_port(port)
        names = list(targets)
        for mode in MODES:
            res = {}
            for run in range(RUNS):
                for n in names[run % 3:] + names[:run % 3]:
                    if mode == "h2":
                        # No --warm-up-time: its requests are not counted, but its CPU
                        # would be (the ratios held; the absolute figures were ~1/8 high).
                        cmd = ["h2load", "-c", str(CONNS), "-m", str(STREAMS), "-D", str(SECS),
                               f"https://127.0.0.1:{TLS[n]}/"]
                    else:
                        extra = ["-H", "Connection: close"] if mode == "close" else []
                        cmd = ["wrk", "-t1", "-c64", f"-d{SECS}s", *extra, f"http://127.0.0.1:{PLAIN[n]}/"]
                    u0, s0 = times(targets[n].pid)
                    t0 = time.monotonic()
                    out = subprocess.run(["taskset", "-c", "1", *cmd], capture_output=True, text=True).stdout
                    wall = time.monotonic() - t0
                    u1, s1 = times(targets[n].pid)
                    if mode == "h2":
                        m = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", out)
                        done, secs = (int(m.group(1)) if m else 0), SECS
                    else:
                        m = re.search(r"(\d+) requests in", out)
                        done, secs = (int(m.group(1)) if m else 0), wall
                    d = max(done, 1)
                    row = (done / secs, (u1 - u0) / d * 1e6, (s1 - s0) / d * 1e6)
                    res.setdefault(n, []).append(row)
                    print(f"{mode} run {run + 1} {n:8s} {row[0]:9,.0f} req/s  user {row[1]:5.1f}  "
                          f"sys {row[2]:5.1f}  total {row[1] + row[2]:5.1f} us/req", flush=True)
            print(f"\n{mode}: medians of {RUNS} (us of proxy CPU per request)")
            med = {n: tuple(statistics.median(r[i] for r in res[n]) for i in range(3)) for n in names}
            for n in names:
                rps, u, s = med[n]
                print(f"  {n:8s} {rps:9,.0f} req/s  user {u:5.1f}  sys {s:5.1f}  total {u + s:5.1f}")
            peer = min(med["nginx"][1] + med["nginx"][2], med["haproxy"][1] + med["haproxy"][2])
            _, su, ss = med["spaced"]
            print(f"  spaced total / faster peer {(su + ss) / peer:.2f}x; spaced's kernel part alone "
                  f"{ss / peer:.2f}x; at 0.8x the user part could spend {0.8 * peer - ss:.1f} us "
                  f"(today {su:.1f}), at 0.85x {0.85 * peer - ss:.1f} us\n", flush=True)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    main()
