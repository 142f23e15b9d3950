#!/usr/bin/env bash
# Many idle SSE connections (issue 15 item 3): one evstreamd holds N idle streams from a native
# epoll client (bench/conn100k/client.cpp) whose sockets are spread over source addresses
# 127.0.0.2 .. 127.0.0.(1+SOURCES), then one event is posted and must reach every stream once.
#   bench/conn100k/run.sh [N]      N: connections wanted (default 100000)
# N is capped to what the open-files limit allows: evstreamd needs one descriptor per connection
# (and so does the client), and a process cannot raise its soft limit above the hard limit
# (`ulimit -Hn`) without CAP_SYS_RESOURCE. The cap is printed when it applies.
# Measures: connect rate (streams/s, first connect() to the last `connected` frame), daemon RSS
# (/proc/PID/status VmRSS) before the client and after every stream is connected, RSS per
# connection = growth / streams, heartbeat CPU at rest (daemon utime+stime over REST_SECONDS with
# every stream idle, % of one core; --heartbeat default 15 s), and the time from just before the
# POST /api/events of one event to the moment the last stream received its frame; every stream
# must receive it exactly once, with the posted position as its id.
# Appends one row to bench/results/conn100k.tsv: stamp, commit, streams, source addresses,
# connect rate/s, RSS base KiB, RSS after KiB, KiB per connection, heartbeat CPU %, time to all
# ms, all exactly once (yes/no).
# The machine's cores are shared: run it as `flock /tmp/bench.lock bench/conn100k/run.sh`.
# Settings: SOURCES (default max(4, ceil(N/50000))), IN_FLIGHT (256 connects at once),
# REST_SECONDS (30), C100K_PORT (8290), EVSTREAM_BUILD (build), EVSTREAM_PGDIR (/tmp/c100k-pg),
# EVSTREAM_PGPORT (54391), FD_MARGIN (24 descriptors kept free in the daemon).
set -euo pipefail
cd "$(dirname "$0")/../.."
want="${1:-100000}"
IN_FLIGHT="${IN_FLIGHT:-256}"
REST_SECONDS="${REST_SECONDS:-30}"
port="${C100K_PORT:-8290}"
FD_MARGIN="${FD_MARGIN:-24}"
build="${EVSTREAM_BUILD:-build}"
export EVSTREAM_PGDIR="${EVSTREAM_PGDIR:-/tmp/c100k-pg}"
export EVSTREAM_PGPORT="${EVSTREAM_PGPORT:-54391}"
db=evstream_c100k
[ -x "$build/daemon/evstreamd" ] || {
  echo "build evstreamd first: cmake -S . -B $build -DCMAKE_BUILD_TYPE=RelWithDebInfo && cmake --build $build --target evstreamd" >&2
  exit 1
}

work=$(mktemp -d /tmp/evstream-c100k.XXXXXX)
daemon_pid="" client_pid="" cluster_started=""
cleanup() {
  set +e
  exec 3>&- 2>/dev/null
  if [ -n "$client_pid" ]; then kill "$client_pid" 2>/dev/null; wait "$client_pid" 2>/dev/null; fi
  if [ -n "$daemon_pid" ]; then kill "$daemon_pid" 2>/dev/null; wait "$daemon_pid" 2>/dev/null; fi
  if [ -n "$cluster_started" ]; then
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    scripts/pg stop >/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Descriptors: as many as the hard limit allows. Ports: 10000-65535 for every source address
# (needs root; a narrower range only means fewer connections per source address).
hard=$(ulimit -Hn)
[ "$hard" = unlimited ] && hard=1048576
ulimit -n "$hard"
sysctl -q -w net.ipv4.ip_local_port_range="10000 65535" 2>/dev/null ||
  echo "note: could not set net.ipv4.ip_local_port_range (now $(cat /proc/sys/net/ipv4/ip_local_port_range))"

mkdir -p "$build/conn100k"
g++ -std=c++17 -O2 -Wall -o "$build/conn100k/conn100k-client" bench/conn100k/client.cpp

# `flock /tmp/bench.lock run.sh` hands its lock descriptor to every child; the postmaster would
# keep it (and the lock) after this script ends if the stop below never ran, so it starts without
# any descriptor above 2.
(
  for f in /proc/$BASHPID/fd/*; do
    n=${f##*/}
    [ "$n" -gt 2 ] && eval "exec $n>&-"
  done
  exec scripts/pg start >/dev/null
)
cluster_started=1
eval "$(scripts/pg env)"
export PGDATABASE=$db
psql -X -q -d postgres -c "SET client_min_messages = warning" \
  -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
psql -X -q -c "CREATE EXTENSION evstream"
secret="bench-secret-$(od -An -N16 -tx8 /dev/urandom | tr -d ' \n')"
token=$(node scripts/jwt.mjs "$secret" "{\"sub\": \"bench\", \"projects\": [\"bench\"], \"exp\": $(($(date +%s) + 7200))}")

mkdir -p "$work/www"
"$build/daemon/evstreamd" --listen "127.0.0.1:$port" --jwt-secret "$secret" \
  --max-connections 1000000 --max-connections-per-address 1000000 --max-connections-per-sub 1000000 \
  --log-level warn --web-root "$work/www" 2>"$work/evstreamd.log" &
daemon_pid=$!
for _ in $(seq 1 200); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$port/healthz")" = 200 ] && break
  kill -0 "$daemon_pid" 2>/dev/null || { cat "$work/evstreamd.log" >&2; exit 1; }
  sleep 0.05
done
sleep 2  # let the feed, outbox and pool connections settle before the baseline

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$daemon_pid/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$daemon_pid/stat"; }
daemon_fds=$(ls "/proc/$daemon_pid/fd" | wc -l)
daemon_limit=$(awk '/^Max open files/ {print $4}' "/proc/$daemon_pid/limits")
daemon_room=$((daemon_limit - daemon_fds - FD_MARGIN))
client_room=$((hard - 16))
n=$want
if [ "$n" -gt "$daemon_room" ] || [ "$n" -gt "$client_room" ]; then
  n=$(( daemon_room < client_room ? daemon_room : client_room ))
  echo "CAPPED: N = $n, not $want: the hard open-files limit is $hard (ulimit -Hn; raising it needs"
  echo "        CAP_SYS_RESOURCE), evstreamd needs one descriptor per connection and already holds"
  echo "        $daemon_fds (listener, database connections, loop), $FD_MARGIN more are kept free."
fi
sources="${SOURCES:-$(( (n + 49999) / 50000 > 4 ? (n + 49999) / 50000 : 4 ))}"
echo "conn100k: N=$n streams from $sources source addresses (127.0.0.2..127.0.0.$((sources + 1))), $IN_FLIGHT connects in flight, evstreamd pid $daemon_pid"

rss0=$(rss_kib)
mkfifo "$work/cmd"
"$build/conn100k/conn100k-client" --port "$port" --path "/api/events/stream?channel=project:bench" \
  --header "Authorization: Bearer $token" --connections "$n" --sources "$sources" \
  --in-flight "$IN_FLIGHT" --event-type bench.ping <"$work/cmd" >"$work/client.out" 2>"$work/client.err" &
client_pid=$!
exec 3>"$work/cmd"
# Waits until the client prints a line starting with $1; fails if the client exits first.
wait_for_client() {
  until grep -q "^$1" "$work/client.out"; do
    kill -0 "$client_pid" 2>/dev/null || { echo "client exited" >&2; cat "$work/client.err" >&2; exit 1; }
    sleep 0.2
  done
}
wait_for_client READY
ready=$(grep '^READY' "$work/client.out")
echo "$ready"
[ -s "$work/client.err" ] && sed 's/^/client: /' "$work/client.err"
field() { sed -n "s/.*[[:space:]]$1=\([^[:space:]]*\).*/\1/p" <<<"$2"; }
metric() { curl -s --max-time 5 "http://127.0.0.1:$port/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
echo "evstreamd's own count: evstream_sse_connections $(metric evstream_sse_connections)"
streams=$(field connections "$ready")
rate=$(field rate "$ready")
sleep 2
rss1=$(rss_kib)
per_conn=$(awk -v a="$rss0" -v b="$rss1" -v n="$streams" 'BEGIN {printf "%.2f", (n > 0) ? (b - a) / n : 0}')
echo "RSS: $rss0 KiB before, $rss1 KiB with $streams streams: $per_conn KiB per connection"

hz=$(getconf CLK_TCK)
t0=$(cpu_ticks)
sleep "$REST_SECONDS"
t1=$(cpu_ticks)
hb_cpu=$(awk -v d=$((t1 - t0)) -v hz="$hz" -v s="$REST_SECONDS" 'BEGIN {printf "%.2f", d / hz / s * 100}')
echo "at rest for ${REST_SECONDS}s: daemon CPU $hb_cpu % of one core ($((t1 - t0)) ticks at $hz/s)"

body='{"channel":"project:bench","aggregate_type":"bench","aggregate_id":"c100k","event_type":"bench.ping","data":{"n":1}}'
post_ns=$(date +%s%N)
answer=$(curl -s -X POST -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
  --data "$body" "http://127.0.0.1:$port/api/events")
post_ms=$(( ($(date +%s%N) - post_ns) / 1000000 ))
position=$(grep -o '"position":[0-9]*' <<<"$answer" | head -1 | cut -d: -f2)
[ -n "$position" ] || { echo "POST failed: $answer" >&2; exit 1; }
echo "measure $post_ns $position" >&3
wait_for_client DELIVERY
delivery=$(grep '^DELIVERY' "$work/client.out")
echo "$delivery (event at position $position; the POST itself answered after $post_ms ms)"
echo "evstreamd's own count: evstream_events_delivered_total $(metric evstream_events_delivered_total)"
to_all=$(field ms "$delivery")
once=$(field exactly_once "$delivery")
echo "RSS after the delivery: $(rss_kib) KiB"
if grep -q '"level":"error"' "$work/evstreamd.log"; then
  echo "evstreamd logged errors:"; grep '"level":"error"' "$work/evstreamd.log" | head -5
fi

mkdir -p bench/results
stamp=$(date -u +%Y-%m-%dT%H:%M:%SZ)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$stamp" "$commit" "$streams" "$sources" "$rate" \
  "$rss0" "$rss1" "$per_conn" "$hb_cpu" "$to_all" "$once" >>bench/results/conn100k.tsv
echo "row: $(tail -1 bench/results/conn100k.tsv)"
echo quit >&3
wait "$client_pid" 2>/dev/null || true
client_pid=""
