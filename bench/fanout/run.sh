#!/usr/bin/env bash
# Fan-out benchmark: the same native load client against evstreamd, a Node http server (fed
# by HTTP POST, and by pg LISTEN/NOTIFY) and Nchan, in one run. evstreamd also over HTTP/2
# (h2c, prior knowledge): `evstreamd-h2x10` puts every subscriber on 10 connections (conns/10
# streams each), `evstreamd-h2` gives each subscriber a connection of its own (1 stream each).
#  latency:    CONNS subscribers x RATE events/s for SECONDS (the rate is lowered so that
#              subscribers x rate <= LATENCY_BUDGET deliveries/s: a latency run must not saturate
#              the 2 cores that server, client and publisher share): p50/p99/p99.9
#              publish->receive, lost / duplicated-or-reordered, server CPU, RSS per connection
#  throughput: THROUGHPUT_CONNS subscribers, BURST events published as fast as the publisher can;
#              delivered events/s (events, not writes)
# `evstreamd-base` is the same as `evstreamd` with the binary EVSTREAMD_BASE (a baseline build,
# e.g. of main, beside this one in the same run: compare ratios, not absolute figures).
# Settings: SERVERS, CONNS ("100 1000"), RATE (100), SECONDS (10), LATENCY_BUDGET (100000), FANOUT_PORT (8190: +1, +2),
#           THROUGHPUT_CONNS (1000), BURST (3000). Results: bench/results/fanout.tsv
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
SERVERS="${SERVERS:-evstreamd evstreamd-h2x10 evstreamd-h2 node node-pg nchan}"
CONNS="${CONNS:-100 1000}"
RATE="${RATE:-100}"
SECONDS_PER_RUN="${SECONDS:-10}"
THROUGHPUT_CONNS="${THROUGHPUT_CONNS:-1000}"
BURST="${BURST:-3000}"
LATENCY_BUDGET="${LATENCY_BUDGET:-100000}"
build="${EVSTREAM_BUILD:-build}"
work=$(mktemp -d /tmp/evstream-fanout.XXXXXX)
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

g++ -std=c++17 -O2 -o "$work/fanout-client" bench/fanout/loadclient.cpp -luv -lnghttp2
[ -x "$build/daemon/evstreamd" ] || { echo "build evstreamd first (make test or cmake --build $build)"; exit 1; }

scripts/pg start >/dev/null
eval "$(scripts/pg env)"
export PGDATABASE=evstream_fanout
psql -X -q -d postgres -c "SET client_min_messages = warning" \
  -c "DROP DATABASE IF EXISTS evstream_fanout WITH (FORCE)" -c "CREATE DATABASE evstream_fanout"
psql -X -q -c "CREATE EXTENSION evstream"
secret="bench-secret-$(od -An -N16 -tx8 /dev/urandom | tr -d ' \n')"
token=$(node scripts/jwt.mjs "$secret" '{"sub": "bench", "projects": ["bench"]}')

port_evstreamd=${FANOUT_PORT:-8190} port_node=$((port_evstreamd + 1)) port_nchan=$((port_evstreamd + 2))
server_pid=""
start_server() {  # start_server KIND -> sets server_pid, sub_path, pub_target, pub_url, headers
  case "$1" in
    evstreamd|evstreamd-base|evstreamd-h2x10|evstreamd-h2)
      local bin="$build/daemon/evstreamd"
      [ "$1" = evstreamd-base ] && bin="${EVSTREAMD_BASE:?set EVSTREAMD_BASE to the baseline evstreamd}"
      "$bin" --listen "127.0.0.1:$port_evstreamd" --jwt-secret "$secret" \
        --heartbeat 30 --max-queue-bytes 8388608 --max-connections-per-address 100000 \
        --max-connections-per-sub 100000 --h2-max-concurrent-streams 1000 --log-level warn --web-root "$work" 2>"$work/evstreamd.log" &
      server_pid=$!; port=$port_evstreamd
      sub_path="/api/events/stream?channel=project:bench"; pub_target=sql; pub_url=""
      headers=(--header "Authorization: Bearer $token") ;;
    node|node-pg)
      node bench/fanout/node_server.mjs --port $port_node $([ "$1" = node-pg ] && echo --listen-pg) &
      server_pid=$!; port=$port_node
      sub_path="/sub?channel=project:bench"; headers=()
      if [ "$1" = node-pg ]; then pub_target=notify; pub_url=""; else pub_target=http; pub_url="http://127.0.0.1:$port_node/pub"; fi ;;
    nchan)
      mkdir -p "$work/nginx"
      sed -e "s|@DIR@|$work/nginx|g" -e "s|@PORT@|$port_nchan|g" bench/fanout/nchan.conf.in >"$work/nginx/nginx.conf"
      nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" -e "$work/nginx/error.log" &
      server_pid=$!; port=$port_nchan
      sub_path="/sub?channel=project:bench"; pub_target=http; pub_url="http://127.0.0.1:$port_nchan/pub"; headers=() ;;
  esac
  for _ in $(seq 1 200); do
    curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/" && break
    sleep 0.05
  done
}
stop_server() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
}
worker_pid() {  # nginx serves from a worker process; everything else from the pid we started
  if [ "$1" = nchan ]; then pgrep -P "$server_pid" | head -1; else echo "$server_pid"; fi
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# run KIND MODE CONNS COUNT RATE -> one TSV row and a printed line
mkdir -p bench/results
stamp=$(date -u +%Y-%m-%dT%H:%M:%SZ); commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
run() {
  local kind=$1 mode=$2 conns=$3 count=$4 rate=$5
  start_server "$kind"
  local wpid; wpid=$(worker_pid "$kind")
  local rss0; rss0=$(rss_kib "$wpid")
  rm -f "$work/ready"
  local shape=(--connections "$conns")
  case "$kind" in
    evstreamd-h2x10) shape=(--h2 1 --connections 10 --streams $((conns / 10))) ;;
    evstreamd-h2) shape=(--h2 1 --connections "$conns" --streams 1) ;;
  esac
  "$work/fanout-client" --port "$port" --path "$sub_path" "${headers[@]}" "${shape[@]}" \
    --events "$count" --timeout $((60 + count / 20)) --ready-file "$work/ready" >"$work/client.json" &
  local cpid=$!
  for _ in $(seq 1 1200); do [ -f "$work/ready" ] && break; kill -0 $cpid 2>/dev/null || break; sleep 0.05; done
  local rss1; rss1=$(rss_kib "$wpid")
  local t0; t0=$(cpu_ticks "$wpid")
  local s0; s0=$(date +%s.%N)
  node bench/fanout/publish.mjs --target "$pub_target" --url "$pub_url" --rate "$rate" --count "$count" >"$work/pub.json"
  wait $cpid || true
  local s1; s1=$(date +%s.%N)
  local t1; t1=$(cpu_ticks "$wpid")
  stop_server
  local hz; hz=$(getconf CLK_TCK)
  local line
  line=$(node -e '
    const c = JSON.parse(require("fs").readFileSync(process.argv[1]));
    const p = JSON.parse(require("fs").readFileSync(process.argv[2]));
    const [kind, mode, conns, rss0, rss1, ticks, hz, secs] = process.argv.slice(3);
    const cpu = (Number(ticks) / Number(hz)) / Number(secs);
    const usPerDelivery = c.received > 0 ? (Number(ticks) / Number(hz)) * 1e6 / c.received : 0;
    const perConn = (Number(rss1) - Number(rss0)) / Number(conns);
    console.log([kind, mode, conns, p.rate, c.received, c.expected, c.lost, c.duplicated_or_reordered,
      c.failed, c.events_per_s, c.p50_ms, c.p99_ms, c.p999_ms, (cpu * 100).toFixed(0), perConn.toFixed(1),
      usPerDelivery.toFixed(2)].join("\t"));
  ' "$work/client.json" "$work/pub.json" "$kind" "$mode" "$conns" "$rss0" "$rss1" "$((t1 - t0))" "$hz" \
    "$(echo "$s1 - $s0" | bc)")
  printf '%s\t%s\t%s\n' "$stamp" "$commit" "$line" >>bench/results/fanout.tsv
  echo "$line" | awk -F'\t' '{printf "%-10s %-10s conns=%-6s pub=%5s/s recv=%8s/%-8s lost=%s dup/reord=%s failed=%s  delivered=%7s ev/s  p50=%6sms p99=%6sms p99.9=%6sms  cpu=%3s%%  rss/conn=%6s KiB  cpu/delivery=%s us\n", $1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16}'
}

echo "kind       mode       (native client; server and client share $(nproc) cores)"
for conns in $CONNS; do
  rate=$(( RATE * conns > LATENCY_BUDGET ? LATENCY_BUDGET / conns : RATE ))
  [ "$rate" -ge 1 ] || rate=1
  for kind in $SERVERS; do run "$kind" latency "$conns" $((rate * SECONDS_PER_RUN)) "$rate"; done
done
for kind in $SERVERS; do run "$kind" throughput "$THROUGHPUT_CONNS" "$BURST" 1000000; done
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS evstream_fanout WITH (FORCE)"
rm -rf "$work"
