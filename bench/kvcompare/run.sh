#!/usr/bin/env bash
# Replays one BOKVTRC1 trace against LMDB, SQLite and KVStore (KVBench), RUNS times each.
#   bash bench/kvcompare/run.sh
# Environment: TRACE (default /tmp/kvtrace-1m.bin), EVENTS (1000000, used only when the trace
# is generated), SEED (1), RUNS (3), LOG (/tmp/kvcompare-<UTC time>.log), WORK (/tmp/kvcompare).
# Everything runs under nice -n 10. The summary table (median and range) is printed at the end.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BENCH=$(cd "$HERE/.." && pwd)
TRACE=${TRACE:-/tmp/kvtrace-1m.bin}
EVENTS=${EVENTS:-1000000}
SEED=${SEED:-1}
RUNS=${RUNS:-3}
WORK=${WORK:-/tmp/kvcompare}
LOG=${LOG:-/tmp/kvcompare-$(date -u +%Y%m%dT%H%M%SZ).log}
NICE="nice -n 10"

exec > >(tee "$LOG") 2>&1
echo "== kvcompare $(date -u '+%Y-%m-%d %H:%M:%S UTC'), log $LOG"
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
free -g
df -hT "$(dirname "$WORK")"

if [ ! -f "$TRACE" ]; then
    echo "== generating $TRACE ($EVENTS events, seed $SEED)"
    $NICE python3 "$HERE/gen_trace.py" --events "$EVENTS" --seed "$SEED" "$TRACE"
fi
echo "trace: $TRACE, $(stat -c %s "$TRACE") bytes, md5 $(md5sum "$TRACE" | cut -d' ' -f1)"

echo "== building the C replays into /tmp"
$NICE gcc -O2 -Wall -o /tmp/lmdb_replay "$HERE/lmdb_replay.c" -llmdb
$NICE gcc -O2 -Wall -o /tmp/sqlite_replay "$HERE/sqlite_replay.c" -lsqlite3
echo "LMDB $(dpkg-query -W -f='${Version}' liblmdb-dev 2>/dev/null || echo '?'), SQLite $(dpkg-query -W -f='${Version}' libsqlite3-dev 2>/dev/null || echo '?')"

echo "== building KVBench (release; slow the first time)"
(cd "$BENCH" && $NICE swift build -c release --scratch-path .build-bench --product KVBench)
KVBENCH="$BENCH/.build-bench/release/KVBench"

mkdir -p "$WORK"
# RSS baseline: a trace of the same size holding only gets (before one empty commit), replayed
# into an empty store, so that "peak RSS - baseline" leaves out how each tool holds the trace.
BASE="$WORK/baseline-trace.bin"
$NICE python3 - "$TRACE" "$BASE" <<'PY'
import os, struct, sys
op = b"G" + struct.pack("<H", 15) + b"T" * 15
tail = b"C" + struct.pack("<H", 0) + b"E"
n = (os.path.getsize(sys.argv[1]) - 8 - len(tail)) // len(op)
with open(sys.argv[2], "wb") as f:
    f.write(b"BOKVTRC1" + op * n + tail)
PY
for engine in lmdb sqlite kvstore; do
    dir="$WORK/$engine-baseline"
    rm -rf "$dir"
    echo
    echo "== BASELINE engine=$engine"
    case $engine in
        lmdb) $NICE /tmp/lmdb_replay "$BASE" "$dir" | grep 'peak RSS' ;;
        sqlite) $NICE /tmp/sqlite_replay "$BASE" "$dir" | grep 'peak RSS' ;;
        kvstore) $NICE "$KVBENCH" trace "$BASE" "$dir" | grep 'peak RSS' ;;
    esac
    rm -rf "$dir"
done
rm -f "$BASE"

for run in $(seq 1 "$RUNS"); do
    for engine in lmdb sqlite kvstore; do
        dir="$WORK/$engine-$run"
        rm -rf "$dir"
        sync
        echo
        echo "== RUN engine=$engine run=$run $(date -u '+%Y-%m-%dT%H:%M:%SZ')"
        echo "LOAD engine=$engine run=$run $(uptime)"
        case $engine in
            lmdb) $NICE /tmp/lmdb_replay "$TRACE" "$dir" ;;
            sqlite) $NICE /tmp/sqlite_replay "$TRACE" "$dir" ;;
            kvstore) $NICE "$KVBENCH" trace "$TRACE" "$dir" ;;
        esac
        echo "DISK engine=$engine run=$run alloc=$(du -s -B1 "$dir" | cut -f1) apparent=$(du -s -b "$dir" | cut -f1)"
        rm -rf "$dir"
    done
done

echo
echo "== summary (median of $RUNS, [min–max]); log $LOG"
python3 "$HERE/summarize.py" "$LOG"
