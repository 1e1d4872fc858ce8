"""NATS JetStream as an event store: one stream EV (file storage) with a subject per event
stream (ev.<tenant>.<stream>). Nats-Msg-Id carries the event id (duplicates are dropped,
but only within the stream's duplicate window, 2 minutes by default); the
Nats-Expected-Last-Subject-Sequence header makes the server refuse an event whose stream
moved on (optimistic concurrency per stream, the pattern the NATS docs give for event
sourcing). nats-py, the official Python client, with publish_async (reads: an ordered consumer) (up to 4 batches of
1,000 in flight). nats-server 2.9 acknowledges before fsync (sync every 2 minutes), so
JetStream belongs to the "acknowledged before disk" group."""
import asyncio
import json
import time

from common import Meter, allocated_bytes, batches, fold_dashboard


class Nats:
    name = "NATS JetStream"

    def __init__(self, server):
        self.server = server
        self.pid = server.pid
        self.settings = ("nats-server 2.9.10, JetStream file storage (default sync interval 2 min: acknowledged before fsync), "
                         "Nats-Msg-Id = event id (duplicate window 2 min), Nats-Expected-Last-Subject-Sequence per stream subject; "
                         "nats-py publish_async, 4 batches of 1,000 in flight")
        self.last = {}   # subject → stream sequence of its newest message
        self.seq = 0     # the stream's last sequence (one publisher, so acks come in order)
        asyncio.run(self._setup())

    def url(self):
        return f"nats://127.0.0.1:{self.server.port}"

    async def _setup(self):
        import nats
        from nats.js.api import StorageType, StreamConfig
        nc = await nats.connect(self.url())
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name="EV", subjects=["ev.>"], storage=StorageType.FILE))
        await nc.close()

    def subject(self, r):
        return f"ev.{r.tenant}.{r.stream}"

    def headers(self, r, subject):
        h = {"Nats-Msg-Id": r.id, "Nats-Expected-Last-Subject-Sequence": str(self.last.get(subject, 0))}
        self.seq += 1
        self.last[subject] = self.seq
        return h

    def _run(self, coroutine):
        return asyncio.run(coroutine)

    async def _load(self, rows):
        import nats
        nc = await nats.connect(self.url(), pending_size=64 * 1024 * 1024)
        js = nc.jetstream(publish_async_max_pending=8000)
        in_flight = []
        for batch in batches(rows, 1000):
            futures = []
            for r in batch:
                s = self.subject(r)
                futures.append(await js.publish_async(s, r.line, headers=self.headers(r, s)))
            in_flight.append(futures)
            if len(in_flight) == 4:
                for ack in await asyncio.gather(*in_flight.pop(0)):
                    assert not ack.duplicate
        for futures in in_flight:
            await asyncio.gather(*futures)
        await nc.close()

    def load(self, rows):
        with Meter(self.pid) as m:
            self._run(self._load(rows))
        return m

    async def _single(self, rows):
        import nats
        nc = await nats.connect(self.url())
        js = nc.jetstream()
        lat = []
        for r in rows:
            s = self.subject(r)
            h = self.headers(r, s)
            t0 = time.perf_counter()
            await js.publish(s, r.line, headers=h)
            lat.append(time.perf_counter() - t0)
        await nc.close()
        return lat

    def single(self, rows):
        return self._run(self._single(rows))

    async def _concurrent(self, per_client_rows, meter):
        import nats
        conns = [await nats.connect(self.url()) for _ in per_client_rows]

        async def client(nc, rows):
            js = nc.jetstream()
            for r in rows:  # new subjects: expected last subject sequence 0
                await js.publish(self.subject(r), r.line, headers={"Nats-Msg-Id": r.id, "Nats-Expected-Last-Subject-Sequence": "0"})
        with meter:
            await asyncio.gather(*(client(nc, rows) for nc, rows in zip(conns, per_client_rows)))
        for nc in conns:
            await nc.close()

    def concurrent(self, per_client_rows):
        m = Meter(self.pid)
        self._run(self._concurrent(per_client_rows, m))
        self.seq += sum(len(r) for r in per_client_rows)
        return m

    async def _scan(self, handle):
        """Every message of the stream through an ordered push consumer: the NATS way to
        replay a stream (a pull consumer's fetch was 5× slower here with nats-py)."""
        import nats
        nc = await nats.connect(self.url(), pending_size=256 * 1024 * 1024)
        js = nc.jetstream()
        total = (await js.stream_info("EV")).state.messages
        done, count = asyncio.Event(), [0]

        async def on_message(msg):
            handle(msg)
            count[0] += 1
            if count[0] >= total:
                done.set()
        sub = await js.subscribe("ev.>", stream="EV", cb=on_message, ordered_consumer=True,
                                 pending_msgs_limit=1_000_000, pending_bytes_limit=1 << 30)
        await asyncio.wait_for(done.wait(), timeout=600)
        await sub.unsubscribe()
        await nc.close()
        return count[0]

    def read_back(self):
        size = [0]

        def handle(msg):
            size[0] += len(msg.data)
        with Meter(self.pid) as m:
            n = self._run(self._scan(handle))
        return m, n

    def dashboard(self):
        events = []

        def handle(msg):
            e = json.loads(msg.data)
            d = e["data"]
            events.append((e.get("tenant", "default"), e["type"], d.get("recordId") or d.get("customerId") or d.get("productId"), d))
        with Meter(self.pid) as m:
            self._run(self._scan(handle))
            result = fold_dashboard(events)
        return m, result

    def disk_bytes(self):
        return allocated_bytes(self.server.dir), "JetStream store directory (message blocks and indexes)"
