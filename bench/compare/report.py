"""Writes the Markdown report (and a PNG of the ratios when matplotlib is there)."""
import os

DURABLE = ["Backorder", "SQLite", "PostgreSQL", "Redis"]
EARLY = ["Backorder interval", "SQLite NORMAL", "PostgreSQL sync off", "Redis everysec", "NATS JetStream"]
LABELS = {"Redis": "Redis (appendfsync always)", "SQLite": "SQLite (WAL, synchronous=FULL)",
          "PostgreSQL": "PostgreSQL (synchronous_commit=on)", "Backorder": "Backorder (fsync)",
          "Backorder interval": "Backorder (interval, 100 ms)", "SQLite NORMAL": "SQLite (WAL, synchronous=NORMAL)",
          "PostgreSQL sync off": "PostgreSQL (synchronous_commit=off)", "Redis everysec": "Redis (appendfsync everysec)",
          "NATS JetStream": "NATS JetStream (file storage)"}

# key, title, unit kind: "rate" (higher is better), "time" (lower is better), "bytes" (lower is better)
ROWS = [("ingest", "1. batched ingest, 1,000 events a batch", "rate"),
        ("ingest_cpu_per_m", "1. CPU seconds (client + server) per 1,000,000 events ingested", "cpu"),
        ("single_p50", "2. single-event append, one client, p50", "time"),
        ("single_p99", "2. single-event append, one client, p99", "time"),
        ("concurrent", "3. 32 clients, single-event appends", "rate"),
        ("read", "4. full read-back", "rate"),
        ("dashboard", "5. dashboard query", "time"),
        ("bytes", "6. bytes on disk per event", "bytes")]


def cpu_seconds_per_million(r, events):
    """Client + server CPU seconds per 1,000,000 events ingested, from the ingest CPU note:
    a figure the load of other work on the machine disturbs far less than wall time."""
    note, rate = r.get("ingest_cpu"), r.get("ingest")
    if not note or not rate:
        return None
    parts = dict(p.strip().split(" ", 1) for p in note.split(" cores")[0].split(",") if p.strip().startswith(("client", "server")))
    cores = float(parts.get("client", 0)) + float(parts.get("server", 0))
    return cores * (events / rate) * 1_000_000 / events


def value(results, system, key):
    r = results.get(system, {})
    if key == "ingest_cpu_per_m":
        return cpu_seconds_per_million(r, 1_000_000)
    if key == "dashboard" and "dashboard_indexed" in r:
        return min(r["dashboard"], r["dashboard_indexed"]) if "dashboard" in r else r["dashboard_indexed"]
    return r.get(key)


def fmt(v, kind):
    if v is None:
        return "–"
    if kind == "rate":
        return f"{v:,.0f} /s"
    if kind == "cpu":
        return f"{v:,.1f} s"
    if kind == "time":
        return f"{v * 1e3:,.3f} ms" if v < 0.01 else f"{v * 1e3:,.1f} ms" if v < 10 else f"{v:,.2f} s"
    return f"{v:,.1f} B"


def ratio(b, p):
    if b is None or p is None or p == 0:
        return "–"
    r = b / p
    return f"{r:,.2f}×" if r < 100 else f"{r:,.0f}×"


def advantage(b, p, kind):
    """How many times better Backorder is (>1: Backorder better)."""
    if b is None or p is None or b == 0 or p == 0:
        return None
    return b / p if kind == "rate" else p / b


def table(results, systems, base, rows, errors):
    present = [s for s in systems if s in results or s in errors]
    peers = [s for s in present if s != base]
    head = ["measurement", LABELS.get(base, base)] + [LABELS.get(s, s) for s in peers] + [f"{LABELS.get(base, base)} ÷ {s}" for s in peers]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, title, kind in rows:
        b = value(results, base, key)
        cells = [title + (" (higher is better)" if kind == "rate" else " (lower is better)"), fmt(b, kind)]
        cells += [("failed" if s in errors and value(results, s, key) is None else fmt(value(results, s, key), kind)) for s in peers]
        cells += [ratio(b, value(results, s, key)) for s in peers]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def limit_rows(info, results):
    lim, again, codecs = info["limit"], info.get("limit_again", {}), info["codecs"]
    b = results.get("Backorder", {})
    out = ["| limit (plain system calls, same run) | first | again at the end |", "|---|---|---|"]
    for key, title in (("seq1m", "sequential 1 MiB pwrite + fdatasync, growing file"),
                       ("seq1m_prezeroed", "the same into a file pre-written with zeros"),
                       ("64k", "64 KiB pwrite + fdatasync, growing file"),
                       ("64k_prezeroed", "64 KiB, pre-written file"),
                       ("4k", "4 KiB pwrite + fdatasync, growing file"),
                       ("4k_prezeroed", "4 KiB, pre-written file")):
        def cell(d):
            x = d.get(key)
            return f"{x['MBps']:,.0f} MB/s, p50 {x['p50'] * 1e3:.3f} ms, p99 {x['p99'] * 1e3:.3f} ms, {x['flushes']:,.0f} flushes/s" if x else "–"
        out.append(f"| {title} | {cell(lim)} | {cell(again)} |")
    out.append("")
    out.append("| codec on the data set's NDJSON, 64 KiB blocks, one core | compress | decompress | ratio | bytes per event |")
    out.append("|---|---|---|---|---|")
    for name, c in codecs.items():
        out.append(f"| {name} | {c['compressMBps']:,.0f} MB/s = {c['compressEventsPerSecond']:,.0f} events/s | "
                   f"{c['decompressMBps']:,.0f} MB/s = {c['decompressEventsPerSecond']:,.0f} events/s | {c['ratio']:.2f} | {c['bytesPerEvent']:.1f} |")
    out.append("")
    # Backorder as a fraction of the limit: the better of the two limit measurements, since
    # other work on the shared machine can only make the disk look slower than it is.
    lim = best_limit(lim, again)
    frac = ["The fractions below hold Backorder against the better of the two limit measurements "
            "(the disk cannot be faster than it once was; other work only makes it look slower).", "",
            "| Backorder figure | limit it is held against | fraction of the limit |", "|---|---|---|"]
    lz4 = codecs.get("lz4", {})
    if "ingest" in b:
        seconds = info["args"]["events"] / b["ingest"]
        mbps = b.get("log_bytes", 0) / seconds / 1e6
        best = max(lim["seq1m"]["MBps"], lim["seq1m_prezeroed"]["MBps"])
        frac.append(f"| ingest: {b['ingest']:,.0f} events/s, {mbps:,.1f} MB/s written to the log | sequential write with fdatasync {best:,.0f} MB/s | {mbps / best:.1%} of the disk |")
        if lz4:
            frac.append(f"| ingest: {b['ingest']:,.0f} events/s | lz4 compression of the same events on one core, {lz4['compressEventsPerSecond']:,.0f} events/s (the least CPU work any compressed ingest needs) | {b['ingest'] / lz4['compressEventsPerSecond']:.1%} |")
    if "single_p50" in b:
        x = lim["4k_prezeroed"]
        frac.append(f"| single append p50 {b['single_p50'] * 1e3:.3f} ms, p99 {b['single_p99'] * 1e3:.3f} ms | 4 KiB pwrite + fdatasync, p50 {x['p50'] * 1e3:.3f} ms, p99 {x['p99'] * 1e3:.3f} ms | {x['p50'] / b['single_p50']:.0%} (p50), {x['p99'] / b['single_p99']:.0%} (p99) |")
    if "concurrent" in b:
        ideal = lim["4k_prezeroed"]["flushes"] * info["args"]["clients"]
        frac.append(f"| 32 clients {b['concurrent']:,.0f} events/s | one fdatasync per round of all 32 clients at the 4 KiB flush rate: {ideal:,.0f} events/s | {b['concurrent'] / ideal:.1%} |")
    if "read" in b and lz4:
        frac.append(f"| read-back {b['read']:,.0f} events/s ({b.get('read_inprocess', 0):,.0f}/s without process start) | lz4 decompression on one core {lz4['decompressEventsPerSecond']:,.0f} events/s | {b['read'] / lz4['decompressEventsPerSecond']:.1%} |")
    if "bytes" in b and lz4:
        frac.append(f"| {b['bytes']:.1f} bytes per event on disk | the NDJSON compressed with lz4 in 64 KiB blocks: {lz4['bytesPerEvent']:.1f} B | {lz4['bytesPerEvent'] / b['bytes']:.0%} |")
    return "\n".join(out + frac)


def best_limit(first, again):
    best = {}
    for key, x in first.items():
        y = again.get(key)
        if not y:
            best[key] = x
            continue
        best[key] = {"MBps": max(x["MBps"], y["MBps"]), "p50": min(x["p50"], y["p50"]), "p99": min(x["p99"], y["p99"]),
                     "flushes": max(x["flushes"], y["flushes"])}
    return best


def goals(results, info):
    b = results.get("Backorder", {})
    lines = []
    lim = best_limit(info["limit"], info.get("limit_again", {}))
    lz4 = info["codecs"].get("lz4", {})
    within = []
    if "ingest" in b and lz4:
        within.append(("durable ingest ÷ lz4 compression on one core", b["ingest"] / lz4["compressEventsPerSecond"]))
    if "single_p50" in b:
        within.append(("single append p50: bare 4 KiB fdatasync ÷ Backorder", lim["4k_prezeroed"]["p50"] / b["single_p50"]))
    if "concurrent" in b:
        within.append(("32 clients ÷ (32 × 4 KiB flushes/s)", b["concurrent"] / (lim["4k_prezeroed"]["flushes"] * info["args"]["clients"])))
    if "read" in b and lz4:
        within.append(("read-back ÷ lz4 decompression on one core", b["read"] / lz4["decompressEventsPerSecond"]))
    for peer in ("SQLite", "PostgreSQL"):
        p = results.get(peer, {})
        if "ingest" in b and "ingest" in p:
            r = b["ingest"] / p["ingest"]
            lines.append(f"- durable batched ingest, Backorder ÷ {peer}: **{r:.1f}×** (goal ≥ 10×: {'met' if r >= 10 else 'missed'})")
        if "dashboard" in b and value(results, peer, "dashboard"):
            r = value(results, peer, "dashboard") / b["dashboard"]
            lines.append(f"- dashboard, {peer}'s time ÷ Backorder's: **{r:.1f}×** (goal ≥ 10×: {'met' if r >= 10 else 'missed'})")
    for key, title, kind in ROWS:
        if key not in b:
            continue
        behind = [s for s in DURABLE[1:] if value(results, s, key) is not None and (advantage(b[key], value(results, s, key), kind) or 0) < 1]
        if key in ("ingest", "read", "dashboard"):
            lines.append(f"- {title}: Backorder ahead of every durable peer: {'yes' if not behind else 'no — behind ' + ', '.join(behind)}")
    for what, fraction in within:
        lines.append(f"- within 2× of the machine's limit, {what}: **{fraction:.0%}** ({'met' if fraction >= 0.5 else 'missed'})")
    return "\n".join(lines)


def chart(path, results):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception:
        return None
    groups = [("Backorder", DURABLE[1:], ROWS), ("Backorder interval", EARLY[1:], ROWS[:5]),
              ("Backorder", ["NATS JetStream"], ROWS[5:])]
    labels, values, colors = [], [], []
    palette = {"SQLite": "#4e79a7", "PostgreSQL": "#f28e2b", "Redis": "#e15759", "NATS JetStream": "#76b7b2",
               "SQLite NORMAL": "#4e79a7", "PostgreSQL sync off": "#f28e2b", "Redis everysec": "#e15759"}
    for base, peers, rows in groups:
        for key, title, kind in rows:
            for p in peers:
                a = advantage(value(results, base, key), value(results, p, key), kind)
                if a is None:
                    continue
                labels.append(f"{title[3:]} — vs {LABELS.get(p, p)}")
                values.append(a)
                colors.append(palette.get(p, "#999999"))
    if not values:
        return None
    fig, ax = plt.subplots(figsize=(13, 0.28 * len(values) + 1.5))
    y = range(len(values))
    # Bars grow from 1 (a tie) to the ratio, to the right when Backorder is better.
    ax.barh(list(y), [v - 1 for v in values], left=1, color=colors)
    ax.set_yticks(list(y))
    ax.set_yticklabels(labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(1, color="black", linewidth=0.8)
    ax.axvline(10, color="grey", linewidth=0.6, linestyle="--")
    ax.set_xlabel("how many times better Backorder is (log scale; > 1: Backorder better; dashed: 10×)")
    ax.set_title("Backorder ÷ peer (fsync group first, then the acknowledged-before-disk group)")
    for i, v in enumerate(values):
        ax.text(v, i, f" {v:.2g}×", va="center", fontsize=6)
    ax.set_xlim(min(min(values), 1) / 1.5, max(max(values), 10) * 2.5)
    fig.subplots_adjust(left=0.42, right=0.98, top=1 - 0.6 / (0.28 * len(values) + 1.5), bottom=0.7 / (0.28 * len(values) + 1.5))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_report(path, info, results, errors):
    a, env = info["args"], info["env"]
    png = chart(os.path.splitext(path)[0] + ".png", results)
    loaded = any(float(l.split()[0]) > 0.5 for l in info["load"].values()) if info["load"] else False
    lines = [
        "# Backorder side by side with SQLite, PostgreSQL, Redis Streams and NATS JetStream (issue 8)", "",
        f"- **Date:** {info['started']} to {info['finished']}.",
        f"- **Command:** `bench/compare.sh --events {a['events']}` ({a['single']:,} single appends after 100 warm-up for Backorder; "
        f"{a['concurrent']:,} appends from {a['clients']} clients).",
        f"- **Machine:** {env['cpu']}, {env['memory']}, {env['disk']}, Linux {env['kernel']}. Clients and servers share the cores.",
        f"- **Source:** commit {env['commit']} ({'with' if env['dirty'] not in ('0', '') else 'without'} uncommitted changes to tracked files).",
        f"- **Load:** `{info['uptime_start']}` at the start, `{info['uptime_end']}` at the end; load average at the start of each system: "
        + ", ".join(f"{k} {v}" for k, v in info["load"].items()) + "."
        + (" **The machine was loaded (other work running on it): read the figures with that in mind.**" if loaded else ""),
        f"- **Data set:** `backorder generate --events {a['events']} --seed 7`: {a['events']:,} events of the out-of-stock domain "
        f"(one tenant, 2,000 customers, 1,000 products), parsed once before any timing. Every system stores every event with its id "
        "as a unique key and a dense per-stream version checked by the store.",
        "- **Dashboard check:** every system's status counts, outstanding quantity and top 10 customers were compared with a reference "
        "computed from the input; " + ", ".join(f"{s}: {'agrees' if r.get('dashboard_agrees') else 'DIFFERS'}" for s, r in results.items() if "dashboard_agrees" in r) + ".",
        "",
    ]
    if errors:
        lines += ["**Failed:** " + "; ".join(f"{k}: {v}" for k, v in errors.items()), ""]
    lines += ["## How to read it", "",
              "- Peers are given the events already parsed (Python objects built before any timing); Backorder's ingest is the "
              "`backorder append` process reading the NDJSON file, so its figure also pays for JSON parsing, schema and domain "
              "validation, process start and the index checkpoint at close.",
              "- Backorder's single-event, 32-client and read-back figures come from `bench/.build-bench/release/CompareBench` "
              "(in process on the store the CLI loaded: `EventStore.append` of one event, awaited; 32 tasks doing the same; an "
              "`EventReader` cursor over every partition decoding every event). SQLite is in process too; PostgreSQL, Redis and "
              "NATS are reached over TCP on 127.0.0.1, so their latencies include a loopback round trip (~30–60 µs here).",
              "- Single-event and 32-client appends go to new streams of another tenant (`bench`), so the dashboard of tenant "
              "`default` is the same for every system.",
              "- The peers' clients are Python (psycopg 3, redis-py with hiredis, nats-py, the standard sqlite3 module). The "
              "CPU columns below show when a client, rather than its server, was the limit.", "",
              "## Durable: acknowledged only after fsync", "",
              table(results, DURABLE, "Backorder", ROWS, errors), "",
              "Ratios are Backorder ÷ peer: above 1 is better for rates, below 1 is better for times and bytes. "
              "The SQL dashboard figure is the better of the table as loaded and with a covering index built afterwards "
              "(both are in the details below).", "",
              "## Acknowledged before the disk", "",
              "JetStream (nats-server 2.9 acknowledges before fsync), Redis `everysec`, PostgreSQL `synchronous_commit=off` and "
              "SQLite `synchronous=NORMAL` in WAL mode can lose the newest acknowledged events in a power loss. They are compared "
              "with Backorder's `--durability interval` (fsync at most 100 ms later), never with its fsync mode.", "",
              table(results, EARLY, "Backorder interval", ROWS[:5], errors), "",
              "Reads of the data JetStream stored, against Backorder's (the same events; durability does not change reads):", "",
              table(results, ["Backorder", "NATS JetStream"], "Backorder", ROWS[5:], errors), "",
              "## The machine's limit, in the same run", "", limit_rows(info, results), "",
              "## Goals of issue 8", "", goals(results, info), ""]
    if png:
        lines += [f"![Backorder ÷ peer]({os.path.basename(png)})", ""]
    lines += ["## Every setting, and where the CPU went", ""]
    for system, r in results.items():
        lines.append(f"- **{LABELS.get(system, system)}**: {r.get('settings', '')}.")
        details = []
        for key, what in (("ingest_cpu", "ingest CPU"), ("read_cpu", "read-back CPU"), ("concurrent_cpu", "32-client CPU")):
            if key in r:
                details.append(f"{what}: {r[key]}")
        if "bytes_note" in r:
            details.append(f"bytes: {r['bytes_note']}")
        if "dashboard" in r and "dashboard_indexed" in r:
            details.append(f"dashboard as loaded {r['dashboard'] * 1e3:,.1f} ms, with a covering index {r['dashboard_indexed'] * 1e3:,.1f} ms "
                           f"(index built in {r.get('index_seconds', 0):.1f} s, not counted in ingest)")
        if "vacuum_seconds" in r:
            details.append(f"VACUUM ANALYZE after the load {r['vacuum_seconds']:.1f} s (not counted)")
        if "validate_seconds" in r:
            details.append(f"`backorder append --dry-run` (read, parse and validate only, nothing stored) took {r['validate_seconds']:.2f} s of that work")
        if "ingest_cli_seconds" in r:
            details.append(f"ingest is the `backorder append` process's wall time; its own timer (after opening the store, before closing it) said {r['ingest_cli_seconds']:.2f} s")
        if "snapshot_seconds" in r:
            details.append(f"`backorder snapshot` before the dashboard took {r['snapshot_seconds']:.2f} s (not counted)")
        if details:
            lines.append("  " + "; ".join(details) + ".")
    lines.append("")
    with open(path, "w") as f:
        f.write("\n".join(lines))
