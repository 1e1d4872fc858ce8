"""bench/compare: Backorder side by side with SQLite, PostgreSQL, Redis Streams and NATS
JetStream on the same events, in one run, plus the machine's limits. Run it through
bench/compare.sh, which prepares the packages, the virtualenv and the binaries."""
import argparse
import contextlib
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(__file__))

import limit  # noqa: E402
import servers  # noqa: E402
from backorder import Backorder  # noqa: E402
from common import Meter, load_rows, loadavg, new_report_rows, percentile, same_dashboard  # noqa: E402
from report import write_report  # noqa: E402


def log(message):
    print(f"[{datetime.datetime.utcnow():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def latency(lat):
    lat = sorted(lat)
    return {"p50": percentile(lat, 0.5), "p99": percentile(lat, 0.99), "max": lat[-1] if lat else 0.0}


def split(rows, clients):
    per = len(rows) // clients
    return [rows[i * per:(i + 1) * per] for i in range(clients)]


class Run:
    def __init__(self, args):
        self.args = args
        self.rows = load_rows(args.data)
        self.template = next(r for r in self.rows if r.type == "OutOfStockReported")
        self.results = {}  # system label → {measurement: value}
        self.errors = {}
        self.reference = None
        self.tag = 0

    def fresh(self, count):
        self.tag += 1
        return new_report_rows(self.template, count, f"B{os.getpid()}x{self.tag}")

    def record(self, label, key, value):
        self.results.setdefault(label, {})[key] = value

    def guarded(self, label, body):
        try:
            body()
        except Exception as e:  # one failed peer must not stop the others
            log(f"{label}: FAILED: {e}")
            traceback.print_exc()
            self.errors[label] = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"

    # The measurements every stored system gets, in the same order.
    def measure_loaded(self, label, peer, dashboard_runs):
        n = len(self.rows)
        m = peer.load(self.rows)
        self.record(label, "ingest", n / m.seconds)
        self.record(label, "ingest_cpu", m.cpu_note())
        self.record(label, "settings", peer.settings)
        log(f"{label}: ingest {n / m.seconds:,.0f} events/s ({m.seconds:.1f} s; {m.cpu_note()})")
        size, note = peer.disk_bytes()
        self.record(label, "bytes", size / n)
        self.record(label, "bytes_note", note)
        log(f"{label}: {size / n:.1f} bytes on disk per event ({note})")
        m, count = peer.read_back()
        self.record(label, "read", count / m.seconds)
        self.record(label, "read_cpu", m.cpu_note())
        log(f"{label}: read-back of {count:,} events at {count / m.seconds:,.0f} events/s ({m.cpu_note()})")
        self.dashboards(label, peer, dashboard_runs)

    def dashboards(self, label, peer, runs, key="dashboard"):
        times, result = [], None
        for _ in range(runs):
            m, result = peer.dashboard()
            times.append(m.seconds)
        self.record(label, key, statistics.median(times))
        agree = same_dashboard(result, self.reference)
        self.record(label, key + "_agrees", agree)
        if not agree:
            log(f"{label}: dashboard DIFFERS from the reference: {result} vs {self.reference}")
        log(f"{label}: {key} {statistics.median(times) * 1000:,.1f} ms (median of {runs}; agrees with the reference: {agree})")

    def appends(self, label, peer):
        lat = latency(peer.single(self.fresh(self.args.single)))
        self.record(label, "single_p50", lat["p50"])
        self.record(label, "single_p99", lat["p99"])
        log(f"{label}: single appends p50 {lat['p50'] * 1e3:.3f} ms, p99 {lat['p99'] * 1e3:.3f} ms")
        m = peer.concurrent(split(self.fresh(self.args.concurrent), self.args.clients))
        eps = (self.args.concurrent // self.args.clients * self.args.clients) / m.seconds
        self.record(label, "concurrent", eps)
        self.record(label, "concurrent_cpu", m.cpu_note())
        log(f"{label}: {self.args.clients} clients {eps:,.0f} events/s ({m.cpu_note()})")

    def load_only(self, label, peer):
        n = len(self.rows)
        m = peer.load(self.rows)
        self.record(label, "ingest", n / m.seconds)
        self.record(label, "ingest_cpu", m.cpu_note())
        self.record(label, "settings", peer.settings)
        log(f"{label}: ingest {n / m.seconds:,.0f} events/s ({m.seconds:.1f} s; {m.cpu_note()})")

    # ---------------------------------------------------------------- systems
    def backorder(self, durability, label, full):
        d = os.path.join(self.args.base, f"backorder-{durability}")
        b = Backorder(self.args.cli, self.args.bench, d, durability)
        n = len(self.rows)
        m = b.load(self.args.data, n)
        self.record(label, "settings", b.settings)
        self.record(label, "ingest", n / m.seconds)
        self.record(label, "ingest_cli_seconds", m.cli_seconds)
        self.record(label, "ingest_cpu", m.cpu_note())
        log(f"{label}: ingest {n / m.seconds:,.0f} events/s (process wall {m.seconds:.2f} s, of which ingest {m.cli_seconds:.2f} s; {m.cpu_note()})")
        if full:
            self.record(label, "validate_seconds", b.validate(self.args.data))
        size, note = b.disk_bytes()
        self.record(label, "bytes", size / n)
        self.record(label, "bytes_note", note)
        self.record(label, "log_bytes", sum(os.lstat(os.path.join(r, f)).st_blocks * 512 for r, _, fs in os.walk(os.path.join(d, "log")) for f in fs))
        log(f"{label}: {size / n:.1f} bytes on disk per event ({note})")
        if full:
            m, r = b.read_back()
            self.record(label, "read", r["events"] / m.seconds)
            self.record(label, "read_inprocess", r["eventsPerSecond"])
            self.record(label, "read_cpu", m.cpu_note())
            log(f"{label}: read-back of {r['events']:,} events at {r['events'] / m.seconds:,.0f} events/s with process start "
                f"({r['eventsPerSecond']:,.0f}/s inside)")
            self.record(label, "snapshot_seconds", b.snapshot())
            self.dashboards(label, b, 3)
        r = b.single(self.args.single)
        self.record(label, "single_p50", r["p50"])
        self.record(label, "single_p99", r["p99"])
        log(f"{label}: single appends p50 {r['p50'] * 1e3:.3f} ms, p99 {r['p99'] * 1e3:.3f} ms")
        m, r = b.concurrent(self.args.clients, self.args.concurrent)
        self.record(label, "concurrent", r["eventsPerSecond"])
        self.record(label, "concurrent_cpu", m.cpu_note())
        log(f"{label}: {self.args.clients} clients {r['eventsPerSecond']:,.0f} events/s")

    def sqlite(self):
        from peers_sql import SQLite
        p = SQLite(self.args.base, "FULL")
        self.measure_loaded("SQLite", p, 3)
        self.appends("SQLite", p)
        self.record("SQLite", "index_seconds", p.index_for_dashboard())
        self.dashboards("SQLite", p, 3, key="dashboard_indexed")
        a = SQLite(self.args.base, "NORMAL")
        self.load_only("SQLite NORMAL", a)
        self.appends("SQLite NORMAL", a)

    def postgres(self):
        from peers_sql import Postgres
        with running(servers.Postgres(self.args.base)) as s:
            p = Postgres(s)
            n = len(self.rows)
            m = p.load(self.rows)
            self.record("PostgreSQL", "ingest", n / m.seconds)
            self.record("PostgreSQL", "ingest_cpu", m.cpu_note())
            self.record("PostgreSQL", "settings", p.settings)
            log(f"PostgreSQL: ingest {n / m.seconds:,.0f} events/s ({m.seconds:.1f} s; {m.cpu_note()})")
            self.record("PostgreSQL", "vacuum_seconds", p.vacuum())  # ANALYZE after a bulk load, as the docs advise
            size, note = p.disk_bytes()
            self.record("PostgreSQL", "bytes", size / n)
            self.record("PostgreSQL", "bytes_note", note)
            m, count = p.read_back()
            self.record("PostgreSQL", "read", count / m.seconds)
            self.record("PostgreSQL", "read_cpu", m.cpu_note())
            log(f"PostgreSQL: {size / n:.1f} B/event; read-back {count / m.seconds:,.0f} events/s")
            self.dashboards("PostgreSQL", p, 3)
            self.appends("PostgreSQL", p)
            self.record("PostgreSQL", "index_seconds", p.index_for_dashboard())
            self.dashboards("PostgreSQL", p, 3, key="dashboard_indexed")
            a = Postgres(s, table="events_async", synchronous_commit="off")
            self.load_only("PostgreSQL sync off", a)
            self.appends("PostgreSQL sync off", a)

    def redis(self):
        from peers_redis import Redis
        with running(servers.Redis(self.args.base)) as s:
            p = Redis(s, prefix="", appendfsync="always")
            self.measure_loaded("Redis", p, 1)
            self.appends("Redis", p)
            a = Redis(s, prefix="a:", appendfsync="everysec")
            self.load_only("Redis everysec", a)
            self.appends("Redis everysec", a)

    def nats(self):
        from peers_nats import Nats
        with running(servers.Nats(self.args.base)) as s:
            p = Nats(s)
            self.measure_loaded("NATS JetStream", p, 1)
            self.appends("NATS JetStream", p)


@contextlib.contextmanager
def running(server):
    """Starts a peer's server and stops it (by PID) however the block ends."""
    server.start()
    try:
        yield server
    finally:
        server.stop()


def environment():
    def sh(cmd):
        try:
            return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=10).stdout.strip()
        except Exception:
            return "?"
    return {
        "cpu": sh("lscpu | sed -n 's/^Model name: *//p'") + f", {os.cpu_count()} vCPU",
        "memory": sh("free -g | awk '/Mem:/ {print $2\" GiB\"}'"),
        "disk": sh(f"df -T {os.path.dirname(os.path.abspath(__file__))} | awk 'NR==2 {{print $2\" on \"$1}}'"),
        "kernel": platform.release(),
        "commit": sh(f"git -C {os.path.dirname(os.path.abspath(__file__))} rev-parse --short HEAD"),
        "dirty": sh(f"git -C {os.path.dirname(os.path.abspath(__file__))} status --porcelain --untracked-files=no | wc -l"),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True, help="NDJSON data set made by backorder generate")
    ap.add_argument("--events", type=int, required=True)
    ap.add_argument("--cli", required=True)
    ap.add_argument("--bench", required=True, help="the CompareBench executable")
    ap.add_argument("--base", required=True, help="temporary directory for every system's data")
    ap.add_argument("--out", required=True)
    ap.add_argument("--single", type=int, default=2000)
    ap.add_argument("--concurrent", type=int, default=16000)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--only", default="backorder,sqlite,postgresql,redis,nats")
    args = ap.parse_args()
    only = set(args.only.split(","))

    info = {"started": datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"), "uptime_start": subprocess.run(
        ["uptime"], capture_output=True, text=True).stdout.strip(), "env": environment(), "args": vars(args)}
    log(f"load average {loadavg()}; parsing {args.data}")
    t0 = time.perf_counter()
    run = Run(args)
    log(f"parsed {len(run.rows):,} events in {time.perf_counter() - t0:.1f} s (not timed in any measurement)")
    from common import fold_dashboard
    run.reference = fold_dashboard((r.tenant, r.type, r.stream, json.loads(r.data)) for r in run.rows)
    info["reference"] = run.reference

    log("machine limit: disk")
    info["limit"] = limit.disk(args.base)
    info["codecs"] = limit.codecs(args.data)
    log(f"machine limit: {json.dumps(info['limit'])}")
    info["load"] = {}
    steps = [("backorder", "Backorder fsync", lambda: run.backorder("fsync", "Backorder", True)),
             ("sqlite", "SQLite", run.sqlite),
             ("postgresql", "PostgreSQL", run.postgres),
             ("redis", "Redis", run.redis),
             ("nats", "NATS JetStream", run.nats),
             ("backorder", "Backorder interval", lambda: run.backorder("interval", "Backorder interval", False))]
    for key, label, body in steps:
        if key not in only:
            continue
        info["load"][label] = loadavg()
        log(f"=== {label} (load average {loadavg()})")
        run.guarded(label, body)
    log("machine limit again")
    info["limit_again"] = limit.disk(args.base)
    info["uptime_end"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    info["finished"] = datetime.datetime.utcnow().strftime("%H:%M UTC")
    with open(os.path.splitext(args.out)[0] + ".json", "w") as f:
        json.dump({"info": info, "results": run.results, "errors": run.errors}, f, indent=1, default=str)
    write_report(args.out, info, run.results, run.errors)
    log(f"wrote {args.out}")
    return 1 if run.errors else 0


if __name__ == "__main__":
    sys.exit(main())
