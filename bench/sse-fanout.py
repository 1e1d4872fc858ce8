#!/usr/bin/env python3
"""Live-update fan-out of `backorder serve`, timed at the subscribers' sockets (bench/RESULTS.md).

Opens N Server-Sent Event streams on one tenant, then appends E events one at a time, 20 ms
apart (each a new customer whose name carries the wall-clock time it was sent), and measures
for every subscriber and event the time from the append's send to the event's arrival. The
arrival is the kernel's receive timestamp of the bytes that completed the message
(SO_TIMESTAMPNS), so the client's own queueing — one Python thread reading N sockets — does
not count; the time the client itself saw it is reported beside it.

    python3 bench/sse-fanout.py --url http://127.0.0.1:8080 --subscribers 1000 --events 50
"""
import argparse, json, selectors, socket, struct, threading, time, uuid

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
SCM_TIMESTAMPNS = SO_TIMESTAMPNS

def connect(host, port, tenant):
    s = socket.create_connection((host, port))
    s.sendall(f"GET /v1/tenants/{tenant}/live HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    buffer = b""
    while b"retry:" not in buffer or b"\n\n" not in buffer[buffer.find(b"retry:"):]:
        chunk = s.recv(65536)
        if not chunk:
            raise SystemExit("a live stream ended before its first message")
        buffer += chunk
    s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    s.setblocking(False)
    return s

def append(host, port, tenant, n, gap):
    s = socket.create_connection((host, port))
    f = s.makefile("rb")
    for _ in range(n):
        cid = uuid.uuid4().hex[:12]
        body = json.dumps({"type": "CustomerRegistered", "actor": "bench",
                           "data": {"customerId": "C-" + cid, "number": cid, "name": f"sent {time.time():.6f}"}}) + "\n"
        s.sendall(f"POST /v1/tenants/{tenant}/events HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n\r\n{body}".encode())
        length = 0
        while True:
            line = f.readline()
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
            if line == b"\r\n":
                break
        f.read(length)
        time.sleep(gap)
    s.close()

def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", default="http://127.0.0.1:8080")
    p.add_argument("--subscribers", type=int, default=1000)
    p.add_argument("--events", type=int, default=50)
    p.add_argument("--gap", type=float, default=0.02)
    p.add_argument("--tenant", default="fanout")
    a = p.parse_args()
    host, port = a.url.split("//")[1].split(":")
    port = int(port)
    socks = [connect(host, port, a.tenant) for _ in range(a.subscribers)]
    sel = selectors.DefaultSelector()
    state = {}
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
        state[s] = [b"", 0]
    arrived, seen_by_client = [], []
    writer = threading.Thread(target=append, args=(host, port, a.tenant, a.events, a.gap))
    writer.start()
    expected = a.subscribers * a.events
    deadline = time.monotonic() + 60 + a.events * a.gap
    while len(arrived) < expected and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1):
            s = key.fileobj
            try:
                data, anc, _, _ = s.recvmsg(65536, 64)
            except BlockingIOError:
                continue
            now = time.time()
            if not data:
                sel.unregister(s)
                continue
            stamp = now
            for level, kind, raw in anc:
                if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS:
                    sec, nsec = struct.unpack("qq", raw[:16])
                    stamp = sec + nsec / 1e9
            st = state[s]
            st[0] += data
            while b"\n\n" in st[0]:
                message, st[0] = st[0].split(b"\n\n", 1)
                i = message.find(b'"sent ')
                if i >= 0 and b"data: {" in message:
                    sent = float(message[i + 6:].split(b'"')[0])
                    arrived.append(stamp - sent)
                    seen_by_client.append(now - sent)
    writer.join()
    for s in socks:
        s.close()
    def q(xs, f):
        xs = sorted(xs)
        return xs[min(len(xs) - 1, int(f * len(xs)))] * 1000
    print(f"{a.subscribers} subscribers, {a.events} events: {len(arrived)} of {expected} deliveries; "
          f"at the socket p50 {q(arrived, 0.5):.1f} ms, p99 {q(arrived, 0.99):.1f} ms, max {max(arrived) * 1000:.1f} ms; "
          f"seen by this client p50 {q(seen_by_client, 0.5):.1f} ms, p99 {q(seen_by_client, 0.99):.1f} ms")

main()
