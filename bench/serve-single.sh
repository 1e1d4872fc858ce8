#!/usr/bin/env bash
# Single-event appends over HTTP against a fresh `backorder serve` (bench/RESULTS.md): 3 s of
# warm-up, then 10 s measured with wrk (64 connections, bench/serve-append.lua); prints
# requests/s, p50, p99 and the server's CPU (user + system from /proc/PID/stat) per 1,000
# requests, which moves less with the machine's load than the latency does.
#
#   bash bench/serve-single.sh [BINARY] [PORT] [extra serve options, e.g. --partitions 1]
set -euo pipefail
B=${1:-$(cd "$(dirname "$0")/.." && pwd)/.build/release/backorder}
P=${2:-18100}
shift $(( $# > 2 ? 2 : $# ))
LUA=$(cd "$(dirname "$0")" && pwd)/serve-append.lua
D=$(mktemp -d /tmp/serve-single.XXXXXX)
"$B" serve --data "$D/data" --listen 127.0.0.1:"$P" --insecure-no-auth --rate-limit 1000000 "$@" > "$D/serve.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$D"' EXIT
for _ in $(seq 100); do curl -sf "127.0.0.1:$P/healthz" > /dev/null && break; sleep 0.1; done
wrk -t2 -c64 -d3s -s "$LUA" "http://127.0.0.1:$P" > /dev/null
before=$(awk '{print $14 + $15}' /proc/$pid/stat)
out=$(wrk -t2 -c64 -d10s --latency -s "$LUA" "http://127.0.0.1:$P")
after=$(awk '{print $14 + $15}' /proc/$pid/stat)
requests=$(echo "$out" | awk '/requests in/ {print $1}')
echo "$(basename "$B") $*: $(echo "$out" | awk '/Requests\/sec/ {print $2}') requests/s," \
  "p50 $(echo "$out" | awk '$1 == "50%" {print $2}'), p99 $(echo "$out" | awk '$1 == "99%" {print $2}')," \
  "server CPU $(echo "scale=1; ($after - $before) * 10 * 1000 / $requests" | bc) µs a request, load $(cut -d' ' -f1 /proc/loadavg)"
