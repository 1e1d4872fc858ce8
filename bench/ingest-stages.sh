#!/usr/bin/env bash
# CPU per event of `backorder append`, stage by stage, from getrusage (user + sys of the
# process, both cores) over repeated runs: each row adds one stage to the previous one, so
# the difference of two rows' medians is that stage's cost. For issue 16: rerun after a
# change to see which stage it moved. No hardware counters on this machine, and Debian's
# valgrind crashes on Swift binaries, so CPU time it is — with its spread.
#
#   bash bench/ingest-stages.sh [EVENTS] [RUNS]        (defaults 1000000, 5)
#
# Environment: BACKORDER (default .build/release/backorder), WORK (default /tmp/ingest-stages).
set -euo pipefail
EVENTS=${1:-1000000}
RUNS=${2:-5}
B=${BACKORDER:-$(cd "$(dirname "$0")/.." && pwd)/.build/release/backorder}
WORK=${WORK:-/tmp/ingest-stages}
mkdir -p "$WORK"
INPUT="$WORK/events-$EVENTS.ndjson"
[ -f "$INPUT" ] || "$B" generate --events "$EVENTS" --seed 1 > "$INPUT"

echo "ingest stages: $EVENTS events ($(stat -c %s "$INPUT") bytes), $RUNS runs each, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "binary: $B"
# stage name | arguments (the store directory is fresh for each run)
stages=(
  "read + parse + validate + decide (--dry-run)|--dry-run --skip-views"
  "+ encode, index, compress, write; no fsync (--durability none)|--skip-views --durability none"
  "+ fsync (the default durability)|--skip-views"
  "+ views kept current (the default)|"
)
printf '| stage | CPU s per run: median [min–max] | µs CPU per event | wall s median |\n|---|---|---|---|\n'
for entry in "${stages[@]}"; do
  name=${entry%%|*}; args=${entry#*|}
  cpus=(); walls=()
  for ((i = 0; i < RUNS; i++)); do
    rm -rf "$WORK/store"
    # shellcheck disable=SC2086
    /usr/bin/time -o "$WORK/time" -f "%U %S %e" "$B" append "$INPUT" --data "$WORK/store" $args > /dev/null 2>&1
    read -r user sys wall < "$WORK/time"
    cpus+=("$(echo "$user + $sys" | bc)"); walls+=("$wall")
  done
  sorted=$(printf '%s\n' "${cpus[@]}" | sort -n)
  median=$(echo "$sorted" | sed -n "$(( (RUNS + 1) / 2 ))p"); min=$(echo "$sorted" | head -1); max=$(echo "$sorted" | tail -1)
  wall=$(printf '%s\n' "${walls[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p")
  per=$(echo "scale=2; $median * 1000000 / $EVENTS" | bc)
  printf '| %s | %s [%s–%s] | %s | %s |\n' "$name" "$median" "$min" "$max" "$per" "$wall"
done
rm -rf "$WORK/store"
