#!/usr/bin/env bash
# Writes a deterministic data set of out-of-stock events (NDJSON) to standard output.
# The generator lives in Sources/DataGenerator; this wraps `backorder generate`.
#   tools/generate.sh --events 1000000 --seed 7 > events.ndjson
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .build/release/backorder ] || swift build -c release --product backorder >&2
exec .build/release/backorder generate "$@"
