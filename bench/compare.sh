#!/usr/bin/env bash
# bench/compare.sh: Backorder side by side with SQLite, PostgreSQL, Redis Streams and NATS
# JetStream, on one generated data set, in one run, with the machine's limit measured in the
# same run. See bench/README.md, "bench/compare.sh".
#
#   bench/compare.sh [--events N] [--out FILE] [--only LIST] [--single N] [--concurrent N] [--keep]
#
# Installs missing Debian packages (needs root), creates a Python virtualenv for the peers'
# clients, builds the release `backorder` CLI and the bench package's CompareBench, starts
# every server on 127.0.0.1 in a temporary directory and stops it by PID at the end, also
# on failure or Ctrl-C.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
events=1000000
out=""
only="backorder,sqlite,postgresql,redis,nats"
single=2000
concurrent=16000
keep=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --events) events="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    --single) single="$2"; shift 2 ;;
    --concurrent) concurrent="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "compare.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$events" =~ ^[0-9]+$ && "$events" -ge 1000 ]] || { echo "compare.sh: --events must be a number ≥ 1000" >&2; exit 2; }
[[ -n "$out" ]] || out="$here/results/$(date -u +%Y-%m-%d-%H%M).md"
mkdir -p "$(dirname "$out")"

log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

# 1. Debian packages of the peers.
missing=()
command -v sqlite3 >/dev/null || missing+=(sqlite3)
[[ -x /usr/lib/postgresql/15/bin/postgres ]] || missing+=(postgresql)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v nats-server >/dev/null || missing+=(nats-server)
command -v python3 >/dev/null || missing+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
if [[ ${#missing[@]} -gt 0 ]]; then
  [[ $(id -u) -eq 0 ]] || { echo "compare.sh: missing packages ${missing[*]}: run as root or install them" >&2; exit 1; }
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# 2. The peers' Python clients, in a virtualenv of their own.
venv="${COMPARE_VENV:-/tmp/backorder-compare-venv}"
if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import psycopg, redis, hiredis, nats, lz4, zstandard' 2>/dev/null; then
  log "creating the virtualenv $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "psycopg[binary]==3.3.9" "redis==8.1.0" "hiredis==3.5.0" "nats-py==2.16.0" \
    "lz4==4.4.5" "zstandard==0.25.0" "matplotlib==3.11.2"
fi

# 3. Release builds: the CLI and CompareBench (nice: the machine is shared).
log "building backorder and CompareBench (release)"
(cd "$root" && nice -n 10 swift build -c release --scratch-path .build-release --product backorder >/dev/null)
(cd "$root/bench" && nice -n 10 swift build -c release --scratch-path .build-bench --product CompareBench >/dev/null)
cli="$root/.build-release/release/backorder"
bench="$root/bench/.build-bench/release/CompareBench"

# 4. A temporary directory for every system's data; servers are stopped by PID on exit.
base="$(mktemp -d /tmp/backorder-compare.XXXXXX)"
chmod 755 "$base"
export COMPARE_PIDS="$base/pids"
export PYTHONDONTWRITEBYTECODE=1
: >"$COMPARE_PIDS"
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [[ -s "$COMPARE_PIDS" ]]; then
    while read -r pid; do
      [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && { log "stopping server PID $pid"; kill -TERM "$pid" 2>/dev/null || true; }
    done <"$COMPARE_PIDS"
    for _ in $(seq 50); do
      alive=0
      while read -r pid; do [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && alive=1; done <"$COMPARE_PIDS"
      [[ $alive -eq 0 ]] && break
      sleep 0.2
    done
    while read -r pid; do [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null; done <"$COMPARE_PIDS"
  fi
  if [[ $keep -eq 1 ]]; then log "kept $base"; else rm -rf "$base"; fi
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# 5. The data set, with the project's generator.
log "generating $events events"
"$cli" generate --events "$events" --seed 7 >"$base/events.ndjson"

# 6. The measurements.
log "running (output: $out)"
"$venv/bin/python" "$here/compare/main.py" --data "$base/events.ndjson" --events "$events" --cli "$cli" --bench "$bench" \
  --base "$base" --out "$out" --only "$only" --single "$single" --concurrent "$concurrent"
