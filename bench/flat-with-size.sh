#!/bin/bash
# Issue 16, item 2: does appending 1,000,000 events cost the same into a store that already
# holds 10,000,000 as into an empty one? Prints wall, CPU and peak RSS of each append, and
# the large store's bytes per event (log + index). Needs ~6 GB in DIR and ~10 minutes.
#
#   bash bench/flat-with-size.sh [DIR] [RUNS]     (default /tmp/backorder-flat, 2)
#
# Uses the release build (`make release`); all appends with --skip-views, the default
# durability (fsync). Each run of the large case appends into its own copy of the store.
set -euo pipefail
DIR=${1:-/tmp/backorder-flat}
RUNS=${2:-2}
B=$(cd "$(dirname "$0")/.." && pwd)/.build/release/backorder
[ -x "$B" ] || { echo "build first: make release" >&2; exit 1; }
mkdir -p "$DIR"
cd "$DIR"
if [ ! -f next1m.ndjson ]; then
  "$B" generate --events 11000000 --tenants 60 --seed 8 > all.ndjson
  head -n 10000000 all.ndjson > base.ndjson
  tail -n 1000000 all.ndjson > next1m.ndjson
  head -n 1000000 all.ndjson > first1m.ndjson
  rm all.ndjson
fi
timed() { local label=$1; shift; /usr/bin/time -f "$label: %e s wall, %U s user, %S s sys, %M KB peak RSS" "$@" > /dev/null 2> time.err || { cat time.err >&2; exit 1; }; tail -n 1 time.err; }
rm -rf large empty-* large-*
timed "10,000,000 into an empty store" "$B" append base.ndjson --data large --skip-views
log=$(du -sb large/log | cut -f1); index=$(du -sb large/index | cut -f1)
echo "large store: log $log B, index $index B: $(( (log + index) / 10000000 )) B per event"
for run in $(seq 1 "$RUNS"); do
  cp -a large "large-$run"
  timed "run $run: 1,000,000 into an empty store" "$B" append first1m.ndjson --data "empty-$run" --skip-views
  timed "run $run: 1,000,000 into the 10,000,000-event store" "$B" append next1m.ndjson --data "large-$run" --skip-views
done
uptime
