#!/usr/bin/env python3
"""Live-update fan-out of `backorder serve` (bench/RESULTS.md, "serve").

Opens N Server-Sent Event streams on one tenant, then appends E events one at a time (each
a new customer whose name carries the time it was sent) and measures, for every subscriber
and event, the time from the append request's send to the event's arrival on the stream.

    python3 bench/sse-fanout.py --url http://127.0.0.1:8080 --subscribers 1000 --events 50
"""
import argparse, asyncio, json, statistics, time, uuid

async def subscriber(host, port, tenant, ready, latencies, expected, done):
    reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
    writer.write(f"GET /v1/tenants/{tenant}/live HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    await writer.drain()
    buffer = b""
    while b"retry:" not in buffer:
        buffer += await reader.read(65536)
    ready.release()
    seen = 0
    buffer = b""
    while seen < expected:
        chunk = await reader.read(65536)
        if not chunk:
            break
        now = time.monotonic()
        buffer += chunk
        while b"\n\n" in buffer:
            message, buffer = buffer.split(b"\n\n", 1)
            for line in message.split(b"\n"):
                if line.startswith(b"data: {") and b'"sent ' in line:
                    sent = float(line.split(b'"sent ')[1].split(b'"')[0])
                    latencies.append(now - sent)
                    seen += 1
    writer.close()
    done.release()

async def append(host, port, tenant, n):
    reader, writer = await asyncio.open_connection(host, port)
    for i in range(n):
        cid = uuid.uuid4().hex[:12]
        body = json.dumps({"type": "CustomerRegistered", "actor": "bench",
                           "data": {"customerId": "C-" + cid, "number": cid, "name": f"sent {time.monotonic():.6f}"}}) + "\n"
        writer.write(f"POST /v1/tenants/{tenant}/events HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n\r\n{body}".encode())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        length = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0].split(b":")[1])
        await reader.readexactly(length)
        await asyncio.sleep(0.02)
    writer.close()

async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", default="http://127.0.0.1:8080")
    p.add_argument("--subscribers", type=int, default=1000)
    p.add_argument("--events", type=int, default=50)
    p.add_argument("--tenant", default="fanout")
    a = p.parse_args()
    host, port = a.url.split("//")[1].split(":")
    port = int(port)
    ready, done = asyncio.Semaphore(0), asyncio.Semaphore(0)
    latencies = []
    tasks = [asyncio.create_task(subscriber(host, port, a.tenant, ready, latencies, a.events, done)) for _ in range(a.subscribers)]
    for _ in range(a.subscribers):
        await ready.acquire()
    await append(host, port, a.tenant, a.events)
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
    except asyncio.TimeoutError:
        pass
    latencies.sort()
    q = lambda f: latencies[min(len(latencies) - 1, int(f * len(latencies)))] * 1000
    print(f"{a.subscribers} subscribers, {a.events} events: {len(latencies)} of {a.subscribers * a.events} deliveries; "
          f"latency p50 {q(0.5):.1f} ms, p99 {q(0.99):.1f} ms, max {latencies[-1] * 1000:.1f} ms")

asyncio.run(main())
