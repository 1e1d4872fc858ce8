#!/usr/bin/env python3
"""Live latency of `backorder read --follow`, two ways, for single-event appends:
- from the moment `backorder append` exits (the command line's acknowledgement: after the
  fsync, and after the store is closed) to the moment the follower has written the line;
- from the event's `recordedAt` (stamped when the append submits it, before its fsync) to
  that moment: the delay a consumer sees, the fsync included.

    python3 bench/follow-latency.py [BACKORDER] [ROUNDS] [POLL_MS]

Runs in a temporary directory; prints p50, p90, p99 and max in milliseconds.
"""
import json, os, subprocess, sys, tempfile, time, uuid

backorder = sys.argv[1] if len(sys.argv) > 1 else ".build/release/backorder"
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 200
poll = sys.argv[3] if len(sys.argv) > 3 else "1"

with tempfile.TemporaryDirectory() as tmp:
    data = os.path.join(tmp, "data")
    setup = '{"type":"CustomerRegistered","tenant":"t","actor":"u","data":{"customerId":"C-1","number":"1","name":"A"}}\n'
    subprocess.run([backorder, "append", "-", "--data", data, "--skip-views"], input=setup.encode(), check=True, capture_output=True)
    out_path = os.path.join(tmp, "follow.out")
    out = open(out_path, "wb")
    follower = subprocess.Popen([backorder, "read", "--follow", "--poll-milliseconds", poll, "--data", data], stdout=out, stderr=subprocess.DEVNULL)
    def lines():
        with open(out_path, "rb") as f:
            return f.read().count(b"\n")
    while lines() < 1:
        time.sleep(0.001)
    latencies, from_submit = [], []
    for i in range(rounds):
        event = json.dumps({"id": str(uuid.uuid4()), "type": "CustomerUpdated", "tenant": "t", "actor": "u",
                            "data": {"customerId": "C-1", "phone": str(i)}}) + "\n"
        subprocess.run([backorder, "append", "-", "--data", data, "--skip-views"], input=event.encode(), check=True, capture_output=True)
        acknowledged = time.monotonic()
        while lines() < i + 2:
            time.sleep(0.0002)
        seen, seen_wall = time.monotonic(), time.time()
        latencies.append((seen - acknowledged) * 1000)
        with open(out_path, "rb") as f:
            recorded = json.loads(f.read().splitlines()[-1])["recordedAt"]
        stamp = time.mktime(time.strptime(recorded[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone + float("0" + recorded[19:-1])
        from_submit.append((seen_wall - stamp) * 1000)
    follower.terminate()
    def summary(values):
        values = sorted(values)
        pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]
        return f"p50 {pick(0.5):.1f} ms, p90 {pick(0.9):.1f} ms, p99 {pick(0.99):.1f} ms, max {values[-1]:.1f} ms"
    print(f"read --follow --poll-milliseconds {poll}, {rounds} single-event appends: after `append` exits {summary(latencies)}; "
          f"after the event's recordedAt {summary(from_submit)}")
