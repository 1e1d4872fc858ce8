#!/usr/bin/env python3
"""Writes a BOKVTRC1 key-value trace (format in README.md) that mimics maintaining a
materialized view of customer out-of-stock requests.

Write phase, per event (one event = one request created or updated):
  G  the request row (a miss for a new request, a hit for an update)
  P  T<tenant u16><yyyymmdd u32><request id u64>      ~60-byte request row
  P  C<tenant><customer id u32><request id>           8-byte posting   (new requests)
  P  M<tenant><product id u32><request id>            8-byte posting   (new requests; half of updates)
  P  Y<tenant><product id>                            16-byte tally overwrite
65 % of events are new requests (ids and dates increasing), 30 % update a request from
the last ~14 days, 5 % update an older random one. Products are Zipf-distributed (s=1)
over 20,000 products, customers uniform over 50,000. A commit (32-byte meta) every
--commit-every events, and one after the last event.

Read phase: 20,000 G of random existing request rows and 2,000 S (20 entries) starting at
random existing customer postings, interleaved, starting with an S. (KVBench treats every
G before the first S as a writer's read and does not time it, so the read phase must open
with an S for its G to be timed.)

All integers inside keys are big-endian, so memcmp order is numeric/time order. Trace
framing integers are little-endian, as KVBench reads them.
"""
import argparse
import bisect
import datetime
import itertools
import random
import struct
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("output", nargs="?", default="/tmp/kvtrace-1m.bin")
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--commit-every", type=int, default=20_000)
    ap.add_argument("--tenants", type=int, default=4)
    ap.add_argument("--products", type=int, default=20_000)
    ap.add_argument("--customers", type=int, default=50_000)
    ap.add_argument("--events-per-day", type=int, default=3_000)
    ap.add_argument("--read-gets", type=int, default=20_000)
    ap.add_argument("--read-scans", type=int, default=2_000)
    ap.add_argument("--scan-length", type=int, default=20)
    ap.add_argument("--delete-fraction", type=float, default=0.0,
                    help="fraction of updates that also delete the request's M posting (default 0: no D ops)")
    args = ap.parse_args()

    rng = random.Random(args.seed)
    out = bytearray(b"BOKVTRC1")
    counts = dict.fromkeys("PDGSCE", 0)

    def op_put(k, v):
        out.append(0x50)
        out.extend(struct.pack("<H", len(k))); out.extend(k)
        out.extend(struct.pack("<I", len(v))); out.extend(v)
        counts["P"] += 1

    def op_del(k):
        out.append(0x44)
        out.extend(struct.pack("<H", len(k))); out.extend(k)
        counts["D"] += 1

    def op_get(k):
        out.append(0x47)
        out.extend(struct.pack("<H", len(k))); out.extend(k)
        counts["G"] += 1

    def op_scan(k, n):
        out.append(0x53)
        out.extend(struct.pack("<H", len(k))); out.extend(k)
        out.extend(struct.pack("<I", n))
        counts["S"] += 1

    def op_commit(meta):
        out.append(0x43)
        out.extend(struct.pack("<H", len(meta))); out.extend(meta)
        counts["C"] += 1

    # Zipf(s=1) over products; product ids are a shuffled permutation so popular ones are spread out.
    ranks = list(range(args.products))
    rng.shuffle(ranks)
    cum = list(itertools.accumulate(1.0 / (r + 1) for r in range(args.products)))
    total_w = cum[-1]

    def product():
        return ranks[bisect.bisect_left(cum, rng.random() * total_w)]

    tenant_weights = [0.55, 0.25, 0.15, 0.05][: args.tenants] if args.tenants <= 4 else [1.0] * args.tenants
    tenant_cum = list(itertools.accumulate(tenant_weights))

    def tenant():
        return min(bisect.bisect_left(tenant_cum, rng.random() * tenant_cum[-1]), args.tenants - 1)

    start_day = datetime.date(2024, 1, 1)
    day_cache = {}

    def yyyymmdd(day_index):
        v = day_cache.get(day_index)
        if v is None:
            d = start_day + datetime.timedelta(days=day_index)
            v = day_cache[day_index] = d.year * 10000 + d.month * 100 + d.day
        return v

    # Per request: (tenant, date, customer, product, status, quantity)
    req_tenant, req_date, req_customer, req_product, req_status, req_qty = [], [], [], [], [], []
    day_first_request = []  # index of the first request created on each day
    tallies = {}

    def row_key(i):
        return b"T" + struct.pack(">HIQ", req_tenant[i], req_date[i], i + 1)

    def row_value(i, ts):
        # status, flags, quantity, customer, product, created/updated timestamps, location, note
        head = struct.pack("<BBHIIQQ", req_status[i], 0, req_qty[i], req_customer[i], req_product[i], req_date[i], ts)
        tail = rng.getrandbits(8 * 32).to_bytes(32, "little")  # store/channel codes, free text hash
        return head + tail[: 60 - len(head)]

    def posting_key(prefix, t, ident, i):
        return prefix + struct.pack(">HIQ", t, ident, i + 1)

    def posting_value(i):
        return struct.pack("<BBHI", req_status[i], 0, req_qty[i], req_date[i] % 100000)

    def tally(t, p, ts, delta):
        k = b"Y" + struct.pack(">HI", t, p)
        n = tallies.get(k, 0) + delta
        tallies[k] = n
        op_put(k, struct.pack("<qQ", n, ts))

    recent_days = 14
    for e in range(args.events):
        day = e // args.events_per_day
        while len(day_first_request) <= day:
            day_first_request.append(len(req_tenant))
        ts = e * 10
        r = rng.random()
        recent_start = day_first_request[max(0, day - recent_days)]
        if r < 0.65 or not req_tenant:
            i = len(req_tenant)
            req_tenant.append(tenant()); req_date.append(yyyymmdd(day))
            req_customer.append(rng.randrange(args.customers)); req_product.append(product())
            req_status.append(1); req_qty.append(rng.randint(1, 5))
            k = row_key(i)
            op_get(k)
            op_put(k, row_value(i, ts))
            op_put(posting_key(b"C", req_tenant[i], req_customer[i], i), posting_value(i))
            op_put(posting_key(b"M", req_tenant[i], req_product[i], i), posting_value(i))
            tally(req_tenant[i], req_product[i], ts, req_qty[i])
        else:
            if r < 0.95 or recent_start == 0:
                i = rng.randrange(recent_start, len(req_tenant))
            else:
                i = rng.randrange(0, recent_start)
            k = row_key(i)
            op_get(k)
            req_status[i] = min(req_status[i] + 1, 9)
            op_put(k, row_value(i, ts))
            mkey = posting_key(b"M", req_tenant[i], req_product[i], i)
            if args.delete_fraction and rng.random() < args.delete_fraction:
                op_del(mkey)
            elif rng.random() < 0.5:
                op_put(mkey, posting_value(i))
            tally(req_tenant[i], req_product[i], ts, -1 if req_status[i] >= 3 else 0)
        if (e + 1) % args.commit_every == 0 or e + 1 == args.events:
            # meta: events applied, log offset, generation, 8 bytes of checksum-ish filler
            op_commit(struct.pack("<QQQQ", e + 1, (e + 1) * 137, counts["C"] + 1, rng.getrandbits(64)))

    n = len(req_tenant)
    write_gets = counts["G"]
    reads = args.read_gets + args.read_scans
    scan_every = max(1, reads // max(1, args.read_scans))
    scans_left, gets_left = args.read_scans, args.read_gets
    for j in range(reads):
        if scans_left and (j % scan_every == 0 or gets_left == 0):
            i = rng.randrange(n)
            op_scan(posting_key(b"C", req_tenant[i], req_customer[i], i), args.scan_length)
            scans_left -= 1
        else:
            op_get(row_key(rng.randrange(n)))
            gets_left -= 1
    out.append(0x45)
    counts["E"] += 1

    with open(args.output, "wb") as f:
        f.write(out)
    print(f"{args.output}: {len(out)} bytes, {args.events} events, {n} requests, seed {args.seed}")
    print("ops: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    print(f"write phase: {counts['P']} P, {counts['D']} D, {write_gets} G, {counts['C']} C; "
          f"read phase: {counts['G'] - write_gets} G, {counts['S']} S of {args.scan_length}")


if __name__ == "__main__":
    sys.exit(main())
