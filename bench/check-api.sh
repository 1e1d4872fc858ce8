#!/usr/bin/env bash
# schemathesis against a live `backorder serve` with docs/openapi.yaml (make check-api).
# Usage: bench/check-api.sh BINARY MAX_EXAMPLES
set -euo pipefail
bin=$(realpath "$1"); examples=${2:-50}
work=$(mktemp -d); trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
"$bin" generate --events 20000 --seed 1 --tenants 2 > "$work/events.ndjson" 2>/dev/null
"$bin" append "$work/events.ndjson" --data "$work/data" > /dev/null
"$bin" token create --tokens "$work/tokens" --tenant '*' --roles admin > "$work/token" 2>/dev/null
"$bin" serve --data "$work/data" --tokens "$work/tokens" --listen 127.0.0.1:0 2> "$work/serve.err" &
pid=$!
for _ in $(seq 1 300); do grep -q "on http://" "$work/serve.err" && break; sleep 0.1; done
url=$(grep -o "http://127.0.0.1:[0-9]*" "$work/serve.err")
# The live stream never ends: it is checked by the test suite (ServeProcessTests), not here.
# A group fetch may wait up to 30 s for a batch (a long poll): the timeout is above it.
schemathesis run docs/openapi.yaml --url "$url" --header "Authorization: Bearer $(cat "$work/token")" --request-timeout 35 \
  --exclude-path /v1/tenants/{tenant}/live --max-examples "$examples" --checks not_a_server_error,status_code_conformance,content_type_conformance
