#!/usr/bin/env python3
"""Live latency of `backorder read --follow`: single-event `backorder append`s (fsync) in
another process, and for each, the time from the event's `recordedAt` (stamped when the
append submits it, before its write and fsync) to the moment the follower has written its
line — watched while the append runs, not after it exits (a line is usually out before the
appending process has closed the store and exited).

    python3 bench/follow-latency.py [BACKORDER] [ROUNDS] [POLL_MS]

Runs in a temporary directory; prints p50, p90, p99 and max in milliseconds.
"""
import calendar, json, os, subprocess, sys, tempfile, time, uuid

backorder = sys.argv[1] if len(sys.argv) > 1 else ".build/release/backorder"
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 200
poll = sys.argv[3] if len(sys.argv) > 3 else "1"

def stamp(text):
    # RFC 3339 UTC with a fraction, as `read` writes it.
    return calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")) + float("0" + text[19:-1])

with tempfile.TemporaryDirectory() as tmp:
    data = os.path.join(tmp, "data")
    setup = '{"type":"CustomerRegistered","tenant":"t","actor":"u","data":{"customerId":"C-1","number":"1","name":"A"}}\n'
    subprocess.run([backorder, "append", "-", "--data", data, "--skip-views"], input=setup.encode(), check=True, capture_output=True)
    out_path = os.path.join(tmp, "follow.out")
    follower = subprocess.Popen([backorder, "read", "--follow", "--poll-milliseconds", poll, "--data", data],
                                stdout=open(out_path, "wb"), stderr=subprocess.DEVNULL)
    def lines():
        with open(out_path, "rb") as f:
            return f.read().splitlines()
    while len(lines()) < 1:
        time.sleep(0.001)
    latencies, before_exit = [], 0
    for i in range(rounds):
        event = json.dumps({"id": str(uuid.uuid4()), "type": "CustomerUpdated", "tenant": "t", "actor": "u",
                            "data": {"customerId": "C-1", "phone": str(i)}}) + "\n"
        append = subprocess.Popen([backorder, "append", "-", "--data", data, "--skip-views"],
                                  stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        append.stdin.write(event.encode())
        append.stdin.close()
        while len(lines()) < i + 2:
            time.sleep(0.0002)
        seen = time.time()
        if append.poll() is None:
            before_exit += 1
        if append.wait() != 0:
            sys.exit("append failed")
        latencies.append((seen - stamp(json.loads(lines()[-1])["recordedAt"])) * 1000)
    follower.terminate()
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
    print(f"read --follow --poll-milliseconds {poll}, {rounds} single-event appends: from recordedAt to the line "
          f"p50 {pick(0.5):.1f} ms, p90 {pick(0.9):.1f} ms, p99 {pick(0.99):.1f} ms, max {latencies[-1]:.1f} ms; "
          f"{before_exit} lines out before their append exited")
