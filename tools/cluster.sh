#!/usr/bin/env bash
# tools/cluster.sh: a local NATS JetStream cluster for trying the JetStream back end (issue 10).
#
#   tools/cluster.sh start  [--dir DIR] [--nodes N] [--base-port P]
#   tools/cluster.sh stop   [--dir DIR] [--clean]
#   tools/cluster.sh status [--dir DIR]
#   tools/cluster.sh kill-node  NODE [--dir DIR]   SIGKILL one node (for failure tests)
#   tools/cluster.sh start-node NODE [--dir DIR]   start one stopped node again, same config and data
#
# Every node listens on 127.0.0.1 only. Node i (1-based) uses client port P+i-1 (default
# 4222, 4223, 4224), cluster port P+2000+i-1 (6222…) and monitoring port P+4000+i-1 (8222…).
# DIR (default $BACKORDER_CLUSTER_DIR, else /tmp/backorder-cluster) holds, per node,
# nI/nats.conf, nI/store/ (JetStream file storage), nI/nats.log and nI/pid. `start` returns
# once every node answers and the cluster has a JetStream meta leader; `stop` signals exactly
# the PIDs recorded in DIR (never a process found by name), TERM first, KILL after 10 s.
# The cluster layout (nodes, base port) is kept in DIR/cluster.env, so the other commands
# need only --dir. Data survives stop/start; `stop --clean` deletes DIR afterwards.
set -euo pipefail

usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
die() { echo "cluster.sh: $*" >&2; exit 1; }

command="${1:-}"; [[ -n "$command" ]] || usage; shift
dir="${BACKORDER_CLUSTER_DIR:-/tmp/backorder-cluster}"
nodes=3 base_port=4222 clean=0 node=""
nodes_given=0 port_given=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dir) [[ $# -ge 2 ]] || die "--dir needs a directory"; dir="$2"; shift 2 ;;
    --nodes) [[ $# -ge 2 ]] || die "--nodes needs a number"; nodes="$2"; nodes_given=1; shift 2 ;;
    --base-port) [[ $# -ge 2 ]] || die "--base-port needs a port"; base_port="$2"; port_given=1; shift 2 ;;
    --clean) clean=1; shift ;;
    -h|--help) usage ;;
    -*) die "unknown option '$1' (see --help)" ;;
    *) [[ -z "$node" ]] || die "unexpected argument '$1'"; node="$1"; shift ;;
  esac
done
[[ "$nodes" =~ ^[0-9]+$ ]] && (( nodes >= 1 && nodes <= 9 )) || die "--nodes must be 1…9, not '$nodes'"
[[ "$base_port" =~ ^[0-9]+$ ]] && (( base_port >= 1024 && base_port + 4000 + nodes <= 65535 )) \
  || die "--base-port must leave room for three port ranges below 65536, not '$base_port'"
dir="$(realpath -m "$dir")"

# A directory made by an earlier start fixes the layout.
if [[ -f "$dir/cluster.env" ]]; then
  saved_nodes=$(sed -n 's/^nodes=//p' "$dir/cluster.env")
  saved_port=$(sed -n 's/^base_port=//p' "$dir/cluster.env")
  if (( nodes_given && nodes != saved_nodes )) || (( port_given && base_port != saved_port )); then
    die "$dir holds a cluster of $saved_nodes nodes at base port $saved_port; use another --dir or 'stop --clean' first"
  fi
  nodes=$saved_nodes base_port=$saved_port
fi

client_port() { echo $(( base_port + $1 - 1 )); }
route_port() { echo $(( base_port + 2000 + $1 - 1 )); }
monitor_port() { echo $(( base_port + 4000 + $1 - 1 )); }
node_dir() { echo "$dir/n$1"; }

# GET a monitoring endpoint; curl when present, else bash's /dev/tcp (no dependency).
http_get() {
  local port=$1 path=$2
  if command -v curl >/dev/null; then
    curl -fsS --max-time 2 "http://127.0.0.1:$port$path" 2>/dev/null
  else
    local reply
    exec 3<>"/dev/tcp/127.0.0.1/$port" 2>/dev/null || return 1
    printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$path" >&3
    reply=$(timeout 2 cat <&3) || true
    exec 3<&-
    [[ "$reply" == "HTTP/1."?" 200"* ]] || return 1
    printf '%s\n' "${reply#*$'\r\n\r\n'}"
  fi
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The recorded PID of node i if that process is alive and is our nats-server (its command
# line names this node's config file), so a PID reused by another process is never touched.
live_pid() {
  local pidfile; pidfile="$(node_dir "$1")/pid"
  [[ -f "$pidfile" ]] || return 1
  local pid; pid=$(<"$pidfile")
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$(node_dir "$1")/nats.conf" || return 1
  echo "$pid"
}

write_config() {
  local i=$1 d; d="$(node_dir "$i")"
  mkdir -p "$d/store"
  {
    echo "# node n$i of the Backorder test cluster (written by tools/cluster.sh)"
    echo "server_name: n$i"
    echo "listen: 127.0.0.1:$(client_port "$i")"
    echo "http: 127.0.0.1:$(monitor_port "$i")"
    echo "jetstream {"
    echo "  store_dir: \"$d/store\""
    echo "  max_memory_store: 256MB"
    echo "  max_file_store: 8GB"
    echo "}"
    if (( nodes > 1 )); then
      echo "cluster {"
      echo "  name: backorder"
      echo "  listen: 127.0.0.1:$(route_port "$i")"
      echo "  no_advertise: true"
      echo "  routes: ["
      for (( j = 1; j <= nodes; j++ )); do
        (( j == i )) || echo "    nats-route://127.0.0.1:$(route_port "$j")"
      done
      echo "  ]"
      echo "}"
    fi
  } >"$d/nats.conf"
}

launch() {
  local i=$1 d; d="$(node_dir "$i")"
  if pid=$(live_pid "$i"); then echo "n$i already running (pid $pid)"; return 0; fi
  local ports=("$(client_port "$i")" "$(monitor_port "$i")")
  (( nodes == 1 )) || ports+=("$(route_port "$i")")
  for port in "${ports[@]}"; do
    if port_in_use "$port"; then die "port $port (node n$i) is already in use by another process"; fi
  done
  # Standard streams go to the log file, so the server holds none of the caller's
  # descriptors (a caller waiting on its pipes would otherwise never finish).
  nohup nats-server -c "$d/nats.conf" -l "$d/nats.log" </dev/null >>"$d/nats.log" 2>&1 &
  echo $! >"$d/pid"
  echo "n$i started: pid $!, client nats://127.0.0.1:$(client_port "$i"), log $d/nats.log"
}

# Waits until every running node answers /healthz and one reports a meta leader.
wait_ready() {
  local deadline=$(( SECONDS + 60 )) i leader
  while (( SECONDS < deadline )); do
    local ok=1
    for (( i = 1; i <= nodes; i++ )); do
      live_pid "$i" >/dev/null || continue
      http_get "$(monitor_port "$i")" /healthz >/dev/null || { ok=0; break; }
    done
    if (( ok )); then
      if (( nodes == 1 )); then
        http_get "$(monitor_port 1)" /jsz >/dev/null && { echo "JetStream ready (single node)"; return 0; }
      fi
      for (( i = 1; i <= nodes; i++ )); do
        live_pid "$i" >/dev/null || continue
        leader=$(http_get "$(monitor_port "$i")" /jsz | sed -n 's/.*"leader": *"\([^"]*\)".*/\1/p' | head -1) || true
        if [[ -n "$leader" ]]; then echo "JetStream meta leader: $leader"; return 0; fi
      done
    fi
    for (( i = 1; i <= nodes; i++ )); do
      if [[ -f "$(node_dir "$i")/pid" ]] && ! live_pid "$i" >/dev/null && [[ "${expect_all:-1}" == 1 ]]; then
        tail -n 20 "$(node_dir "$i")/nats.log" >&2 || true
        die "node n$i exited during start (log above: $(node_dir "$i")/nats.log)"
      fi
    done
    sleep 0.3
  done
  die "no JetStream meta leader within 60 s (logs: $dir/n*/nats.log)"
}

start() {
  command -v nats-server >/dev/null || die "nats-server is not installed (Debian: apt-get install nats-server)"
  mkdir -p "$dir"
  printf 'nodes=%s\nbase_port=%s\n' "$nodes" "$base_port" >"$dir/cluster.env"
  local i
  for (( i = 1; i <= nodes; i++ )); do write_config "$i"; done
  # If anything fails from here on, stop the nodes this call started.
  trap 'echo "start failed; stopping the nodes" >&2; stop_all' EXIT
  for (( i = 1; i <= nodes; i++ )); do launch "$i"; done
  wait_ready
  trap - EXIT
  local urls=""
  for (( i = 1; i <= nodes; i++ )); do urls+="${urls:+,}nats://127.0.0.1:$(client_port "$i")"; done
  echo "cluster up in $dir; clients: $urls"
}

# A process that exited but was not yet reaped by its parent (a zombie: the server's parent is
# whoever adopted it, which may be slow to reap) counts as gone.
running() {
  [[ -r "/proc/$1/stat" ]] || return 1
  local stat; stat=$(<"/proc/$1/stat") || return 1
  stat=${stat##*) }
  [[ "${stat:0:1}" != Z ]]
}

stop_pid() {
  local i=$1 pid=$2 waited=0
  kill -TERM "$pid" 2>/dev/null || true
  while running "$pid" && (( waited < 100 )); do sleep 0.1; waited=$(( waited + 1 )); done
  if running "$pid"; then
    echo "n$i (pid $pid) still running after 10 s; SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
}

stop_all() {
  local i pid
  for (( i = 1; i <= nodes; i++ )); do
    if pid=$(live_pid "$i"); then stop_pid "$i" "$pid"; echo "n$i stopped (pid $pid)"; fi
    rm -f "$(node_dir "$i")/pid"
  done
}

stop() {
  [[ -f "$dir/cluster.env" ]] || { echo "no cluster in $dir"; return 0; }
  stop_all
  if (( clean )); then rm -rf -- "$dir"; echo "removed $dir"; fi
}

status() {
  [[ -f "$dir/cluster.env" ]] || { echo "no cluster in $dir"; return 3; }
  local i pid running=0 leader=""
  for (( i = 1; i <= nodes; i++ )); do
    if pid=$(live_pid "$i"); then
      running=$(( running + 1 ))
      local health; health=$(http_get "$(monitor_port "$i")" /healthz || echo "no answer")
      echo "n$i running  pid $pid  nats://127.0.0.1:$(client_port "$i")  healthz: $(echo "$health" | tr -d '\n ')"
      [[ -n "$leader" ]] || leader=$(http_get "$(monitor_port "$i")" /jsz | sed -n 's/.*"leader": *"\([^"]*\)".*/\1/p' | head -1) || true
    else
      echo "n$i stopped"
    fi
  done
  echo "meta leader: ${leader:-none}; $running of $nodes nodes running; directory $dir"
  (( running > 0 )) || return 3
}

need_node() {
  [[ -f "$dir/cluster.env" ]] || die "no cluster in $dir"
  [[ "$node" =~ ^[0-9]+$ ]] && (( node >= 1 && node <= nodes )) || die "name a node 1…$nodes (e.g. '$command 2')"
}

case "$command" in
  start) [[ -z "$node" ]] || die "start takes no node (use start-node)"; start ;;
  stop) stop ;;
  status) status ;;
  kill-node)
    need_node
    pid=$(live_pid "$node") || die "n$node is not running"
    kill -KILL "$pid"
    while running "$pid"; do sleep 0.05; done
    rm -f "$(node_dir "$node")/pid"
    echo "n$node killed (SIGKILL, pid $pid)" ;;
  start-node)
    need_node
    expect_all=0
    launch "$node"
    wait_ready ;;
  *) usage ;;
esac
