#!/usr/bin/env bash
# tools/demo-cluster.sh: the demo on a local 3-node NATS JetStream cluster (issue 10).
# Starts the cluster in a temporary directory on free ports, appends a generated data set
# to an R3 stream, appends it again (all duplicates), shows the stream and the dashboard,
# and stops every node by its recorded PID — also when a step fails or on Ctrl-C.
#   tools/demo-cluster.sh [EVENTS] [BACKORDER]     (defaults: 50000, .build/debug/backorder)
set -euo pipefail
cd "$(dirname "$0")/.."
events="${1:-50000}"
backorder="${2:-.build/debug/backorder}"
dir="$(mktemp -d /tmp/backorder-demo-cluster.XXXXXX)"
base=$(( 20000 + RANDOM % 10000 ))
cleanup() { tools/cluster.sh stop --dir "$dir/cluster" --clean >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap cleanup EXIT INT TERM

tools/cluster.sh start --dir "$dir/cluster" --nodes 3 --base-port "$base"
export BACKORDER_CLUSTER="nats://127.0.0.1:$base,nats://127.0.0.1:$((base + 1)),nats://127.0.0.1:$((base + 2))"
"$backorder" generate --events "$events" --seed 1 > "$dir/events.ndjson"
"$backorder" append "$dir/events.ndjson" --data "$dir/data"
"$backorder" append "$dir/events.ndjson" --data "$dir/data"
"$backorder" log stats --data "$dir/data"
"$backorder" query dashboard --data "$dir/data"
