#!/usr/bin/env python3
"""Memory per idle keep-alive connection: spaced against nginx and HAProxy (stdlib only).

For each target (spaced, nginx, haproxy; plain HTTP and TLS 1.3 with one ECDSA P-256
certificate for all; one worker each, keep-alive timeouts of 300 s): open N client
connections, send one request on each and read its response, then leave them all open
and idle. The proxy's RSS (VmRSS of it and its children) before the connections and with
them open gives the bytes per idle connection. One nginx serves `200 ok` behind them all.
RSS is a count, not a timing: it means the same on a busy machine.

Kernel socket buffers are not in RSS (they are kernel memory, `ss -m`/`sockstat`), so the
figure is the process's own: buffers, task state, TLS sessions, allocator overhead.

  idle_rss.py [-n 10000] [--spaced target/release/spaced] [--settle 30] [--targets ...]

Targets: spaced nginx haproxy spaced-tls nginx-tls haproxy-tls (a peer not installed is
skipped with a note; benches/load/setup.sh installs them). Ports 9561-9568 (PORT_BASE).
Needs openssl for the certificate; raises RLIMIT_NOFILE (the proxies inherit it).
Prints one line per target, then a TSV summary.
"""
import argparse
import os
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REQ = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def rss_kb(pid):
    """VmRSS of `pid` and its children (nginx's worker, haproxy's master/worker) in kB."""
    kids = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    total = 0
    for p in [pid, *map(int, kids)]:
        try:
            for line in open(f"/proc/{p}/status"):
                if line.startswith("VmRSS"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def tcp_mem_pages():
    """Pages the kernel holds for TCP socket buffers (`/proc/net/sockstat`): not in RSS."""
    for line in open("/proc/net/sockstat"):
        if line.startswith("TCP:"):
            f = line.split()
            return int(f[f.index("mem") + 1])
    return 0


def wait_port(port, proc, secs=20):
    end = time.time() + secs
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} before listening on {port}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def read_response(s):
    """Reads one small response (headers and the `ok` body) without closing."""
    got = b""
    while b"\r\n\r\n" not in got or not got.endswith(b"ok"):
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError(f"closed after {got!r}")
        got += chunk
    if not got.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"unexpected answer {got[:60]!r}")


def measure(name, proc, port, n, tls_ctx, settle):
    # One request first: lazily built state (pools, TLS config, caches) is in the baseline.
    for _ in range(3):
        s = connect(port, tls_ctx)
        s.sendall(REQ)
        read_response(s)
        s.close()
    time.sleep(0.5)
    r0, k0 = rss_kb(proc.pid), tcp_mem_pages()
    socks = []
    try:
        # One at a time: the proxy needs one backend connection, not N (a pool of idle
        # backend connections would be counted as client connections' memory).
        for _ in range(n):
            s = connect(port, tls_ctx)
            s.sendall(REQ)
            read_response(s)
            socks.append(s)
        # spaced gives an idle connection's buffers back, and parks it outside its
        # requests' state, at its connection timer's next tick (within `client_header`,
        # 10 s); allocators return freed pages after a delay (spaced: a tick a second).
        time.sleep(settle)
        r1, k1 = rss_kb(proc.pid), tcp_mem_pages()
    finally:
        for s in socks:
            s.close()
    per = (r1 - r0) * 1024 / n
    print(f"{name}: RSS {r0} kB -> {r1} kB with {n} idle keep-alive connections: "
          f"{per:.0f} bytes per connection (kernel TCP buffers, both ends, not in RSS: "
          f"{(k1 - k0) * 4096 / n:.0f} bytes)", flush=True)
    time.sleep(1)
    return per


def connect(port, tls_ctx):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    if tls_ctx is not None:
        s = tls_ctx.wrap_socket(s, server_hostname="localhost")
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("--spaced", default="target/release/spaced")
    ap.add_argument("--settle", type=float, default=30.0,
                    help="seconds idle before the RSS is read (spaced: > client_header; long "
                         "enough for two passes of the kernel's khugepaged, every 10 s, which "
                         "refilled purged pages while mimalloc asked for huge pages)")
    ap.add_argument("--targets", default="spaced,nginx,haproxy,spaced-tls,nginx-tls,haproxy-tls")
    a = ap.parse_args()
    base = int(os.environ.get("PORT_BASE", "9561"))
    want = a.n * 2 + 1000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), max(hard, want)))
    except (ValueError, OSError):
        # Not allowed to raise the hard limit: HAProxy needs two descriptors per
        # connection (client and server side) within it.
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        want = hard
        if 2 * a.n + 500 > hard:
            print(f"note: RLIMIT_NOFILE is {hard}; haproxy needs N <= {(hard - 500) // 2}",
                  file=sys.stderr)

    work = Path(tempfile.mkdtemp(prefix="idle_rss."))
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", work / "key.pem", "-out", work / "cert.pem"],
        check=True, capture_output=True)
    (work / "combined.pem").write_text((work / "cert.pem").read_text() + (work / "key.pem").read_text())
    be = base
    ports = {t: base + 1 + i for i, t in enumerate(
        ["nginx", "haproxy", "spaced", "nginx-tls", "haproxy-tls", "spaced-tls"])}
    cert, key, combined = work / "cert.pem", work / "key.pem", work / "combined.pem"
    conns = a.n + 100
    (work / "be.conf").write_text(
        f"worker_processes 1; pid {work}/be.pid; error_log {work}/be.err; "
        f"events {{ worker_connections 1024; }} http {{ access_log off; server {{ "
        f"listen 127.0.0.1:{be}; location / {{ return 200 ok; }} }} }}")

    def nginx_conf(name, tls):
        listen = f"127.0.0.1:{ports[name]} backlog=4096"
        extra = ""
        if tls:
            listen = f"127.0.0.1:{ports[name]} ssl backlog=4096"
            extra = f"ssl_certificate {cert}; ssl_certificate_key {key}; ssl_protocols TLSv1.3;"
        path = work / f"{name}.conf"
        path.write_text(
            f"worker_processes 1; worker_rlimit_nofile {want}; pid {work}/{name}.pid; "
            f"error_log {work}/{name}.err; events {{ worker_connections {conns}; }} "
            f"http {{ access_log off; keepalive_timeout 300s; keepalive_requests 100000; "
            f"upstream be {{ server 127.0.0.1:{be}; keepalive 64; }} "
            f"server {{ listen {listen}; {extra} location / {{ proxy_pass http://be; "
            f"proxy_http_version 1.1; proxy_set_header Connection \"\"; }} }} }}")
        return ["nginx", "-p", str(work), "-c", str(path), "-g", "daemon off;"]

    def haproxy_conf(name, tls):
        bind = f"bind 127.0.0.1:{ports[name]}"
        if tls:
            bind += f" ssl crt {combined} ssl-min-ver TLSv1.3 alpn http/1.1"
        path = work / f"{name}.cfg"
        path.write_text(
            f"global\n  nbthread 1\n  maxconn {conns}\ndefaults\n  mode http\n  timeout connect 5s\n"
            f"  timeout client 300s\n  timeout server 30s\n  timeout http-keep-alive 300s\n"
            f"frontend fe\n  {bind}\n  maxconn {conns}\n  default_backend be\n"
            f"backend be\n  server b1 127.0.0.1:{be}\n")
        return ["haproxy", "-db", "-f", str(path)]

    def spaced_conf(name, tls):
        listen = "tls_listen" if tls else "listen"
        tls_part = f'\n[[tls]]\ncert = "{cert}"\nkey = "{key}"\n' if tls else ""
        path = work / f"{name}.toml"
        path.write_text(
            f'[space]\nname = "bench"\ninternal = ["127.0.0.0/8"]\n\n[router]\n'
            f'{listen} = ["127.0.0.1:{ports[name]}"]\nmax_connections = 100000\n'
            f'{tls_part}\n[router.timeouts]\nkeepalive = "300s"\n\n'
            f'[[app]]\nname = "bench"\nhosts = ["127.0.0.1", "localhost"]\n'
            f'[[app.dyno]]\nprocess = "web"\naddr = "127.0.0.1:{be}"\n')
        return [a.spaced, "run", "--config", str(path)]

    makers = {"nginx": nginx_conf, "haproxy": haproxy_conf, "spaced": spaced_conf}
    tls_ctx = ssl.create_default_context(cafile=str(cert))
    tls_ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    procs = []

    def start(cmd, env=None):
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(work / "stderr.log", "a"),
                             env={**os.environ, **(env or {})}, start_new_session=True)
        procs.append(p)
        return p

    results = []
    try:
        bep = start(["nginx", "-p", str(work), "-c", str(work / "be.conf"), "-g", "daemon off;"])
        wait_port(be, bep)
        for t in a.targets.split(","):
            kind, tls = t.removesuffix("-tls"), t.endswith("-tls")
            prog = a.spaced if kind == "spaced" else kind
            if kind not in makers or (shutil.which(prog) is None and not os.path.exists(prog)):
                print(f"{t}: skipped ({prog} not found)", flush=True)
                continue
            env = {"RUST_LOG": "warn", "TOKIO_WORKER_THREADS": "1"} if kind == "spaced" else None
            p = start(makers[kind](t, tls), env)
            try:
                wait_port(ports[t], p)
                results.append((t, measure(t, p, ports[t], a.n, tls_ctx if tls else None, a.settle)))
            finally:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(work, ignore_errors=True)
    print("target\tbytes_per_idle_connection")
    for t, per in results:
        print(f"{t}\t{per:.0f}")


if __name__ == "__main__":
    main()
