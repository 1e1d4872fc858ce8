#!/usr/bin/env python3
"""Live latency from a durable append's acknowledgement to a follower's line (issue 18).

    python3 bench/follow-after-ack.py [BACKORDER] [ROUNDS]

`backorder serve` (fsync) takes single-event appends over one keep-alive HTTP connection;
`backorder read --follow` runs beside it as another process (read-only). For each append:
the time from the moment its `201` has been read by the client to the moment the follower's
line is in its output file. A negative value would be a line out before its
acknowledgement reached the client (the server acknowledges, then the answer travels).
Runs in a temporary directory; prints p50, p90, p99 and max in milliseconds.
"""
import http.client, json, os, socket, subprocess, sys, tempfile, time, uuid

backorder = sys.argv[1] if len(sys.argv) > 1 else ".build/release/backorder"
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 300


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


with tempfile.TemporaryDirectory() as tmp:
    data = os.path.join(tmp, "data")
    port = free_port()
    server = subprocess.Popen([backorder, "serve", "--data", data, "--listen", f"127.0.0.1:{port}", "--insecure-no-auth"],
                              stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "serve.log"), "wb"))
    follower = None
    try:
        deadline = time.time() + 60
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                connection.request("GET", "/readyz")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                sys.exit("the server did not start")
            time.sleep(0.05)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

        def post(line):
            connection.request("POST", "/v1/tenants/t/events", body=line.encode())
            response = connection.getresponse()
            body = response.read()
            if response.status != 201:
                sys.exit(f"append answered {response.status}: {body[:300]!r}")

        post(json.dumps({"type": "CustomerRegistered", "actor": "u", "data": {"customerId": "C-1", "number": "1", "name": "A"}}) + "\n")
        out_path = os.path.join(tmp, "follow.out")
        follower = subprocess.Popen([backorder, "read", "--follow", "--data", data],
                                    stdout=open(out_path, "wb"), stderr=subprocess.DEVNULL)
        out = open(out_path, "rb")
        seen = 0

        def wait_lines(n):
            global seen
            while seen < n:
                chunk = out.read()
                if chunk:
                    seen += chunk.count(b"\n")
                else:
                    time.sleep(0.0001)

        wait_lines(1)
        latencies = []
        for i in range(rounds):
            line = json.dumps({"id": str(uuid.uuid4()), "type": "CustomerUpdated", "actor": "u",
                               "data": {"customerId": "C-1", "phone": str(i)}}) + "\n"
            post(line)
            acknowledged = time.perf_counter()
            wait_lines(i + 2)
            latencies.append((time.perf_counter() - acknowledged) * 1000)
        latencies.sort()
        pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
        print(f"{rounds} single-event appends over HTTP (fsync), read --follow in another process: "
              f"from the 201 to the follower's line p50 {pick(0.5):.2f} ms, p90 {pick(0.9):.2f} ms, "
              f"p99 {pick(0.99):.2f} ms, max {latencies[-1]:.2f} ms")
    finally:
        if follower:
            follower.terminate()
            follower.wait()
        server.terminate()
        server.wait()
