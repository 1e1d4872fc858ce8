"""Redis Streams as an event store: one stream key holds every event (XADD), a set holds
the event ids and a hash each stream's version. One Lua script appends a whole batch
atomically — it checks every id and expected version first and writes nothing if a
version is wrong (duplicates are skipped, as Backorder acknowledges them) — the pattern
the Redis docs give for conditional writes. redis-py with hiredis, batches pipelined
4 deep. With appendfsync always, Redis fsyncs the AOF before it sends the replies."""
import time

from common import Meter, allocated_bytes, batches, fold_dashboard, run_clients

SCRIPT = """
local p, n = ARGV[1], tonumber(ARGV[2])
local versions, seen, fresh = {}, {}, {}
for i = 0, n - 1 do
  local b = 2 + i * 8
  local id, s, v = ARGV[b + 1], ARGV[b + 2], tonumber(ARGV[b + 3])
  if not seen[id] and redis.call('SISMEMBER', p .. 'ids', id) == 0 then
    seen[id] = true
    local cur = versions[s]
    if cur == nil then cur = tonumber(redis.call('HGET', p .. 'ver', s) or '0') end
    if cur ~= v - 1 then return redis.error_reply('stream ' .. s .. ' is at version ' .. cur .. ', not ' .. (v - 1)) end
    versions[s] = v
    fresh[#fresh + 1] = b
  end
end
for _, b in ipairs(fresh) do
  redis.call('SADD', p .. 'ids', ARGV[b + 1])
  redis.call('XADD', p .. 'ev', '*', 'i', ARGV[b + 1], 's', ARGV[b + 2], 'v', ARGV[b + 3], 't', ARGV[b + 4],
             'a', ARGV[b + 5], 'u', ARGV[b + 6], 'c', ARGV[b + 7], 'd', ARGV[b + 8])
end
for s, v in pairs(versions) do redis.call('HSET', p .. 'ver', s, v) end
return #fresh
"""


class Redis:
    name = "Redis"

    def __init__(self, server, prefix="", appendfsync="always"):
        import redis
        self.redis = redis
        self.server = server
        self.pid = server.pid
        self.prefix = prefix
        self.appendfsync = appendfsync
        self.settings = (f"Redis 7.0, appendonly yes, appendfsync {appendfsync}, no RDB snapshots; redis-py + hiredis; "
                         "one Lua script (EVALSHA) per 1,000-event batch, 4 batches pipelined; ids in a SET, versions in a HASH, events in one stream")
        c = self.client()
        c.config_set("appendfsync", appendfsync)
        self.sha = c.script_load(SCRIPT)
        c.close()

    def client(self):
        return self.redis.Redis(host="127.0.0.1", port=self.server.port)

    def args(self, rows):
        a = [self.prefix, len(rows)]
        for r in rows:
            a += [r.id, f"{r.tenant}/{r.stream}", r.version, r.type, r.at, r.actor, r.corr or "", r.data]
        return a

    def load(self, rows):
        c = self.client()
        with Meter(self.pid) as m:
            pipe = c.pipeline(transaction=False)
            pending = 0
            for batch in batches(rows, 1000):
                pipe.evalsha(self.sha, 0, *self.args(batch))
                pending += 1
                if pending == 4:
                    pipe.execute()
                    pending = 0
            if pending:
                pipe.execute()
        c.close()
        return m

    def single(self, rows):
        c = self.client()
        lat = []
        for r in rows:
            a = self.args([r])
            t0 = time.perf_counter()
            c.evalsha(self.sha, 0, *a)
            lat.append(time.perf_counter() - t0)
        c.close()
        return lat

    def concurrent(self, per_client_rows):
        return run_clients([self.client() for _ in per_client_rows], per_client_rows,
                           lambda c, row: c.evalsha(self.sha, 0, *self.args([row])), self.pid)

    def scan(self, c):
        start = "-"
        while True:
            chunk = c.xrange(self.prefix + "ev", start, "+", count=10000)
            if not chunk:
                return
            yield chunk
            last = chunk[-1][0].decode()
            ms, seq = last.split("-")
            start = f"{ms}-{int(seq) + 1}"

    def read_back(self):
        c = self.client()
        n = size = 0
        with Meter(self.pid) as m:
            for chunk in self.scan(c):
                n += len(chunk)
                for _, fields in chunk:
                    size += len(fields[b"d"])
        c.close()
        return m, n

    def dashboard(self):
        import json
        c = self.client()
        with Meter(self.pid) as m:
            def items():
                for chunk in self.scan(c):
                    for _, f in chunk:
                        tenant, stream = f[b"s"].decode().split("/", 1)
                        yield tenant, f[b"t"].decode(), stream, json.loads(f[b"d"])
            result = fold_dashboard(items())
        c.close()
        return m, result

    def disk_bytes(self):
        c = self.client()
        mem = c.info("memory")["used_memory"]
        c.close()
        return allocated_bytes(f"{self.server.dir}/appendonlydir"), f"append-only file; the data set is also held in memory (used_memory {mem / 1e6:.0f} MB)"
