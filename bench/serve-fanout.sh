#!/usr/bin/env bash
# Live-update fan-out against a fresh `backorder serve` (bench/RESULTS.md): SUBSCRIBERS
# Server-Sent Events streams on one tenant, 50 single-event appends 20 ms apart, each
# delivery timed at the subscriber's socket (bench/sse-fanout.py), then the server's CPU
# (user + system from /proc/PID/stat) for it.
#
#   bash bench/serve-fanout.sh [BINARY] [PORT] [SUBSCRIBERS]
set -euo pipefail
B=${1:-$(cd "$(dirname "$0")/.." && pwd)/.build/release/backorder}
P=${2:-18200}
N=${3:-1000}
D=$(mktemp -d /tmp/serve-fanout.XXXXXX)
ulimit -n 65536 2>/dev/null || true
"$B" serve --data "$D/data" --listen 127.0.0.1:"$P" --insecure-no-auth --rate-limit 1000000 > "$D/serve.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$D"' EXIT
for _ in $(seq 100); do curl -sf "127.0.0.1:$P/healthz" > /dev/null && break; sleep 0.1; done
before=$(awk '{print $14 + $15}' /proc/$pid/stat)
out=$(python3 "$(dirname "$0")/sse-fanout.py" --url "http://127.0.0.1:$P" --subscribers "$N" --events 50)
after=$(awk '{print $14 + $15}' /proc/$pid/stat)
echo "$(basename "$B"): $out; server CPU $(( (after - before) * 10 )) ms; RSS $(awk '/VmHWM/ {print $2 " " $3}' /proc/$pid/status); load $(cut -d' ' -f1 /proc/loadavg)"
