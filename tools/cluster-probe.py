#!/usr/bin/env python3
"""tools/cluster-probe.py: what a NATS JetStream cluster gives Backorder (issue 10, docs/CLUSTER.md).

Against a 3-node nats-server cluster (tools/cluster.sh), with the official Python client:

1. For an R1 and an R3 file-storage stream, publishes Backorder events
   a. one at a time (each awaited),
   b. pipelined (a window of unacknowledged publishes),
   c. as compressed batches (up to --batch-events events of one partition per message, lz4),
   every message with Nats-Msg-Id (the event id, or the batch's id) and
   Nats-Expected-Last-Subject-Sequence (the subject's previous sequence), and reports
   acknowledged events/s and p50/p99 publish latency.
2. Checks the two headers' semantics once: a republished id is acknowledged as a duplicate
   (even with a stale expected sequence), a stale expected sequence on a new id is refused.
3. Failure run (--kill): publishes to an R3 stream, SIGKILLs the stream's leader node part way
   (tools/cluster.sh kill-node), restarts it, retries every unacknowledged publish with the
   same id and headers, then checks that every acknowledged event is stored exactly once at
   its acknowledged sequence, that nothing else is stored, and that all replicas agree.

Without --dir it starts its own cluster in a temporary directory (ports --base-port…) and
stops it, by the PIDs tools/cluster.sh recorded, whatever happens. Needs nats-py and lz4
(bench/compare.sh's venv /tmp/backorder-compare-venv has both).

Payloads are the NDJSON lines of `backorder generate` (about 300 bytes), not the binary
envelope of docs/EVENTS.md (about 170 bytes): Python has no envelope encoder, and the figures
are about messages, not bytes.
"""
import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
CLUSTER_SH = os.path.join(HERE, "cluster.sh")
PARTITIONS = 8


def fnv1a64(data: bytes) -> int:
    """The log's partitioner (FORMAT.md, "Directory layout")."""
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def token(text: str) -> str:
    """One subject token: bytes other than A-Z a-z 0-9 _ - : / become %XX, so '.', '*', '>'
    and white space (which NATS subjects reserve) never occur and the mapping is reversible."""
    out = []
    for b in text.encode():
        c = chr(b)
        out.append(c if (c.isascii() and (c.isalnum() or c in "_-:/")) else f"%{b:02X}")
    return "".join(out)


class Event:
    __slots__ = ("id", "tenant", "stream", "partition", "line")

    def __init__(self, line: bytes, number: int):
        try:
            obj = json.loads(line)
            kind = obj["type"]
            data = obj["data"]
            if kind.startswith("Customer"):
                stream = "customer/" + data["customerId"]
            elif kind.startswith("Product"):
                stream = "product/" + data["productId"]
            else:
                stream = "record/" + data["recordId"]
            self.id = obj["id"]
            self.tenant = obj["tenant"]
        except (ValueError, KeyError, TypeError) as e:
            raise SystemExit(f"input line {number}: not a generated event ({e})")
        self.stream = stream
        self.partition = fnv1a64(self.tenant.encode() + b"\0" + stream.encode()) % PARTITIONS
        self.line = line


def load_events(args):
    if args.input:
        with open(args.input, "rb") as f:
            lines = [l.rstrip(b"\n") for l in f if l.strip()]
    else:
        exe = args.backorder
        if not os.path.exists(exe):
            raise SystemExit(f"{exe} not found: build it (swift build) or pass --input FILE / --backorder PATH")
        out = subprocess.run([exe, "generate", "--events", str(args.events), "--seed", "3"],
                             check=True, capture_output=True).stdout
        lines = out.splitlines()
    return [Event(l, i + 1) for i, l in enumerate(lines)]


def percentile(values, p):
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def summary(name, events, seconds, latencies, messages, payload_bytes):
    return {"phase": name, "events": events, "messages": messages, "seconds": round(seconds, 3),
            "events_per_s": round(events / seconds), "p50_ms": round(percentile(latencies, 50) * 1e3, 3),
            "p99_ms": round(percentile(latencies, 99) * 1e3, 3),
            "bytes_per_event": round(payload_bytes / max(events, 1), 1)}


def http_json(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as r:
        return json.load(r)


class Cluster:
    """tools/cluster.sh in a directory: start, stop (by recorded PID), kill and restart nodes."""

    def __init__(self, directory, base_port, own):
        self.dir, self.base_port, self.own = directory, base_port, own
        self.down = set()  # nodes this run killed and has not restarted

    def sh(self, *argv):
        cmd = [CLUSTER_SH, *argv, "--dir", self.dir]
        if argv[0] == "start":
            cmd += ["--base-port", str(self.base_port), "--nodes", "3"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stdout}{r.stderr}")
        if argv[0] == "kill-node":
            self.down.add(argv[1])
        elif argv[0] == "start-node":
            self.down.discard(argv[1])
        return r.stdout

    def urls(self):
        return [f"nats://127.0.0.1:{self.base_port + i}" for i in range(3)]

    def monitor_port(self, node):
        return self.base_port + 4000 + node - 1


class PublishError(Exception):
    """The server refused a publish (or nobody answered: code 503)."""

    def __init__(self, code, err_code, description):
        super().__init__(f"code {code}, err_code {err_code}: {description}")
        self.code, self.err_code, self.description = code, err_code, description


class Ack:
    __slots__ = ("seq", "duplicate")

    def __init__(self, seq, duplicate):
        self.seq, self.duplicate = seq, duplicate


class AsyncPublisher:
    """Pipelined JetStream publishes: one inbox subscription, a future per publish.
    nats-py 2.16's own publish_async raises a server's error reply (e.g. err_code 10071,
    wrong last sequence) inside its reply handler instead of failing the future, which then
    never completes; this one fails the future."""

    def __init__(self, nc):
        self.nc, self.futures, self.next = nc, {}, 0

    async def start(self):
        self.prefix = self.nc.new_inbox()
        await self.nc.subscribe(self.prefix + ".*", cb=self._reply)
        return self

    async def publish(self, subject, payload, headers):
        self.next += 1
        token = str(self.next)
        fut = asyncio.get_running_loop().create_future()
        self.futures[token] = fut
        await self.nc.publish(subject, payload, reply=f"{self.prefix}.{token}", headers=headers)
        return fut

    async def _reply(self, msg):
        fut = self.futures.pop(msg.subject[len(self.prefix) + 1:], None)
        if fut is None or fut.done():
            return
        if msg.headers and msg.headers.get("Status") == "503":
            fut.set_exception(PublishError(503, 0, "no responders (no stream leader)"))
            return
        try:
            reply = json.loads(msg.data)
        except ValueError:
            fut.set_exception(PublishError(0, 0, f"unreadable reply {msg.data[:80]!r}"))
            return
        if "error" in reply:
            e = reply["error"]
            fut.set_exception(PublishError(e.get("code"), e.get("err_code"), e.get("description")))
        else:
            fut.set_result(Ack(reply["seq"], reply.get("duplicate", False)))


async def create_stream(js, name, subjects, replicas):
    from nats.js.api import StorageType, StreamConfig
    from nats.js.errors import NotFoundError
    try:
        await js.delete_stream(name)
    except NotFoundError:
        pass
    await js.add_stream(StreamConfig(name=name, subjects=subjects, storage=StorageType.FILE,
                                     num_replicas=replicas, duplicate_window=120.0))
    for _ in range(100):
        info = await js.stream_info(name)
        if replicas == 1 or (info.cluster and info.cluster.leader):
            return info
        await asyncio.sleep(0.1)
    raise RuntimeError(f"stream {name} has no leader")


def event_subject(prefix, e):
    return f"{prefix}.{e.partition}.{token(e.tenant)}.{token(e.stream)}"


async def publish_single(js, prefix, events, last):
    latencies = []
    start = time.perf_counter()
    for e in events:
        s = event_subject(prefix, e)
        h = {"Nats-Msg-Id": e.id, "Nats-Expected-Last-Subject-Sequence": str(last.get(s, 0))}
        t = time.perf_counter()
        ack = await js.publish(s, e.line, headers=h, timeout=10)
        latencies.append(time.perf_counter() - t)
        assert not ack.duplicate, f"{e.id} acknowledged as a duplicate"
        last[s] = ack.seq
    return time.perf_counter() - start, latencies, sum(len(e.line) for e in events)


async def pipeline(pub, messages, last, window):
    """Publishes (subject, payload, msg id, events) messages with up to `window` of them
    unacknowledged but at most ONE per subject: nats-server 2.9 checks an R3 stream's
    expected last-subject-sequence against what the leader has applied, so a second
    conditional publish on a subject whose first is still in flight is refused as "wrong
    last sequence" (see `semantics`). Each expected sequence comes from acknowledged state.
    In rounds: a round takes the next message of as many distinct subjects as fit, in input
    order (per subject, order is kept), and waits for all of its acknowledgements."""
    latencies = []
    todo = list(messages)
    start = time.perf_counter()
    while todo:
        round_, later, used = [], [], set()
        for m in todo:
            if len(round_) < window and m[0] not in used:
                round_.append(m)
                used.add(m[0])
            else:
                later.append(m)
        futures = []
        for subject, payload, msg_id, _ in round_:
            h = {"Nats-Msg-Id": msg_id, "Nats-Expected-Last-Subject-Sequence": str(last.get(subject, 0))}
            t = time.perf_counter()
            fut = await pub.publish(subject, payload, headers=h)
            fut.add_done_callback(lambda f, t=t: latencies.append(time.perf_counter() - t))
            futures.append(fut)
        for (subject, _, msg_id, _), fut in zip(round_, futures):
            ack = await asyncio.wait_for(fut, 30)
            if ack.duplicate:
                raise RuntimeError(f"{msg_id} acknowledged as a duplicate")
            last[subject] = ack.seq
        todo = later
    return time.perf_counter() - start, latencies


async def publish_pipelined(pub, prefix, events, last, window):
    messages = [(event_subject(prefix, e), e.line, e.id, 1) for e in events]
    secs, lat = await pipeline(pub, messages, last, window)
    return secs, lat, sum(len(e.line) for e in events)


async def publish_batches(pub, prefix, events, batch_events, window):
    """Events of one partition, in input order, cut into batches of `batch_events`, each
    one lz4-compressed message on the partition's subject (the embedded log's batching);
    the partitions' batches interleaved round robin, as concurrent producers would send them."""
    import lz4.frame
    queues = [[] for _ in range(PARTITIONS)]
    for e in events:
        queues[e.partition].append(e)
    chunks = [[q[i:i + batch_events] for i in range(0, len(q), batch_events)] for q in queues]
    messages = []
    while any(chunks):
        for p, cs in enumerate(chunks):
            if cs:
                chunk = cs.pop(0)
                body = lz4.frame.compress(b"\n".join(e.line for e in chunk))
                messages.append((f"{prefix}.p{p}", body, f"batch-{chunk[0].id}-{len(chunk)}", len(chunk)))
    secs, lat = await pipeline(pub, messages, {}, window)
    return secs, lat, sum(len(m[1]) for m in messages), len(messages)


async def semantics(js, prefix):
    """Dedup and expected last-subject-sequence, as nats-server answers them."""
    from nats.js.errors import APIError
    s = f"{prefix}.semantics"
    a = await js.publish(s, b"a", headers={"Nats-Msg-Id": "sem-a", "Nats-Expected-Last-Subject-Sequence": "0"})
    again = await js.publish(s, b"a", headers={"Nats-Msg-Id": "sem-a", "Nats-Expected-Last-Subject-Sequence": "0"})
    result = {"first_seq": a.seq, "republished_same_id_stale_expected": f"duplicate={again.duplicate}, seq={again.seq}"}
    try:
        await js.publish(s, b"b", headers={"Nats-Msg-Id": "sem-b", "Nats-Expected-Last-Subject-Sequence": "0"})
        result["new_id_stale_expected"] = "accepted (unexpected)"
    except APIError as e:
        result["new_id_stale_expected"] = f"refused: err_code {e.err_code}, {e.description}"
    b = await js.publish(s, b"b", headers={"Nats-Msg-Id": "sem-b", "Nats-Expected-Last-Subject-Sequence": str(a.seq)})
    result["new_id_right_expected"] = f"seq={b.seq}"
    return result


async def in_flight_check(pub, js, prefix):
    """Two conditional publishes on one fresh subject, the second sent before the first is
    acknowledged, with the sequence the first will get as its expected one."""
    s = f"{prefix}.inflight"
    info = await js.stream_info(prefix.replace("probe.r", "PROBE_R"))
    first = await pub.publish(s, b"1", {"Nats-Msg-Id": "if-1", "Nats-Expected-Last-Subject-Sequence": "0"})
    second = await pub.publish(s, b"2", {"Nats-Msg-Id": "if-2",
                                         "Nats-Expected-Last-Subject-Sequence": str(info.state.last_seq + 1)})
    a = await asyncio.wait_for(first, 10)
    try:
        b = await asyncio.wait_for(second, 10)
        return f"first seq {a.seq}; second (predicted expected {info.state.last_seq + 1}) accepted at seq {b.seq}"
    except PublishError as e:
        return f"first seq {a.seq}; second (predicted expected {info.state.last_seq + 1}) refused: err_code {e.err_code}, {e.description}"


async def measure(nc, args, events):
    js = nc.jetstream()
    pub = await AsyncPublisher(nc).start()
    single = events[:args.single]
    rest = events[args.single:]
    rows = []
    checks = {}
    for replicas in (1, 3):
        name, prefix = f"PROBE_R{replicas}", f"probe.r{replicas}"
        await create_stream(js, name, [prefix + ".>"], replicas)
        if replicas == 3:
            checks.update(await semantics(js, prefix))
        inflight = await in_flight_check(pub, js, prefix)
        checks[f"R{replicas} second conditional publish on a subject while the first is in flight"] = inflight
        print(f"  R{replicas} in flight: {inflight}", flush=True)
        last = {}
        secs, lat, size = await publish_single(js, prefix, single, last)
        rows.append({"replicas": replicas, **summary("one at a time", len(single), secs, lat, len(single), size)})
        info = await js.stream_info(name)
        secs, lat, size = await publish_pipelined(pub, prefix, rest, last, args.window)
        rows.append({"replicas": replicas, **summary(f"pipelined, window {args.window} (1 per subject)", len(rest), secs, lat, len(rest), size)})
        secs, lat, size, count = await publish_batches(pub, prefix + ".b", rest, args.batch_events, args.batch_window)
        rows.append({"replicas": replicas, **summary(f"lz4 batches of {args.batch_events}, window {args.batch_window} (1 per partition)",
                                                     len(rest), secs, lat, count, size)})
        for r in rows[-3:]:
            print(f"  R{replicas} {r['phase']}: {r['events_per_s']} events/s, p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms",
                  flush=True)
        await js.delete_stream(name)
    return rows, checks


async def kill_run(nc, args, events, cluster):
    """Publishes to an R3 stream, SIGKILLs the stream leader's node after a third of the
    events and restarts it after two thirds; every publish is retried with the same id and
    headers until acknowledged. Then checks what is stored."""
    js = nc.jetstream()
    pub = await AsyncPublisher(nc).start()
    name, prefix = "PROBE_KILL", "probe.kill"
    info = await create_stream(js, name, [prefix + ".>"], 3)
    leader = info.cluster.leader
    node = int(leader.lstrip("n"))
    acked = {}           # event id → acknowledged sequence
    last = {}            # subject → last acknowledged sequence
    duplicates = retries = 0
    errors = {}
    killed_at = restarted_at = None
    gaps = []
    last_ack_time = time.perf_counter()
    todo = list(events)
    start = time.perf_counter()
    while todo:
        # One publish per subject per round, so each expected last-subject-sequence is
        # known from acknowledged state even when some publishes of the round fail.
        window, later, used = [], [], set()
        for e in todo:
            s = event_subject(prefix, e)
            if len(window) < args.window and s not in used:
                window.append((e, s))
                used.add(s)
            else:
                later.append(e)
        futures = []
        for e, s in window:
            h = {"Nats-Msg-Id": e.id, "Nats-Expected-Last-Subject-Sequence": str(last.get(s, 0))}
            try:
                futures.append(await pub.publish(s, e.line, headers=h))
            except Exception as ex:  # the client may refuse while it reconnects
                futures.append(ex)
        # One deadline for the whole round: publishes lost with a dead connection never
        # get an answer, and waiting for each in turn would take the round's size × timeout.
        waiting = [f for f in futures if not isinstance(f, Exception)]
        if waiting:
            await asyncio.wait(waiting, timeout=args.ack_timeout)
        failed = []
        for (e, s), fut in zip(window, futures):
            try:
                if isinstance(fut, Exception):
                    raise fut
                if not fut.done():
                    fut.cancel()
                    raise asyncio.TimeoutError()
                ack = fut.result()
            except Exception as ex:  # timeouts, refusals, a connection lost while reconnecting
                kind = (f"{ex.code}/{ex.err_code} {ex.description[:60]}" if isinstance(ex, PublishError)
                        else type(ex).__name__)
                errors[kind] = errors.get(kind, 0) + 1
                failed.append(e)
                continue
            now = time.perf_counter()
            gaps.append(now - last_ack_time)
            last_ack_time = now
            if ack.duplicate:
                duplicates += 1
            if e.id in acked and acked[e.id] != ack.seq:
                raise RuntimeError(f"{e.id} acknowledged at {acked[e.id]} and at {ack.seq}")
            acked[e.id] = ack.seq
            last[s] = ack.seq
        if failed:
            retries += len(failed)
            await asyncio.sleep(0.2)
        # Failed ones go first again: per subject, order is kept.
        failed_ids = {e.id for e in failed}
        todo = failed + [e for e in later if e.id not in failed_ids]
        done = len(acked)
        if killed_at is None and done >= len(events) // 3:
            print(f"  {done} acknowledged; SIGKILL {leader} (stream leader)", flush=True)
            cluster.sh("kill-node", str(node))
            killed_at = time.perf_counter() - start
        elif killed_at is not None and restarted_at is None and done >= 2 * len(events) // 3:
            print(f"  {done} acknowledged; restarting {leader}", flush=True)
            cluster.sh("start-node", str(node))
            restarted_at = time.perf_counter() - start
        if time.perf_counter() - start > args.kill_deadline:
            raise RuntimeError(f"kill run not done after {args.kill_deadline} s: {len(acked)} of {len(events)} acknowledged")
    if restarted_at is None:  # tiny runs: make sure the node comes back before checking
        if killed_at is not None:
            cluster.sh("start-node", str(node))
        restarted_at = time.perf_counter() - start
    elapsed = time.perf_counter() - start

    # Wait until every replica is current again.
    current = False
    for _ in range(300):
        info = await js.stream_info(name)
        reps = info.cluster.replicas or []
        if info.cluster.leader and len(reps) == 2 and all(r.current and not r.offline for r in reps):
            current = True
            break
        await asyncio.sleep(0.2)

    # Read everything back with an ordered consumer: sequence → Nats-Msg-Id.
    stored = {}
    done_reading = asyncio.Event()
    total = info.state.messages

    async def on_msg(msg):
        stored[msg.metadata.sequence.stream] = msg.headers.get("Nats-Msg-Id") if msg.headers else None
        if len(stored) >= total:
            done_reading.set()

    sub = await js.subscribe(prefix + ".>", cb=on_msg, ordered_consumer=True)
    try:
        await asyncio.wait_for(done_reading.wait(), 120)
    finally:
        await sub.unsubscribe()
    ids = list(stored.values())
    input_ids = {e.id for e in events}
    lost = [i for i, seq in acked.items() if stored.get(seq) != i]
    dup = len(ids) - len(set(ids))
    foreign = [i for i in ids if i not in input_ids]

    # Each node's own view of the stream (monitoring endpoint).
    per_node = {}
    for n in (1, 2, 3):
        try:
            jsz = http_json(cluster.monitor_port(n), "/jsz?accounts=true&streams=true")
            for acc in jsz.get("account_details", []):
                for st in acc.get("stream_detail", []):
                    if st["name"] == name:
                        per_node[f"n{n}"] = {"messages": st["state"]["messages"], "last_seq": st["state"]["last_seq"]}
        except OSError as ex:
            per_node[f"n{n}"] = f"no answer ({ex})"
    await js.delete_stream(name)
    result = {
        "events": len(events), "acknowledged": len(acked), "killed": leader,
        "killed_at_s": round(killed_at or 0, 2), "restarted_at_s": round(restarted_at, 2), "seconds": round(elapsed, 2),
        "events_per_s": round(len(events) / elapsed), "longest_gap_between_acks_s": round(max(gaps), 3),
        "retried_publishes": retries, "errors": errors, "acks_marked_duplicate": duplicates,
        "replicas_current_after_restart": current, "stored_messages": total, "read_back": len(stored),
        "acknowledged_missing_or_moved": len(lost), "duplicate_ids_stored": dup, "ids_not_in_input": len(foreign),
        "per_node": per_node,
    }
    result["ok"] = (len(acked) == len(events) and not lost and dup == 0 and not foreign and total == len(events)
                    and current and len({json.dumps(v, sort_keys=True) for v in per_node.values()}) == 1)
    return result


async def run(args, cluster):
    import nats
    events = load_events(args)
    if len(events) <= args.single:
        raise SystemExit(f"need more than --single {args.single} events, have {len(events)}")
    nc = await nats.connect(servers=cluster.urls(), pending_size=64 << 20, max_reconnect_attempts=-1,
                            reconnect_time_wait=0.2, connect_timeout=2)
    try:
        out = {"events": len(events), "single": args.single, "window": args.window,
               "batch_events": args.batch_events, "uptime_before": os.popen("uptime").read().strip()}
        if not args.kill_only:
            out["rows"], out["semantics"] = await measure(nc, args, events)
        if args.kill or args.kill_only:
            out["kill"] = await kill_run(nc, args, events[:args.kill_events], cluster)
        out["uptime_after"] = os.popen("uptime").read().strip()
        return out
    finally:
        await nc.close()


def render(out):
    lines = [f"machine load: before {out['uptime_before']}; after {out['uptime_after']}", ""]
    if "rows" in out:
        lines += ["| replicas | publishing | events | messages | acknowledged events/s | p50 ms | p99 ms | payload B/event |",
                  "|---:|---|---:|---:|---:|---:|---:|---:|"]
        for r in out["rows"]:
            lines.append(f"| R{r['replicas']} | {r['phase']} | {r['events']} | {r['messages']} | {r['events_per_s']:,} | "
                         f"{r['p50_ms']} | {r['p99_ms']} | {r['bytes_per_event']} |")
        lines += ["", "semantics: " + json.dumps(out["semantics"])]
    if "kill" in out:
        lines += ["", "kill run: " + json.dumps(out["kill"])]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", help="use the cluster tools/cluster.sh runs in DIR (else start one in a temporary directory)")
    ap.add_argument("--base-port", type=int, default=4322, help="client ports of an own cluster (default 4322-4324)")
    ap.add_argument("--events", type=int, default=20000, help="events to generate (default 20000)")
    ap.add_argument("--input", help="NDJSON of `backorder generate` instead of generating")
    ap.add_argument("--backorder", default=os.path.join(HERE, "..", ".build", "debug", "backorder"),
                    help="the backorder binary for generate (default: this checkout's debug build)")
    ap.add_argument("--single", type=int, default=1000, help="events published one at a time (default 1000)")
    ap.add_argument("--window", type=int, default=1000, help="unacknowledged publishes when pipelining (default 1000)")
    ap.add_argument("--batch-events", type=int, default=256, help="events per compressed batch message (default 256)")
    ap.add_argument("--batch-window", type=int, default=8, help="unacknowledged batch messages, one per partition (default 8)")
    ap.add_argument("--kill", action="store_true", help="also run the SIGKILL test")
    ap.add_argument("--kill-only", action="store_true", help="only the SIGKILL test")
    ap.add_argument("--kill-events", type=int, default=20000, help="events of the SIGKILL run (default 20000)")
    ap.add_argument("--ack-timeout", type=float, default=2.0, help="seconds before an unacknowledged publish is retried")
    ap.add_argument("--kill-deadline", type=float, default=300, help="give up the SIGKILL run after this many seconds")
    ap.add_argument("--json", help="write the results here as JSON")
    args = ap.parse_args()

    own = args.dir is None
    directory = args.dir or tempfile.mkdtemp(prefix="backorder-probe-")
    base_port = args.base_port
    if not own:
        env = open(os.path.join(directory, "cluster.env")).read()
        base_port = int(env.split("base_port=")[1].split()[0])
    cluster = Cluster(directory, base_port, own)

    # Stop our cluster on SIGTERM/SIGINT too (by the recorded PIDs, in finally below).
    def interrupted(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, interrupted)
    status = 1
    try:
        if own:
            print(cluster.sh("start").strip(), flush=True)
        out = asyncio.run(run(args, cluster))
        print(render(out))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(out, f, indent=1)
        status = 0 if out.get("kill", {}).get("ok", True) else 1
    finally:
        if own:
            print(cluster.sh("stop").strip(), flush=True)
            shutil.rmtree(directory, ignore_errors=True)
        else:
            # A cluster we were given goes back as we found it: restart what we killed.
            for node in sorted(cluster.down):
                try:
                    print(cluster.sh("start-node", node).strip(), flush=True)
                except RuntimeError as e:
                    print(f"could not restart node n{node}: {e}", file=sys.stderr)
    sys.exit(status)


if __name__ == "__main__":
    main()
