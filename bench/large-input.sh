#!/usr/bin/env bash
# Issue 16: does a large input cost more per line than a small one? Validates (--dry-run),
# then appends (--skip-views, fsync) EVENTS generated lines of 60 tenants into a new store,
# sampling the process every 0.5 s: wall, CPU (utime + stime, to the last sample), bytes the
# process wrote (/proc/PID/io write_bytes: the ingestor's scratch store, the spool, the log
# and the index), peak RSS (VmHWM) and the largest RssAnon sampled (RSS less the mapped
# files' pages, which the kernel may drop). bench/RESULTS.md, "The ingestor's scratch store
# on large inputs". Needs ~2.2 GB per 10,000,000 lines in DIR, plus the store.
# STEPS chooses the appends: `dry-run`, `skip-views` (both by default) and `views` (the
# default append, views kept current: issue 15's memory bound for one large append).
#
#   bash bench/large-input.sh [EVENTS] [DIR] [STEPS]   (defaults 10000000, /tmp/backorder-large, "dry-run skip-views")
set -euo pipefail
EVENTS=${1:-10000000}
DIR=${2:-/tmp/backorder-large}
STEPS=${3:-dry-run skip-views}
B=${BACKORDER:-$(cd "$(dirname "$0")/.." && pwd)/.build/release/backorder}
[ -x "$B" ] || { echo "build first: make release" >&2; exit 1; }
mkdir -p "$DIR"
INPUT="$DIR/events-$EVENTS.ndjson"
[ -f "$INPUT" ] || "$B" generate --events "$EVENTS" --tenants 60 --seed 8 > "$INPUT"
ticks=$(getconf CLK_TCK)

measure() {
  local label=$1; shift
  local start end pid wb=0 rss=0 anon=0 cpu=0 w r a c rc=0
  start=$(date +%s.%N)
  "$@" > "$DIR/out" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2> /dev/null; do
    w=$(awk '/^write_bytes/ {print $2}' "/proc/$pid/io" 2> /dev/null || true); [ -n "$w" ] && wb=$w
    r=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2> /dev/null || true); [ -n "$r" ] && rss=$r
    a=$(awk '/RssAnon/ {print $2}' "/proc/$pid/status" 2> /dev/null || true); [ -n "$a" ] && [ "$a" -gt "$anon" ] && anon=$a
    c=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2> /dev/null || true); [ -n "$c" ] && cpu=$c
    sleep 0.5
  done
  wait "$pid" || rc=$?
  end=$(date +%s.%N)
  echo "$label: exit $rc, $(echo "$end - $start" | bc) s wall, ~$(echo "scale=1; $cpu / $ticks" | bc) CPU s," \
       "$(( wb / 1048576 )) MiB written, peak RSS $(( rss / 1024 )) MiB (RssAnon $(( anon / 1024 )) MiB)"
  tail -n 1 "$DIR/out"
}

echo "large input: $EVENTS lines ($(stat -c %s "$INPUT") bytes), $(date -u '+%Y-%m-%d %H:%M UTC'), load $(cut -d' ' -f1-3 /proc/loadavg)"
for step in $STEPS; do
  rm -rf "$DIR/store" "$DIR/none"
  case $step in
    dry-run) measure "--dry-run" "$B" append "$INPUT" --data "$DIR/none" --dry-run ;;
    skip-views) measure "append --skip-views" "$B" append "$INPUT" --data "$DIR/store" --skip-views ;;
    views) measure "append (views kept)" "$B" append "$INPUT" --data "$DIR/store" ;;
    *) echo "unknown step $step (dry-run, skip-views, views)" >&2; exit 2 ;;
  esac
done
rm -rf "$DIR/store" "$DIR/none" "$DIR/out"
