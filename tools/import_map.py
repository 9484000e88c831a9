#!/usr/bin/env python3
"""import_map.py CRATE_SRC [--check]: the module import graph of one crate, and its cycles.

Reads every `.rs` file under CRATE_SRC (a crate's `src/`), takes each file as one module
(`foo.rs` and `foo/bar.rs` are `foo` and `foo::bar`; `lib.rs` is `crate`), and follows
the paths that name another module of the crate: `use crate::…`, `use super::…`,
`use self::…`, `use child::…` (brace groups expanded) and such paths written inline.
Test code is left out (files named `tests.rs` and everything from a top-level
`#[cfg(test)] mod … {` on), since tests may reach across layers. A path to an item stops at the
deepest module file it names (`crate::conn::ctx::ConnCtx` is an edge to `conn::ctx`).

Prints the map leaves first: each module with its depth (the longest chain of imports
below it; 0 imports nothing of the crate) and what it imports, then every cycle (a
strongly connected set of two or more modules). With --check, exits 1 when there is a
cycle, so a test or CI can hold the line.
"""

import os
import re
import sys


def modules(src):
    """Map module path -> file text, for every .rs file under src."""
    out = {}
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs") or f == "tests.rs":
                continue
            rel = os.path.relpath(os.path.join(root, f), src)[:-3]
            parts = rel.split(os.sep)
            if parts == ["lib"] or parts == ["main"]:
                name = "crate"
            else:
                name = "::".join(parts)
            with open(os.path.join(root, f), encoding="utf-8") as fh:
                out[name] = strip(fh.read())
    return out


def strip(text):
    """The file without comments, string literals and its trailing test module."""
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    cut = re.search(r"^#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text, flags=re.M)
    return text[: cut.start()] if cut else text


def expand(tree):
    """`a::{b, c::{d, e}}` -> ['a::b', 'a::c::d', 'a::c::e']."""
    tree = re.sub(r"\s+", "", tree)
    depth, start, items = 0, 0, []
    brace = tree.find("{")
    if brace < 0:
        return [tree]
    prefix, inner = tree[:brace], tree[brace + 1 : tree.rfind("}")]
    for i, ch in enumerate(inner):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append(inner[start:i])
            start = i + 1
    items.append(inner[start:])
    return [p for item in items if item for p in expand(prefix + item)]


def resolve(path, here, known):
    """The module a path names, from module `here`, or None outside the crate."""
    segs = [s for s in path.split("::") if s]
    segs = [s.split(" as ")[0] for s in segs]
    base = [] if here == "crate" else here.split("::")
    if segs and segs[0] == "crate":
        cur, segs = [], segs[1:]
    elif segs and segs[0] in ("super", "self"):
        cur = list(base)
        while segs and segs[0] in ("super", "self"):
            if segs[0] == "super":
                cur = cur[:-1]
            segs = segs[1:]
    else:
        return None
    best = "::".join(cur) or "crate"
    for s in segs:
        cur = cur + [s]
        name = "::".join(cur)
        if name in known:
            best = name
        else:
            break
    return best


def graph(mods):
    edges = {m: set() for m in mods}
    use_re = re.compile(r"\buse\s+([\w:{}, \n*]+?)\s*;", re.S)
    inline_re = re.compile(r"(?<![\w:])((?:crate|super|\w+)(?:::\w+)+)")
    for m, text in mods.items():
        paths = []
        for u in use_re.finditer(text):
            paths += expand(u.group(1))
        body = use_re.sub("", text)
        paths += inline_re.findall(body)
        # A path may also start at a child module (`use ctx::ConnCtx;` in `conn`).
        prefix = "" if m == "crate" else m + "::"
        paths = [
            p if p.split("::")[0] in ("crate", "super", "self") else "self::" + p
            for p in paths
            if p.split("::")[0] in ("crate", "super", "self") or prefix + p.split("::")[0] in mods
        ]
        for p in paths:
            to = resolve(p, m, mods)
            if to and to != m:
                edges[m].add(to)
    return edges


def sccs(edges):
    """Tarjan's strongly connected components."""
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def depths(edges, cyclic):
    memo = {}

    def depth(v, seen=()):
        if v in memo:
            return memo[v]
        if v in seen:
            return 0
        d = max((depth(w, seen + (v,)) + 1 for w in edges[v]), default=0)
        memo[v] = d
        return d

    return {v: depth(v) for v in edges}


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) != 1:
        sys.exit("usage: import_map.py CRATE_SRC [--check]")
    mods = modules(args[0])
    edges = graph(mods)
    cycles = [c for c in sccs(edges) if len(c) > 1]
    d = depths(edges, cycles)
    width = max(len(m) for m in mods)
    for m in sorted(mods, key=lambda m: (d[m], m)):
        deps = ", ".join(sorted(edges[m])) or "-"
        print(f"{d[m]:>2}  {m:<{width}}  -> {deps}")
    n_edges = sum(len(e) for e in edges.values())
    print(f"{len(mods)} modules, {n_edges} imports, {len(cycles)} cycles")
    for c in cycles:
        print("cycle: " + " <-> ".join(c))
    if "--check" in sys.argv and cycles:
        sys.exit(1)


if __name__ == "__main__":
    main()
