"""Shared pieces of bench/compare: the data set as rows, timing, CPU accounting, sizes."""
import json
import os
import resource
import threading
import time
import uuid

CLK_TCK = os.sysconf("SC_CLK_TCK")

# Which data field names an event's stream (docs/EVENTS.md): records, customers, products.
STREAM_FIELD = {
    "CustomerRegistered": "customerId", "CustomerUpdated": "customerId", "CustomerRemoved": "customerId",
    "ProductRegistered": "productId", "ProductUpdated": "productId", "ProductRemoved": "productId",
}


class Row:
    """One event as a peer stores it: envelope columns, the stream version the client
    assigns (a dense 1, 2, 3… per tenant and stream, like Backorder's), two promoted
    columns for the dashboard query, the data object as JSON text, and the raw line."""
    __slots__ = ("id", "tenant", "stream", "version", "type", "at", "actor", "corr", "quantity", "customer", "data", "line")


def load_rows(path):
    """Parses the NDJSON data set once, before any timing. Versions are assigned in input
    order, as Backorder's ingest does."""
    rows, versions = [], {}
    with open(path, "rb") as f:
        for line in f:
            e = json.loads(line)
            d = e["data"]
            r = Row()
            r.id = e["id"]
            r.type = e["type"]
            r.tenant = e.get("tenant", "default")
            r.stream = d[STREAM_FIELD.get(r.type, "recordId")]
            key = (r.tenant, r.stream)
            r.version = versions.get(key, 0) + 1
            versions[key] = r.version
            r.at = e["at"]
            r.actor = e.get("actor", "")
            r.corr = e.get("correlationId")
            q = d.get("quantity")
            r.quantity = q if isinstance(q, int) else None
            r.customer = d.get("customerId") if r.type == "OutOfStockReported" else None
            r.data = json.dumps(d, ensure_ascii=False, separators=(",", ":"))
            r.line = line.rstrip(b"\n")
            rows.append(r)
    return rows


def new_report_rows(template, count, tag):
    """Fresh OutOfStockReported events on new streams (version 1), shaped like the data
    set's, for the single-event and concurrent measurements."""
    out = []
    base = json.loads(template.data)
    for i in range(count):
        r = Row()
        r.id = str(uuid.uuid4())
        r.type = "OutOfStockReported"
        r.tenant = "bench"  # not the dashboard's tenant, so the dashboard stays comparable
        r.stream = f"R-{tag}-{i}"
        r.version = 1
        r.at = template.at
        r.actor = template.actor
        r.corr = None
        r.quantity = template.quantity
        r.customer = template.customer
        d = dict(base, recordId=r.stream)
        r.data = json.dumps(d, ensure_ascii=False, separators=(",", ":"))
        r.line = json.dumps({"id": r.id, "type": r.type, "tenant": r.tenant, "at": r.at, "actor": r.actor, "data": d},
                            ensure_ascii=False, separators=(",", ":")).encode()
        out.append(r)
    return out


def batches(rows, size):
    for i in range(0, len(rows), size):
        yield rows[i:i + size]


def percentile(sorted_values, p):
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * p))]


def tree_cpu_seconds(pid):
    """User + system CPU of a process and all its live descendants (from /proc)."""
    if pid is None:
        return 0.0
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append((int(name), fields))
        except (OSError, IndexError):
            continue
    total, stack = 0.0, [pid]
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    except OSError:
        return 0.0
    while stack:
        for child, fields in children.get(stack.pop(), []):
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
            stack.append(child)
    return total


def machine_busy_seconds():
    """Busy CPU seconds of the whole machine so far (all cores, from /proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return (sum(v[:8]) - idle) / CLK_TCK


class Meter:
    """Wall time plus the CPU of this client, of the server's process tree and of the rest
    of the machine over one measurement."""

    def __init__(self, server_pid=None, child=False):
        self.server_pid = server_pid
        self.child = child

    def _client(self):
        u = resource.getrusage(resource.RUSAGE_SELF)
        c = resource.getrusage(resource.RUSAGE_CHILDREN) if self.child else None
        return u.ru_utime + u.ru_stime + ((c.ru_utime + c.ru_stime) if c else 0.0)

    def __enter__(self):
        self.t0 = time.perf_counter()
        self.c0 = self._client()
        self.s0 = tree_cpu_seconds(self.server_pid)
        self.m0 = machine_busy_seconds()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
        self.client_cpu = self._client() - self.c0
        self.server_cpu = tree_cpu_seconds(self.server_pid) - self.s0 if self.server_pid else 0.0
        total = machine_busy_seconds() - self.m0
        self.rest = max(0.0, total - self.client_cpu - self.server_cpu) / max(self.seconds, 1e-9)
        return False

    def cpu_note(self):
        w = max(self.seconds, 1e-9)
        return f"client {self.client_cpu / w:.2f}, server {self.server_cpu / w:.2f}, rest of machine {self.rest:.2f} cores"


def run_clients(clients, per_client_rows, append_one, server_pid=None):
    """One thread per client, each calling `append_one(client, row)` for its rows, timed as one
    measurement; the clients are closed afterwards and the first error is raised."""
    errors = []

    def run(client, rows):
        try:
            for row in rows:
                append_one(client, row)
        except Exception as e:  # reported after the run
            errors.append(e)
    threads = [threading.Thread(target=run, args=(c, rows)) for c, rows in zip(clients, per_client_rows)]
    with Meter(server_pid) as m:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for c in clients:
        c.close()
    if errors:
        raise errors[0]
    return m


def drain(cursor, data_column=8):
    """Fetches every row of an executed cursor, 10,000 at a time: (rows, bytes of data)."""
    n = size = 0
    while True:
        chunk = cursor.fetchmany(10000)
        if not chunk:
            return n, size
        n += len(chunk)
        for row in chunk:
            size += len(row[data_column])


def allocated_bytes(path):
    """Disk blocks allocated under a path (files only), in bytes."""
    total = 0
    if os.path.isfile(path):
        return os.stat(path).st_blocks * 512
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return total


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def fold_dashboard(items):
    """The client-side projection Redis and JetStream users write: fold every event (tenant,
    type, stream, data dict) into per-record state, then aggregate like Backorder's dashboard
    (status counts, outstanding quantity of pending records, top 10 customers by it)."""
    records, names = {}, {}
    for tenant, etype, stream, d in items:
        if tenant != "default":
            continue
        if etype == "OutOfStockReported":
            records[stream] = [d.get("customerId"), d["quantity"], 0, "pending"]
        elif etype in ("CustomerRegistered", "CustomerUpdated"):
            if "name" in d:
                names[stream] = d["name"]
        elif etype in ("DeliveryRecorded", "OutOfStockAmended", "OutOfStockClosed", "RefundRecorded", "OutOfStockDeleted"):
            r = records.get(stream)
            if r is None:
                continue
            if etype == "DeliveryRecorded":
                r[2] += d["quantity"]
                if r[3] == "pending" and r[2] >= r[1]:
                    r[3] = "completed"
            elif etype == "OutOfStockAmended":
                if "quantity" in d:
                    r[1] = d["quantity"]
                    if r[3] == "pending" and r[2] >= r[1]:
                        r[3] = "completed"
            elif etype == "OutOfStockClosed":
                r[3] = "completed"
            elif etype == "RefundRecorded":
                r[3] = "refunded"
            else:
                r[3] = "deleted"
    return summarize(((c, q, dl, s) for c, q, dl, s in records.values()), names)


def summarize(records, names):
    by_status, outstanding, customers = {}, 0, {}
    for customer, quantity, delivered, status in records:
        by_status[status] = by_status.get(status, 0) + 1
        if status == "pending":
            o = quantity - delivered
            outstanding += o
            customers[customer] = customers.get(customer, 0) + o
    top = sorted(customers.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    return {"byStatus": by_status, "outstanding": outstanding,
            "topCustomers": [(c, names.get(c, c), o) for c, o in top]}


def same_dashboard(a, b):
    """Whether two dashboards agree on counts, outstanding quantity and the top customers' ids
    and quantities (names are informational)."""
    return (a["byStatus"] == b["byStatus"] and a["outstanding"] == b["outstanding"]
            and [(c, o) for c, _, o in a["topCustomers"]] == [(c, o) for c, _, o in b["topCustomers"]])
