#!/usr/bin/env python3
"""Fleet change-to-served latency: p50/p99 over N changes, three spaced instances, one
etcd, everything on loopback. Standard library only.

A change is written through etcd's JSON gateway (POST /v3/kv/put); it counts as served
when every instance's GET /config shows a `revision` at or past the write's. Two sizes:
`small` (3 apps, a few dynos) and `large` (1,000 apps, 10,000 dynos in the registry).
Two kinds of change at each size: the `policy` document (a full compile) and one dyno key
(joined to the compiled base). Also reported: CPU seconds and RSS each instance spends
over the run (from /proc).

    benches/fleet/latency.sh [small|large|both] [CHANGES]
"""
import base64
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

SPACED = os.environ.get("SPACED", "target/release/spaced")
ETCD = shutil.which("etcd") or sys.exit("no etcd on PATH (apt-get install etcd-server)")
PREFIX = "/spaced/bench"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def b64(s):
    return base64.b64encode(s.encode()).decode()


class Etcd:
    def __init__(self, work):
        self.client = free_port()
        peer = free_port()
        self.url = f"http://127.0.0.1:{self.client}"
        self.proc = subprocess.Popen(
            [ETCD, "--data-dir", os.path.join(work, "etcd"),
             "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
             "--listen-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-cluster", f"default=http://127.0.0.1:{peer}",
             "--log-level", "error"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                self.put("/bench-ready", "1")
                return
            except OSError:
                time.sleep(0.05)
        sys.exit("etcd did not start")

    def put(self, key, value):
        body = json.dumps({"key": b64(key), "value": b64(value)}).encode()
        req = urllib.request.Request(self.url + "/v3/kv/put", data=body, method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            return int(json.load(r)["header"]["revision"])


class Spaced:
    def __init__(self, work, etcd, n):
        self.admin = free_port()
        d = os.path.join(work, f"edge-{n}")
        os.makedirs(d)
        path = os.path.join(d, "spaced.toml")
        with open(path, "w") as f:
            f.write(f"""[space]
name = "bench"
[router]
listen = ["127.0.0.1:{free_port()}"]
[admin]
listen = "127.0.0.1:{self.admin}"
[fleet]
etcd = ["{etcd.url}"]
prefix = "{PREFIX}"
instance = "edge-{n}"
""")
        self.proc = subprocess.Popen([SPACED, "run", "--config", path],
                                     env={**os.environ, "RUST_LOG": "warn"},
                                     stdout=subprocess.DEVNULL)

    def revision(self):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/config", timeout=2) as r:
                return int(json.load(r).get("revision", 0))
        except (OSError, ValueError):
            return -1

    def cpu_rss(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        rss = 0
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
        return cpu, rss


def policy(apps, retries):
    out = [f'[space]\ninternal = ["10.0.0.0/8"]\n[router]\nretries = {retries}\n']
    for a in range(apps):
        out.append(f'[[app]]\nname = "app-{a}"\nhosts = ["app-{a}.test"]\n')
    return "".join(out)


def wait_served(fleet, rev, limit=30.0):
    start = time.monotonic()
    while not all(s.revision() >= rev for s in fleet):
        if time.monotonic() - start > limit:
            sys.exit(f"revision {rev} not served within {limit}s")
        time.sleep(0.001)


def measure(etcd, fleet, changes, write):
    lat = []
    before = [s.cpu_rss() for s in fleet]
    for i in range(changes):
        t = time.monotonic()
        rev = write(i)
        wait_served(fleet, rev)
        lat.append(time.monotonic() - t)
    after = [s.cpu_rss() for s in fleet]
    lat.sort()
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000
    cpu = [(a[0] - b[0]) / changes * 1000 for a, b in zip(after, before)]
    rss = [a[1] / 2**20 for a in after]
    return (f"p50 {p(0.50):.1f} ms, p99 {p(0.99):.1f} ms, max {lat[-1]*1000:.1f} ms; "
            f"CPU per change per instance {statistics.mean(cpu):.2f} ms; "
            f"RSS {min(rss):.0f}-{max(rss):.0f} MiB")


def run(size, changes):
    apps, dynos = (3, 6) if size == "small" else (1000, 10000)
    work = tempfile.mkdtemp(prefix="spaced-fleet-bench-")
    etcd = Etcd(work)
    fleet = []
    try:
        rev = etcd.put(f"{PREFIX}/policy", policy(apps, 2))
        for d in range(dynos):
            a, n = d % apps, d // apps + 1
            rev = etcd.put(f"{PREFIX}/dynos/app-{a}/web/{n}",
                           json.dumps({"addr": f"10.{a // 250}.{a % 250}.{n}:5000"}))
        fleet = [Spaced(work, etcd, n) for n in (1, 2, 3)]
        wait_served(fleet, rev, limit=120)
        print(f"{size}: {apps} apps, {dynos} dynos, 3 instances, {changes} changes each")
        print("  policy change:", measure(etcd, fleet, changes,
              lambda i: etcd.put(f"{PREFIX}/policy", policy(apps, 2 + i % 2 + 1))))
        print("  dyno change:  ", measure(etcd, fleet, changes,
              lambda i: etcd.put(f"{PREFIX}/dynos/app-0/web/1",
                                 json.dumps({"addr": f"10.0.0.1:{5000 + i % 2 + 1}"}))))
    finally:
        for s in fleet:
            s.proc.terminate()
            s.proc.wait()
        etcd.proc.terminate()
        etcd.proc.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "both"
    changes = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    for size in (["small", "large"] if which == "both" else [which]):
        run(size, changes)
