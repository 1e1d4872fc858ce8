# Consumer groups over HTTP: one member fetches and acknowledges every event of a tenant
# (bench/RESULTS.md). Usage: python3 bench/group-fetch.py URL TENANT BATCH
import json, sys, time, urllib.request
url, tenant, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
def post(path, body=None):
    req = urllib.request.Request(url + path, data=(json.dumps(body).encode() if body is not None else b""), method="POST")
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())
t0 = time.time(); events = 0; batches = 0
d = post(f"/v1/tenants/{tenant}/groups/bench/fetch?max={batch}")
member = d["member"]
while d["delivery"] is not None:
    events += len(d["events"]); batches += 1
    post(f"/v1/tenants/{tenant}/groups/bench/ack", {"member": member, "delivery": d["delivery"]})
    d = post(f"/v1/tenants/{tenant}/groups/bench/fetch?member={member}")
dt = time.time() - t0
print(f"{events} events in {batches} batches in {dt:.2f} s: {events/dt:,.0f} events/s")
