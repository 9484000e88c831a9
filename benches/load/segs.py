#!/usr/bin/env python3
"""TCP segments and bytes per request by socket role, from `ss -tin` counters.

segs.py snap FILE            saves every established socket's counters
segs.py diff A B PORT N      per role between two snapshots, divided by N requests:
                             wrk (peer port PORT), proxy->client (local port PORT),
                             proxy->backend and backend (the backends' ports 9001-9003)
"""
import re, subprocess, sys, json
def snap():
    out = subprocess.run(["ss", "-tinH", "state", "established"], capture_output=True, text=True).stdout
    socks, cur = {}, None
    for line in out.splitlines():
        if not line.startswith(("\t", " ")) or re.match(r"^\S", line):
            f = line.split()
            if len(f) >= 4:
                cur = (f[2], f[3]); socks[cur] = {}
            continue
        if cur is None: continue
        for k in ("segs_out", "segs_in", "data_segs_out", "data_segs_in", "bytes_sent", "bytes_received"):
            m = re.search(rf"\b{k}:(\d+)", line)
            if m: socks[cur][k] = int(m.group(1))
    return socks
if sys.argv[1] == "snap":
    json.dump({f"{a}|{b}": v for (a, b), v in snap().items()}, open(sys.argv[2], "w"))
else:
    A, B = json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
    port, n = sys.argv[4], float(sys.argv[5])
    roles = {}
    for key, v in B.items():
        a = A.get(key)
        if not a: continue
        loc, peer = key.split("|")
        lp, pp = loc.rsplit(":", 1)[1], peer.rsplit(":", 1)[1]
        role = ("wrk" if pp == port else "proxy->client" if lp == port else
                "proxy->backend" if pp in ("9001", "9002", "9003") else
                "backend" if lp in ("9001", "9002", "9003") else None)
        if not role: continue
        r = roles.setdefault(role, {"n": 0})
        d = {k: v.get(k, 0) - a.get(k, 0) for k in v}
        if d.get("segs_out", 0) > 0: r["n"] += 1
        for k, x in d.items(): r[k] = r.get(k, 0) + x
    for role in ("wrk", "proxy->client", "proxy->backend", "backend"):
        r = roles.get(role)
        if not r: continue
        so, dso = r.get("segs_out", 0), r.get("data_segs_out", 0)
        print(f"  {role:15s} socks={r['n']:3d} segs_out/req={so/n:.3f} data={dso/n:.3f} pureack={(so-dso)/n:.3f} bytes/req={r.get('bytes_sent',0)/n:.0f}")
