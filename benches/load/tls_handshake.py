#!/usr/bin/env python3
"""TLS 1.3 handshake cost, side by side: spaced, nginx and HAProxy terminating TLS 1.3 (one
ECDSA P-256 or RSA 2048 certificate, KEY_TYPE=ec|rsa) in front of one backend, each pinned to
CPU 0 with one worker; CLIENTS processes of `openssl s_time -www /` on CPU 1, one request per
connection, either every handshake full (MODE=full, `-new`) or resumed by ticket
(MODE=resumed, `-reuse`). All three issue tickets in both modes (their defaults), so a
full handshake costs the same ticket work everywhere. Reports handshakes/s and the server's
CPU per handshake, medians of RUNS interleaved rounds. From shared/bench-peers, extended
with several clients (one s_time caps near 800 handshakes/s), tickets and resumption.

    SPACED_BIN=target/release/spaced python3 benches/load/tls_handshake.py
      [RUNS=3] [SECS=8] [KEY_TYPE=ec] [MODE=full] [CLIENTS=3]
      [GEN=storm|s_time] [STORM_BIN=target/release/tls-storm] [STORM_PROCS=1] [CONCURRENCY=32]
      [STORM_CPUS=1]

GEN=storm (the default since session 12: s_time costs the client ~760 us a handshake and
could not saturate any server) replaces the s_time clients with STORM_PROCS processes of `tls-storm`
(crates/loadgen, `cargo build --release -p spaced-loadgen`), on STORM_CPUS (CPU 1): each keeps
CONCURRENCY connections in flight on one thread and reports its own CPU per handshake, so
the output also says how much of its core each server used (100 % = the server, not the
client, set the rate) and what the clients spent.

Everything listens on 127.0.0.1; every process is started here and stopped by its PID.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = int(os.environ.get("RUNS", "3"))
SECS = int(os.environ.get("SECS", "8"))
KEY_TYPE = os.environ.get("KEY_TYPE", "ec")          # ec (P-256) or rsa (2048)
MODE = os.environ.get("MODE", "full")                 # full or resumed
CLIENTS = int(os.environ.get("CLIENTS", "3"))
GEN = os.environ.get("GEN", "storm")                  # storm (saturates the peers) or s_time
STORM = os.environ.get("STORM_BIN", "target/release/tls-storm")
STORM_PROCS = int(os.environ.get("STORM_PROCS", "1"))
STORM_CPUS = os.environ.get("STORM_CPUS", "1")       # taskset list for the tls-storm processes
CONCURRENCY = int(os.environ.get("CONCURRENCY", "32"))
SPACED = os.environ.get("SPACED_BIN", "target/release/spaced")
HZ = os.sysconf("SC_CLK_TCK")
procs: list[subprocess.Popen] = []


def cpu_seconds(pid: int) -> float:
    total = 0.0
    pids = [pid] + [int(p) for p in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                                                   text=True).stdout.split()]
    for p in pids:
        try:
            f = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(f[11]) + int(f[12])) / HZ
        except (OSError, IndexError):
            pass
    return total


def wait_port(port: int, timeout: float = 10) -> None:
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"port {port} did not open")


def start(cmd: list[str], log: Path, cpu: int = 0, env: dict | None = None) -> subprocess.Popen:
    p = subprocess.Popen(["taskset", "-c", str(cpu), *cmd], stdout=open(log, "wb"),
                         stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                         start_new_session=True)
    procs.append(p)
    return p


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="tlshs."))
    key, crt = work / "key.pem", work / "crt.pem"
    if KEY_TYPE == "rsa":
        newkey = ["-newkey", "rsa:2048"]
    else:
        newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    subprocess.run(["openssl", "req", "-x509", *newkey, "-nodes", "-keyout", str(key), "-out",
                    str(crt), "-days", "2", "-subj", "/CN=bench.test", "-addext",
                    "subjectAltName=DNS:bench.test",
                    # A server certificate, not req's default CA:TRUE: a verifying client
                    # (tls-storm, webpki) refuses a CA certificate as the end entity.
                    "-addext", "basicConstraints=critical,CA:FALSE"],
                   check=True, capture_output=True)
    (work / "both.pem").write_text(crt.read_text() + key.read_text())
    # One backend: nginx answering "ok".
    (work / "be.conf").write_text(f"""worker_processes 1; pid {work}/be.pid; error_log {work}/be.err;
events {{ worker_connections 4096; }}
http {{ access_log off; server {{ listen 127.0.0.1:9401; location / {{ return 200 "ok\\n"; }} }} }}
""")
    start(["nginx", "-p", str(work), "-c", str(work / "be.conf"), "-g", "daemon off;"], work / "be.log", cpu=1)
    (work / "ng.conf").write_text(f"""worker_processes 1; pid {work}/ng.pid; error_log {work}/ng.err;
events {{ worker_connections 16384; }}
http {{ access_log off;
  upstream be {{ server 127.0.0.1:9401; keepalive 64; }}
  server {{ listen 127.0.0.1:9411 ssl; ssl_certificate {crt}; ssl_certificate_key {key};
    ssl_protocols TLSv1.3; ssl_session_tickets on; ssl_session_cache off;
    location / {{ proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection ""; }} }} }}
""")
    (work / "hap.cfg").write_text(f"""global
  nbthread 1
  tune.ssl.default-dh-param 2048
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend fe
  bind 127.0.0.1:9412 ssl crt {work}/both.pem ssl-min-ver TLSv1.3
  default_backend be
backend be
  http-reuse always
  server b1 127.0.0.1:9401
""")
    (work / "sp.toml").write_text(f"""[space]
name = "bench"
internal = ["127.0.0.0/8"]
[router]
tls_listen = ["127.0.0.1:9413"]
[[tls]]
cert = "{crt}"
key = "{key}"
[[app]]
name = "bench"
hosts = ["bench.test", "127.0.0.1"]
[[app.dyno]]
process = "web"
addr = "127.0.0.1:9401"
""")
    targets = {
        "nginx": (start(["nginx", "-p", str(work), "-c", str(work / "ng.conf"), "-g", "daemon off;"],
                        work / "ng.log"), 9411),
        "haproxy": (start(["haproxy", "-db", "-f", str(work / "hap.cfg")], work / "hap.log"), 9412),
        "spaced": (start([SPACED, "run", "--config", str(work / "sp.toml")], work / "sp.log",
                         env={"RUST_LOG": "warn", "TOKIO_WORKER_THREADS": "1"}), 9413),
    }
    for _, (p, port) in targets.items():
        wait_port(port)
    results: dict[str, list[tuple[float, float]]] = {t: [] for t in targets}
    names = list(targets)
    if GEN == "storm":
        storm_rounds(targets, crt)
        return
    if GEN != "s_time":
        raise SystemExit(f"GEN={GEN}: s_time or storm")
    for run in range(RUNS):
        order = names[run % len(names):] + names[:run % len(names)]
        for t in order:
            p, port = targets[t]
            c0 = cpu_seconds(p.pid)
            clients = [subprocess.Popen(["taskset", "-c", "1", "openssl", "s_time", "-connect",
                                         f"127.0.0.1:{port}", "-tls1_3", "-www", "/",
                                         "-new" if MODE == "full" else "-reuse",
                                         "-time", str(SECS)],
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                        text=True) for _ in range(CLIENTS)]
            outs = [c.communicate()[0] for c in clients]
            c1 = cpu_seconds(p.pid)
            n = 0
            for out in outs:
                # s_time prints the -new and -reuse totals the same way; the last one is
                # the mode asked for.
                ms = re.findall(r"(\d+) connections in ([\d.]+) real seconds", out) or \
                    re.findall(r"(\d+) connections in ([\d.]+)s", out)
                if not ms:
                    print(f"{t}: could not parse s_time output: {out[-300:]}", file=sys.stderr)
                    continue
                n += int(ms[-1][0])
            secs = SECS
            results[t].append((n / secs, (c1 - c0) / max(n, 1) * 1e6))
            print(f"run {run + 1} {t}: {n / secs:,.0f} handshakes/s, {(c1 - c0) / max(n, 1) * 1e6:.0f} us CPU each",
                  flush=True)
    print(f"\nTLS 1.3 {MODE} handshakes ({KEY_TYPE}, {CLIENTS} clients), medians of {RUNS} rounds:")
    for t, rs in results.items():
        if rs:
            print(f"  {t:8s} {statistics.median(r[0] for r in rs):8,.0f} handshakes/s   "
                  f"{statistics.median(r[1] for r in rs):6.0f} us server CPU per handshake")


def storm_rounds(targets: dict, crt: Path) -> None:
    """RUNS interleaved rounds of STORM_PROCS tls-storm processes against each server.

    No warm-up inside tls-storm (`--warmup 0`): the server's CPU is read around the
    clients' whole lives and divided by every connection it answered (`ok` plus `tail`,
    the ones still in flight at the end), so the two count the same handshakes. With
    MODE=resumed the first CONCURRENCY connections are full (no ticket yet); `resumed`
    says how many were not.
    """
    if not os.access(STORM, os.X_OK):
        raise SystemExit(f"no tls-storm at {STORM} (cargo build --release -p spaced-loadgen)")
    cols = ("rate", "srv_us", "srv_core", "cli_us", "cli_cores")
    results: dict[str, list[dict]] = {t: [] for t in targets}
    names = list(targets)
    for run in range(RUNS):
        order = names[run % len(names):] + names[:run % len(names)]
        for t in order:
            p, port = targets[t]
            # --pin: the client trusts the bench certificate by its bytes, sparing itself a
            # signature check per handshake (the server's work is the same).
            cmd = ["taskset", "-c", STORM_CPUS, STORM, "--connect", f"127.0.0.1:{port}", "--sni",
                   "bench.test", "--ca", str(crt), "--pin", "--secs", str(SECS), "--warmup", "0",
                   "--concurrency", str(CONCURRENCY)] + (["--resume"] if MODE == "resumed" else [])
            c0, w0 = cpu_seconds(p.pid), time.monotonic()
            clients = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True) for _ in range(STORM_PROCS)]
            outs = [c.communicate() for c in clients]
            c1, w1 = cpu_seconds(p.pid), time.monotonic()
            reps = []
            for out, err in outs:
                try:
                    reps.append(json.loads(out.strip().splitlines()[-1]))
                except (IndexError, ValueError):
                    print(f"{t}: no report from tls-storm: {err[-300:]}", file=sys.stderr)
            if not reps:
                continue
            ok = sum(r["ok"] for r in reps)
            served = ok + sum(r["tail"] for r in reps)
            errors = sum(r["errors"] for r in reps)
            resumed = sum(r["resumed"] for r in reps)
            row = {
                "rate": ok / SECS,
                "srv_us": (c1 - c0) / max(served, 1) * 1e6,
                # The share of its one core the server used while the clients ran.
                "srv_core": (c1 - c0) / (w1 - w0) * 100,
                "cli_us": statistics.mean(r["client_cpu_us_per_handshake"] for r in reps),
                "cli_cores": sum(r["client_cpu_cores"] for r in reps),
            }
            results[t].append(row)
            first = next((r["first_error"] for r in reps if r.get("first_error")), None)
            print(f"run {run + 1} {t}: {row['rate']:,.0f} handshakes/s, {row['srv_us']:.0f} us "
                  f"server CPU each ({row['srv_core']:.0f} % of its core); clients "
                  f"{row['cli_us']:.0f} us each ({row['cli_cores']:.2f} cores); resumed "
                  f"{resumed}/{ok}, errors {errors}" + (f" (first: {first})" if first else ""),
                  flush=True)
    print(f"\nTLS 1.3 {MODE} handshakes ({KEY_TYPE}, {STORM_PROCS} tls-storm x {CONCURRENCY}), "
          f"medians of {RUNS} rounds:")
    for t, rs in results.items():
        if rs:
            m = {c: statistics.median(r[c] for r in rs) for c in cols}
            print(f"  {t:8s} {m['rate']:8,.0f} handshakes/s   {m['srv_us']:6.0f} us server CPU per "
                  f"handshake ({m['srv_core']:3.0f} % of its core)   client {m['cli_us']:4.0f} us "
                  f"per handshake ({m['cli_cores']:.2f} cores)")


if __name__ == "__main__":
    try:
        main()
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
