#!/usr/bin/env bash
# Batched appends over HTTP against a fresh `backorder serve` (bench/RESULTS.md): EVENTS
# generated events (seed 1, one tenant) in requests of 10,000 lines, posted one after
# another with curl (each request's events may depend on earlier ones, so they are not sent
# in parallel); then the statuses, the wall time, and the server's CPU and peak RSS from /proc.
#
#   bash bench/serve-batched.sh [BINARY] [PORT] [EVENTS]
set -euo pipefail
B=${1:-$(cd "$(dirname "$0")/.." && pwd)/.build/release/backorder}
P=${2:-18400}
N=${3:-1000000}
D=$(mktemp -d /tmp/serve-batched.XXXXXX)
"$B" generate --events "$N" --seed 1 2>/dev/null | split -l 10000 -d -a 4 - "$D/part."
"$B" serve --data "$D/data" --listen 127.0.0.1:"$P" --insecure-no-auth --rate-limit 1000000 > "$D/serve.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$D"' EXIT
for _ in $(seq 100); do curl -sf "127.0.0.1:$P/healthz" > /dev/null && break; sleep 0.1; done
start=$(date +%s.%N)
statuses=$(for f in "$D"/part.*; do curl -s -o /dev/null -w "%{http_code}\n" -XPOST --data-binary @"$f" "127.0.0.1:$P/v1/tenants/default/events"; done | sort | uniq -c | tr -s ' \n' ' ')
end=$(date +%s.%N)
echo "$(basename "$B"): statuses$statuses; $(echo "$end - $start" | bc) s; server CPU $(awk '{print ($14 + $15) * 10}' /proc/$pid/stat) ms;" \
     "peak RSS $(awk '/VmHWM/ {print $2 " " $3}' /proc/$pid/status); RssAnon $(awk '/RssAnon/ {print $2 " " $3}' /proc/$pid/status); load $(cut -d' ' -f1 /proc/loadavg)"
