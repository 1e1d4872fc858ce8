#!/usr/bin/env python3
"""Summarizes a run.sh log: per engine, median and [min–max] over the runs.

Write ops = puts + deletes + the writer's gets (gets before the first S), the same count for
all three engines; KVBench's own "ops/s" also counts the read phase's gets, so its write
ops/s is recomputed here from its write-phase wall seconds. CPU is the write phase's
(to the last commit). Disk is `du -B1` of the directory after the process ended. RSS
figures include the trace, which every replay holds in memory (see README.md).
"""
import re
import statistics
import sys

text = open(sys.argv[1], encoding="utf-8").read()
parts = re.split(r"^== (RUN|BASELINE) ", text, flags=re.M)[1:]
baseline_kb = {}  # engine -> VmHWM with a same-size gets-only trace and an empty store
blocks = []
for kind, b in zip(parts[::2], parts[1::2]):
    if kind == "BASELINE":
        m = re.match(r"engine=(\S+)", b)
        h = re.search(r"peak RSS (\d+) kB", b)
        if m and h: baseline_kb[m.group(1)] = int(h.group(1))
    else:
        blocks.append(b)
runs = {}  # engine -> list of dicts
for b in blocks:
    head = re.match(r"engine=(\S+) run=(\d+)", b)
    engine = head.group(1)
    r = {}
    m = re.search(r"load average: ([\d.]+), ([\d.]+), ([\d.]+)", b)
    if m: r["load1"] = float(m.group(1))
    m = re.search(r"^DISK .* alloc=(\d+) apparent=(\d+)", b, re.M)
    if m: r["disk"] = int(m.group(1))
    m = re.search(r"^RESULT (.*)$", b, re.M)
    if m:
        kv = dict(x.split("=", 1) for x in m.group(1).split())
        r.update(ops=int(kv["ops"]), wall=float(kv["wall"]), cpu=float(kv["cpu"]), written=int(kv["written"]),
                 rss_kb=int(kv["rss_kb"]), get_p50=float(kv["get_p50"]), get_p99=float(kv["get_p99"]),
                 scan_p50=float(kv["scan_p50"]), scan_p99=float(kv["scan_p99"]), hits=int(kv["hits"]),
                 checksum=int(kv["checksum"]), name=kv["engine"])
    m = re.search(r"KVStore trace replay: (\d+) puts, (\d+) deletes, (\d+) gets \((\d+) hits\)", b)
    if m:
        r.update(name="KVStore", puts=int(m.group(1)), deletes=int(m.group(2)), hits=int(m.group(4)))
        m = re.search(r"write phase: ([\d.]+) s wall \((\d+) ops/s\), ([\d.]+) s CPU; flushed by ([\d.]+) s", b)
        r.update(wall=float(m.group(1)), kv_ops_s=int(m.group(2)), cpu=float(m.group(3)), flushed=float(m.group(4)))
        m = re.search(r"bytes written (\d+) MB", b)
        r["written"] = int(m.group(1)) * 1_000_000
        m = re.search(r"get p50 ([\d.]+) µs p99 ([\d.]+) µs; scan p50 ([\d.]+) µs p99 ([\d.]+) µs", b)
        r.update(get_p50=float(m.group(1)), get_p99=float(m.group(2)), scan_p50=float(m.group(3)), scan_p99=float(m.group(4)))
        m = re.search(r"peak RSS (\d+) kB.*\(checksum (-?\d+)\)", b)
        r.update(rss_kb=int(m.group(1)), checksum=int(m.group(2)))
    m = re.search(r"peak RSS \d+ kB, RssAnon (\d+) kB, RssFile (\d+) kB", b)
    if m: r.update(anon_kb=int(m.group(1)), file_kb=int(m.group(2)))
    if "wall" not in r:
        print(f"run {head.group(0)}: no result (failed?)")
        continue
    runs.setdefault(engine, []).append(r)

for e in runs:
    for r in runs[e]:
        if e in baseline_kb and "rss_kb" in r: r["rss_over_base_kb"] = r["rss_kb"] - baseline_kb[e]
c_ops = {r["ops"] for e in runs for r in runs[e] if "ops" in r}
if len(c_ops) != 1:
    print(f"warning: write-op counts differ or are missing: {c_ops}")
ops = max(c_ops) if c_ops else None
for r in runs.get("kvstore", []):
    if ops: r["ops"] = ops
for e in runs:
    for r in runs[e]:
        if r.get("ops"):
            r["ops_s"] = r["ops"] / r["wall"]
            # KVStore's commit (freeze) returns before the data is on disk; flush() waits for it
            # (KVBench calls it after the read phase). LMDB and SQLite are durable at commit.
            r["durable_ops_s"] = r["ops"] / r.get("flushed", r["wall"])

metrics = [
    ("write ops/s", "ops_s", lambda v: f"{v:,.0f}"),
    ("write ops/s, to durable", "durable_ops_s", lambda v: f"{v:,.0f}"),
    ("write phase wall s", "wall", lambda v: f"{v:.1f}"),
    ("write phase CPU s", "cpu", lambda v: f"{v:.1f}"),
    ("bytes written MB", "written", lambda v: f"{v / 1e6:,.0f}"),
    ("disk MB (du)", "disk", lambda v: f"{v / 1e6:,.0f}"),
    ("peak RSS MiB (VmHWM)", "rss_kb", lambda v: f"{v / 1024:,.0f}"),
    ("peak RSS − baseline MiB", "rss_over_base_kb", lambda v: f"{v / 1024:,.0f}"),
    ("RssAnon at end MiB", "anon_kb", lambda v: f"{v / 1024:,.0f}"),
    ("RssFile at end MiB", "file_kb", lambda v: f"{v / 1024:,.0f}"),
    ("get p50 µs", "get_p50", lambda v: f"{v:.1f}"),
    ("get p99 µs", "get_p99", lambda v: f"{v:.1f}"),
    ("scan p50 µs", "scan_p50", lambda v: f"{v:.1f}"),
    ("scan p99 µs", "scan_p99", lambda v: f"{v:.1f}"),
    ("1-min load before run", "load1", lambda v: f"{v:.2f}"),
]
engines = [e for e in ("lmdb", "sqlite", "kvstore") if e in runs]
names = [runs[e][0]["name"] for e in engines]
print(f"write ops per run: {ops} (puts + deletes + writer gets); runs: " + ", ".join(f"{n} {len(runs[e])}" for n, e in zip(names, engines)))
print("| metric | " + " | ".join(names) + " |")
print("|---|" + "---|" * len(engines))
for label, key, fmt in metrics:
    cells = []
    for e in engines:
        vals = [r[key] for r in runs[e] if key in r]
        if not vals:
            cells.append("–")
            continue
        cells.append(f"{fmt(statistics.median(vals))} [{fmt(min(vals))}–{fmt(max(vals))}]")
    print(f"| {label} | " + " | ".join(cells) + " |")
print("RSS baseline (same-size gets-only trace, empty store), MiB: "
      + ", ".join(f"{runs[e][0]['name'] if e in runs else e} {v / 1024:,.0f}" for e, v in baseline_kb.items()))
sums = {(r.get("hits"), r.get("checksum")) for e in engines for r in runs[e]}
print("hits/checksum " + ("agree across all runs: " if len(sums) == 1 else "DIFFER: ") + str(sorted(sums)))
for r in runs.get("kvstore", []):
    print(f"KVStore run: its own ops/s {r['kv_ops_s']} (counts read-phase gets), flushed by {r['flushed']:.1f} s")
