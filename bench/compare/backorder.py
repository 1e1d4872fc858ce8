"""Backorder: the release `backorder` CLI for ingest, snapshot and the dashboard query; the
bench package's CompareBench for what the CLI cannot measure (single-event latency,
concurrent single-event appenders, full read-back), on the store the CLI loaded."""
import json
import os
import subprocess
import time

from common import Meter, allocated_bytes


class Backorder:
    name = "Backorder"
    pid = None

    def __init__(self, cli, bench, directory, durability="fsync"):
        self.cli, self.bench, self.dir, self.durability = cli, bench, directory, durability
        self.settings = (f"`backorder append FILE --data DIR --durability {durability} --batch-size 1000` "
                         "(default 8 partitions, lz4): parse, validate against the schema and the domain rules, "
                         "unique event id, per-stream version, 1,000 events an append")

    def run(self, argv):
        p = subprocess.run(argv, capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed with status {p.returncode}: {p.stderr.strip()[-2000:]}")
        return p.stdout

    def load(self, path, lines):
        with Meter(child=True) as m:
            out = self.run([self.cli, "append", path, "--data", self.dir, "--durability", self.durability,
                            "--batch-size", "1000", "--json"])
        report = json.loads(out)
        if report["appended"] != lines or report["rejected"] != 0:
            raise RuntimeError(f"backorder append stored {report['appended']} of {lines} events, rejected {report['rejected']}")
        m.cli_seconds = report["seconds"]
        return m

    def validate(self, path):
        """Seconds of `backorder append --dry-run`: reading, parsing and validating the input
        with nothing stored, the share of ingest the peers (given parsed rows) do not pay."""
        t0 = time.perf_counter()
        self.run([self.cli, "append", path, "--data", self.dir + "-dry", "--dry-run", "--json"])
        seconds = time.perf_counter() - t0
        subprocess.run(["rm", "-rf", self.dir + "-dry"])
        return seconds

    def disk_bytes(self):
        log = allocated_bytes(os.path.join(self.dir, "log"))
        total = allocated_bytes(self.dir) - allocated_bytes(os.path.join(self.dir, "views"))
        return total, f"log {log / 1e6:.1f} MB + indexes (event ids, stream heads) {(total - log) / 1e6:.1f} MB; the view snapshot is not counted"

    def snapshot(self):
        t0 = time.perf_counter()
        self.run([self.cli, "snapshot", "--data", self.dir])
        return time.perf_counter() - t0

    def dashboard(self):
        with Meter(child=True) as m:
            out = self.run([self.cli, "query", "dashboard", "--data", self.dir, "--tenant", "default", "--json"])
        d = json.loads(out)
        result = {"byStatus": {k: v for k, v in d["byStatus"].items() if v}, "outstanding": d["outstandingQuantity"],
                  "topCustomers": [(c["id"], c["name"], c["outstanding"]) for c in d["topCustomers"]]}
        return m, result

    def bench_json(self, *args):
        return json.loads(self.run([self.bench, *args, "--data", self.dir, "--durability", self.durability]).strip().splitlines()[-1])

    def single(self, count):
        return self.bench_json("single", "--count", str(count))

    def concurrent(self, clients, count):
        with Meter(child=True) as m:
            r = self.bench_json("concurrent", "--clients", str(clients), "--count", str(count))
        return m, r

    def read_back(self):
        with Meter(child=True) as m:
            r = json.loads(self.run([self.bench, "read", "--data", self.dir]).strip().splitlines()[-1])
        return m, r
