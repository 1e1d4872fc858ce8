"""SQLite and PostgreSQL as event stores: one events table with a UNIQUE event id and a
(tenant, stream, version) primary key or unique constraint — the same guarantees as
Backorder's (idempotency key, dense per-stream versions checked by the database). The
client assigns the next version; a concurrent writer that took it first makes the insert
fail. Two promoted columns (quantity, customer_id) serve the dashboard query."""
import sqlite3
import threading
import time
import uuid

from common import Meter, allocated_bytes, batches, drain, percentile, run_clients

RECORD_TYPES = "('OutOfStockReported','OutOfStockAmended','DeliveryRecorded','OutOfStockClosed','RefundRecorded','OutOfStockDeleted')"

# Per record: customer, current quantity (the latest reported or amended one: version in
# the high bits picks it), delivered sum, and the strongest terminal event; then status
# counts, outstanding quantity of pending records and the top 10 customers by it.
DASHBOARD = f"""
WITH r AS MATERIALIZED (
  SELECT stream,
         max(customer_id) AS customer_id,
         max(CASE WHEN type IN ('OutOfStockReported','OutOfStockAmended') AND quantity IS NOT NULL
                  THEN CAST(version AS BIGINT) * 4294967296 + quantity END) % 4294967296 AS quantity,
         coalesce(sum(CASE WHEN type = 'DeliveryRecorded' THEN quantity END), 0) AS delivered,
         max(CASE type WHEN 'OutOfStockDeleted' THEN 3 WHEN 'RefundRecorded' THEN 2
                       WHEN 'OutOfStockClosed' THEN 1 ELSE 0 END) AS terminal
  FROM events
  WHERE tenant = 'default' AND type IN {RECORD_TYPES}
  GROUP BY stream
), s AS (
  SELECT customer_id, quantity - delivered AS outstanding,
         CASE terminal WHEN 3 THEN 'deleted' WHEN 2 THEN 'refunded' WHEN 1 THEN 'completed'
              ELSE CASE WHEN delivered >= quantity THEN 'completed' ELSE 'pending' END END AS status
  FROM r
)
SELECT 'status', status, count(*), 0 FROM s GROUP BY status
UNION ALL
SELECT 'outstanding', '', 0, coalesce(sum(outstanding), 0) FROM s WHERE status = 'pending'
UNION ALL
SELECT * FROM (SELECT 'customer', customer_id, 0, sum(outstanding) AS o FROM s WHERE status = 'pending'
               GROUP BY customer_id ORDER BY o DESC, customer_id LIMIT 10) t
"""

NAMES = """SELECT stream, {name} FROM events WHERE tenant = 'default' AND stream IN ({marks})
           AND type IN ('CustomerRegistered','CustomerUpdated') ORDER BY version"""


def dashboard_from_rows(rows, names):
    out = {"byStatus": {}, "outstanding": 0, "topCustomers": []}
    top = []
    for kind, key, n, q in rows:
        if kind == "status":
            out["byStatus"][key] = int(n)
        elif kind == "outstanding":
            out["outstanding"] = int(q)
        else:
            top.append((key, int(q)))
    out["topCustomers"] = [(c, names.get(c, c), q) for c, q in top]
    return out


class SQLite:
    """SQLite 3 through Python's sqlite3 (the C library; statements are prepared once and
    cached). WAL journal, synchronous=FULL (the WAL is fsynced at every commit), a 1 GiB page
    cache, memory-mapped reads, 16-byte binary event ids."""
    name = "SQLite"
    pid = None

    def __init__(self, base, synchronous="FULL"):
        self.path = f"{base}/sqlite-{synchronous.lower()}.db"
        self.synchronous = synchronous
        self.settings = (f"SQLite {sqlite3.sqlite_version}, journal_mode=WAL, synchronous={synchronous}, cache_size=1 GiB, "
                         "mmap_size=1 GiB, temp_store=MEMORY, id BLOB(16) UNIQUE, UNIQUE(tenant, stream, version), "
                         "executemany of a prepared INSERT, 1,000 rows a transaction; 32 clients: one connection each, writes queued on an application lock")
        db = self.connect()
        db.executescript("""
          CREATE TABLE IF NOT EXISTS events(
            id BLOB NOT NULL UNIQUE, tenant TEXT NOT NULL, stream TEXT NOT NULL, version INTEGER NOT NULL,
            type TEXT NOT NULL, at TEXT NOT NULL, actor TEXT NOT NULL, correlation_id TEXT,
            quantity INTEGER, customer_id TEXT, data TEXT NOT NULL,
            UNIQUE (tenant, stream, version));""")
        db.close()

    def connect(self):
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=60)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={self.synchronous}")
        db.execute("PRAGMA cache_size=-1048576")
        db.execute("PRAGMA mmap_size=1073741824")
        db.execute("PRAGMA temp_store=MEMORY")
        db.execute("PRAGMA busy_timeout=60000")
        return db

    INSERT = "INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?)"

    @staticmethod
    def values(r):
        return (uuid.UUID(r.id).bytes, r.tenant, r.stream, r.version, r.type, r.at, r.actor, r.corr, r.quantity, r.customer, r.data)

    def load(self, rows):
        db = self.connect()
        with Meter() as m:
            for batch in batches(rows, 1000):
                db.execute("BEGIN IMMEDIATE")
                db.executemany(self.INSERT, [self.values(r) for r in batch])
                db.execute("COMMIT")
        db.close()
        return m

    def single(self, rows):
        db = self.connect()
        lat = []
        for r in rows:
            v = self.values(r)
            t0 = time.perf_counter()
            db.execute(self.INSERT, v)  # autocommit: one durable transaction per event
            lat.append(time.perf_counter() - t0)
        db.close()
        return lat

    def concurrent(self, per_client_rows):
        # SQLite allows one writer at a time; a writer that finds the database locked sleeps
        # in its busy handler (up to 100 ms), which made 32 connections ~20× slower than
        # one. An application lock that queues the writers, as SQLite's docs suggest for
        # concurrent writers in one process, is the fair setup.
        write_lock = threading.Lock()

        def append_one(db, row):
            v = self.values(row)
            with write_lock:
                db.execute(self.INSERT, v)
        return run_clients([self.connect() for _ in per_client_rows], per_client_rows, append_one)

    def read_back(self):
        db = self.connect()
        with Meter() as m:
            n, _ = drain(db.execute("SELECT id, tenant, stream, version, type, at, actor, correlation_id, data FROM events ORDER BY rowid"))
        db.close()
        return m, n

    def index_for_dashboard(self):
        db = self.connect()
        t0 = time.perf_counter()
        db.execute("CREATE INDEX IF NOT EXISTS events_dashboard ON events(tenant, stream, type, version, quantity, customer_id)")
        db.execute("ANALYZE")
        db.close()
        return time.perf_counter() - t0

    def dashboard(self):
        db = self.connect()
        with Meter() as m:
            rows = db.execute(DASHBOARD).fetchall()
            top = [r[1] for r in rows if r[0] == "customer"]
            names = {}
            if top:
                for s, n in db.execute(NAMES.format(name="json_extract(data, '$.name')", marks=",".join("?" * len(top))), top):
                    if n is not None:
                        names[s] = n
            result = dashboard_from_rows(rows, names)
        db.close()
        return m, result

    def disk_bytes(self):
        db = self.connect()
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        return allocated_bytes(self.path), "database file after a WAL checkpoint (table and both indexes)"


class Postgres:
    """PostgreSQL 15 through psycopg 3 (the driver the PostgreSQL docs list for Python; its
    COPY support is the bulk-load path the docs recommend). Ingest: COPY of 1,000 rows, one
    transaction per batch. Single events: a prepared INSERT in autocommit."""
    name = "PostgreSQL"

    def __init__(self, server, table="events", synchronous_commit="on"):
        import psycopg
        self.psycopg = psycopg
        self.server = server
        self.pid = server.pid
        self.table = table
        self.sc = synchronous_commit
        settings = ", ".join(f"{k}={v}" for k, v in server.settings.items() if k not in ("listen_addresses", "synchronous_commit"))
        self.settings = (f"PostgreSQL 15, synchronous_commit={synchronous_commit} (per session), {settings}; "
                         "id uuid UNIQUE, PRIMARY KEY (tenant, stream, version), data json; COPY of 1,000 rows a transaction")
        with self.connect() as c:
            c.execute(f"""CREATE TABLE IF NOT EXISTS {table}(
              id uuid NOT NULL UNIQUE, tenant text NOT NULL, stream text NOT NULL, version integer NOT NULL,
              type text NOT NULL, at timestamptz NOT NULL, actor text NOT NULL, correlation_id text,
              quantity integer, customer_id text, data json NOT NULL,
              PRIMARY KEY (tenant, stream, version))""")

    def connect(self):
        c = self.psycopg.connect(host="127.0.0.1", port=self.server.port, user="postgres", dbname="postgres", autocommit=True)
        c.execute(f"SET synchronous_commit = {self.sc}")
        return c

    COLUMNS = "(id, tenant, stream, version, type, at, actor, correlation_id, quantity, customer_id, data)"

    @staticmethod
    def values(r):
        return (r.id, r.tenant, r.stream, r.version, r.type, r.at, r.actor, r.corr, r.quantity, r.customer, r.data)

    def load(self, rows):
        c = self.connect()
        with Meter(self.pid) as m:
            for batch in batches(rows, 1000):
                with c.transaction():
                    with c.cursor().copy(f"COPY {self.table} {self.COLUMNS} FROM STDIN") as copy:
                        for r in batch:
                            copy.write_row(self.values(r))
        c.close()
        return m

    def insert_sql(self):
        return f"INSERT INTO {self.table} {self.COLUMNS} VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"

    def single(self, rows):
        c = self.connect()
        sql = self.insert_sql()
        lat = []
        for r in rows:
            v = self.values(r)
            t0 = time.perf_counter()
            c.execute(sql, v, prepare=True)
            lat.append(time.perf_counter() - t0)
        c.close()
        return lat

    def concurrent(self, per_client_rows):
        sql = self.insert_sql()
        return run_clients([self.connect() for _ in per_client_rows], per_client_rows,
                           lambda c, row: c.execute(sql, self.values(row), prepare=True), self.pid)

    def read_back(self):
        c = self.psycopg.connect(host="127.0.0.1", port=self.server.port, user="postgres", dbname="postgres")
        with Meter(self.pid) as m:
            with c.cursor(name="readback") as cur:
                cur.itersize = 10000
                cur.execute(f"SELECT id, tenant, stream, version, type, at, actor, correlation_id, data::text FROM {self.table}")
                n, _ = drain(cur)
        c.close()
        return m, n

    def index_for_dashboard(self):
        c = self.connect()
        t0 = time.perf_counter()
        c.execute(f"CREATE INDEX IF NOT EXISTS {self.table}_dashboard ON {self.table} (tenant, stream) "
                  "INCLUDE (type, version, quantity, customer_id)")
        c.execute(f"VACUUM ANALYZE {self.table}")
        c.close()
        return time.perf_counter() - t0

    def vacuum(self):
        c = self.connect()
        t0 = time.perf_counter()
        c.execute(f"VACUUM ANALYZE {self.table}")
        c.close()
        return time.perf_counter() - t0

    def dashboard(self):
        c = self.connect()
        with Meter(self.pid) as m:
            rows = c.execute(DASHBOARD.replace("FROM events", f"FROM {self.table}")).fetchall()
            top = [r[1] for r in rows if r[0] == "customer"]
            names = {}
            if top:
                sql = NAMES.replace("FROM events", f"FROM {self.table}").format(name="data->>'name'", marks=",".join(["%s"] * len(top)))
                for s, n in c.execute(sql, top):
                    if n is not None:
                        names[s] = n
            result = dashboard_from_rows(rows, names)
        c.close()
        return m, result

    def disk_bytes(self):
        c = self.connect()
        c.execute("CHECKPOINT")
        (n,) = c.execute(f"SELECT pg_total_relation_size('{self.table}')").fetchone()
        c.close()
        return n, "pg_total_relation_size (heap, TOAST, both indexes; the WAL is not counted)"
