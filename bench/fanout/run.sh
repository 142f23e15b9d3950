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
# e.g. of main, beside this one in the same run: compare ratios, not absolute figures), and
# `evstreamd-base-tK` the same as `evstreamd-tK` (the summary then adds tK / base-tK ratios).
# Threads against nginx workers (issue 15), every server fed over HTTP:
#  `evstreamd-tK` evstreamd started with `$EVSTREAMD_THREADS_FLAG K` (EVSTREAMD_THREADS_FLAG=
#                 omits the flag, for a daemon that does not have it yet); events POSTed to its
#                 `POST /api/events` by publish.mjs --format evstream: pipelined on one keep-alive
#                 connection, paced and stamped exactly as for Nchan
#  `nchan-wN`     Nchan with `worker_processes N` (`nchan` is N = 1)
#  RATES="100 200 500": every rate for every server, rate outer and servers inner (neighbouring
#              runs share the machine's conditions), each at exactly that rate (LATENCY_BUDGET does
#              not lower it: saturating is the point); no throughput runs unless THROUGHPUT=1.
#              Ends with a summary: per rate, evstreamd-tK / nchan-wK ratios of p99 and of CPU per
#              delivery, and per kind the sustainable rate (the highest of RATES with p99 <=
#              SUSTAIN_P99_MS, every event delivered, nothing failed, the publisher on schedule).
# Server CPU: user+sys of every server process, read from /proc/PID/stat around the publishing
# window (evstreamd: all its threads; nginx: the master, all workers and reaped children);
# cpu/delivery = that CPU in µs / events received by all subscribers. The printed line adds pg=:
# the CPU per delivery of the PostgreSQL sessions the server holds in the bench database
# (evstreamd's pool, where POST /api/events appends, and its feed; node-pg's LISTEN). Nchan keeps
# messages in its own memory. Not counted there: PostgreSQL's background processes and the SQL
# publisher's own session. pg= is not in the TSV.
# Settings: SERVERS, CONNS ("100 1000"), RATE (100), RATES (unset), SECONDS (10), LATENCY_BUDGET (100000),
#           FANOUT_PORT (8190: +1, +2), THROUGHPUT_CONNS (1000), BURST (3000), THROUGHPUT (1; 0 with RATES),
#           EVSTREAMD_BIN (build/daemon/evstreamd), EVSTREAMD_THREADS_FLAG (--threads), SUSTAIN_P99_MS (100).
#           Results: bench/results/fanout.tsv (its rate column is the rate actually published).
# The issue-15 comparison (`scripts/pg start` first, then hold the lock on a shared box):
#   flock /tmp/bench.lock env SERVERS="evstreamd-t1 nchan evstreamd-t2 nchan-w2" CONNS=1000 \
#     RATES="100 200 500" bash bench/fanout/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
SERVERS="${SERVERS:-evstreamd evstreamd-h2x10 evstreamd-h2 node node-pg nchan}"
CONNS="${CONNS:-100 1000}"
RATE="${RATE:-100}"
RATES="${RATES:-}"
SECONDS_PER_RUN="${SECONDS:-10}"
THROUGHPUT_CONNS="${THROUGHPUT_CONNS:-1000}"
BURST="${BURST:-3000}"
THROUGHPUT="${THROUGHPUT:-$([ -n "$RATES" ] && echo 0 || echo 1)}"
LATENCY_BUDGET="${LATENCY_BUDGET:-100000}"
SUSTAIN_P99_MS="${SUSTAIN_P99_MS:-100}"
build="${EVSTREAM_BUILD:-build}"
evstreamd_bin="${EVSTREAMD_BIN:-$build/daemon/evstreamd}"
threads_flag="${EVSTREAMD_THREADS_FLAG---threads}"
work=$(mktemp -d /tmp/evstream-fanout.XXXXXX)
server_pid="" client_pid=""
cleanup() {  # never leave a server or a client behind, also when a step fails
  [ -z "$client_pid" ] || kill "$client_pid" 2>/dev/null || true
  [ -z "$server_pid" ] || stop_server
  rm -rf "$work"
}
trap cleanup EXIT
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

g++ -std=c++17 -O2 -o "$work/fanout-client" bench/fanout/loadclient.cpp -luv -lnghttp2
for kind in $SERVERS; do
  case "$kind" in
    evstreamd-base*) ;;
    evstreamd*) [ -x "$evstreamd_bin" ] || { echo "build evstreamd first (make test or cmake --build $build), or set EVSTREAMD_BIN"; exit 1; } ;;
  esac
done

scripts/pg start >/dev/null
eval "$(scripts/pg env)"
export PGDATABASE=evstream_fanout
psql -X -q -d postgres -c "SET client_min_messages = warning" \
  -c "DROP DATABASE IF EXISTS evstream_fanout WITH (FORCE)" -c "CREATE DATABASE evstream_fanout" \
  -c "ALTER DATABASE evstream_fanout SET synchronous_commit = off"  # fan-out, not fsync (as publish.mjs --target sql)
psql -X -q -c "CREATE EXTENSION evstream"
secret="bench-secret-$(od -An -N16 -tx8 /dev/urandom | tr -d ' \n')"
token=$(node scripts/jwt.mjs "$secret" '{"sub": "bench", "projects": ["bench"]}')

port_evstreamd=${FANOUT_PORT:-8190} port_node=$((port_evstreamd + 1)) port_nchan=$((port_evstreamd + 2))
start_server() {  # start_server KIND -> sets server_pid, port, sub_path, headers, pub_target, pub_url, pub_args
  local workers=0
  pub_args=()
  case "$1" in
    evstreamd|evstreamd-base|evstreamd-h2x10|evstreamd-h2|evstreamd-t[0-9]*|evstreamd-base-t[0-9]*)
      local bin="$evstreamd_bin" threads=()
      case "$1" in evstreamd-base*) bin="${EVSTREAMD_BASE:?set EVSTREAMD_BASE to the baseline evstreamd}" ;; esac
      case "$1" in evstreamd-t*|evstreamd-base-t*) [ -z "$threads_flag" ] || threads=("$threads_flag" "${1##*-t}") ;; esac
      "$bin" --listen "127.0.0.1:$port_evstreamd" --jwt-secret "$secret" \
        --heartbeat 30 --max-queue-bytes 8388608 --max-connections-per-address 100000 \
        --max-connections-per-sub 100000 --h2-max-concurrent-streams 1000 --log-level warn --web-root "$work" \
        "${threads[@]}" 2>"$work/evstreamd.log" &
      server_pid=$!; port=$port_evstreamd
      sub_path="/api/events/stream?channel=project:bench"
      headers=(--header "Authorization: Bearer $token")
      case "$1" in
        evstreamd-t*|evstreamd-base-t*) pub_target=http; pub_url="http://127.0.0.1:$port_evstreamd/api/events"
                      pub_args=(--format evstream --header "Authorization: Bearer $token") ;;
        *) pub_target=sql; pub_url="" ;;
      esac ;;
    node|node-pg)
      node bench/fanout/node_server.mjs --port $port_node $([ "$1" = node-pg ] && echo --listen-pg) &
      server_pid=$!; port=$port_node
      sub_path="/sub?channel=project:bench"; headers=()
      if [ "$1" = node-pg ]; then pub_target=notify; pub_url=""; else pub_target=http; pub_url="http://127.0.0.1:$port_node/pub"; fi ;;
    nchan|nchan-w[0-9]*)
      workers=1; [ "$1" = nchan ] || workers=${1#nchan-w}
      mkdir -p "$work/nginx"
      sed -e "s|@DIR@|$work/nginx|g" -e "s|@PORT@|$port_nchan|g" -e "s|@WORKERS@|$workers|g" \
        bench/fanout/nchan.conf.in >"$work/nginx/nginx.conf"
      nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" -e "$work/nginx/error.log" &
      server_pid=$!; port=$port_nchan
      sub_path="/sub?channel=project:bench"; pub_target=http; pub_url="http://127.0.0.1:$port_nchan/pub"; headers=() ;;
    *) echo "unknown server kind: $1"; exit 1 ;;
  esac
  for _ in $(seq 1 200); do
    curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/" && break
    sleep 0.05
  done
  kill -0 "$server_pid" 2>/dev/null || {
    echo "$1 did not start:"; cat "$work/evstreamd.log" "$work/nginx/error.log" 2>/dev/null | tail -3 || true; server_pid=""; exit 1; }
  if [ "$workers" -gt 0 ]; then  # nginx: every worker up before the first reading
    for _ in $(seq 1 100); do [ "$(pgrep -c -P "$server_pid")" -ge "$workers" ] && break; sleep 0.05; done
    [ "$(pgrep -c -P "$server_pid")" -eq "$workers" ] || { echo "$1: expected $workers nginx workers"; exit 1; }
  fi
}
stop_server() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}
# A process and its live children (nginx: the master and its workers; evstreamd: one process whose
# /proc/PID/stat counts all its threads). Ticks: user+sys of each, plus the root's reaped children.
tree_ticks() {
  local p t
  t=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$1/stat")
  for p in $(pgrep -P "$1" || true); do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done
  echo "$t"
}
rss_kib() {  # summed over the process and its children
  local p r=0
  for p in "$1" $(pgrep -P "$1" || true); do r=$((r + $(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0))); done
  echo "$r"
}
pg_pid() { head -1 "${EVSTREAM_PGDIR:-$root/.pg}/data/postmaster.pid"; }
pg_snapshot() {  # "pid ticks" for every PostgreSQL process
  local p
  for p in $(pgrep -P "$(pg_pid)" || true); do echo "$p $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)"; done
}
pg_session_ticks() {  # pg_session_ticks SNAPSHOT: ticks since then of the bench database's sessions (still connected)
  psql -X -Atq -c "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()" >"$work/pg_pids"
  pg_snapshot | awk 'FILENAME == ARGV[1] {before[$1] = $2; next} FILENAME == ARGV[2] {want[$1] = 1; next}
    ($1 in want) {t += $2 - (($1 in before) ? before[$1] : 0)} END {print t + 0}' "$1" "$work/pg_pids" -
}

# run KIND MODE CONNS COUNT RATE -> one TSV row and a printed line
mkdir -p bench/results
stamp=$(date -u +%Y-%m-%dT%H:%M:%SZ); commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
run() {
  local kind=$1 mode=$2 conns=$3 count=$4 rate=$5
  start_server "$kind"
  # A row says what ran: evstreamd-tK started without the thread flag is labelled so.
  local label=$kind
  case "$kind" in evstreamd-t*|evstreamd-base-t*) [ -n "$threads_flag" ] || label="$kind-noflag" ;; esac
  local rss0; rss0=$(rss_kib "$server_pid")
  rm -f "$work/ready"
  local shape=(--connections "$conns")
  case "$kind" in
    evstreamd-h2x10) shape=(--h2 1 --connections 10 --streams $((conns / 10))) ;;
    evstreamd-h2) shape=(--h2 1 --connections "$conns" --streams 1) ;;
  esac
  "$work/fanout-client" --port "$port" --path "$sub_path" "${headers[@]}" "${shape[@]}" \
    --events "$count" --timeout $((60 + count / 20)) --ready-file "$work/ready" >"$work/client.json" &
  client_pid=$!
  for _ in $(seq 1 1200); do [ -f "$work/ready" ] && break; kill -0 $client_pid 2>/dev/null || break; sleep 0.05; done
  local rss1; rss1=$(rss_kib "$server_pid")
  local t0; t0=$(tree_ticks "$server_pid")
  pg_snapshot >"$work/pg_before"
  local s0; s0=$(date +%s.%N)
  node bench/fanout/publish.mjs --target "$pub_target" --url "$pub_url" "${pub_args[@]}" \
    --rate "$rate" --count "$count" >"$work/pub.json"
  wait $client_pid || true
  client_pid=""
  local s1; s1=$(date +%s.%N)
  local t1; t1=$(tree_ticks "$server_pid")
  local pg_ticks; pg_ticks=$(pg_session_ticks "$work/pg_before")
  # evstreamd: events per feed read (its /metrics; "-" for other servers): how much each read
  # and each write per connection carried
  local per_read="-"
  case "$kind" in evstreamd*)
    per_read=$(curl -s --max-time 5 "http://127.0.0.1:$port/metrics" | awk '
      $1 == "evstream_events_read_total" {e = $2} $1 == "evstream_feed_reads_total" {r = $2}
      END {if (r > 0) printf "%.2f", e / r; else print "-"}') ;;
  esac
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
  ' "$work/client.json" "$work/pub.json" "$label" "$mode" "$conns" "$rss0" "$rss1" "$((t1 - t0))" "$hz" \
    "$(echo "$s1 - $s0" | bc)")
  printf '%s\t%s\t%s\n' "$stamp" "$commit" "$line" >>bench/results/fanout.tsv
  local received pg_us pub_failed
  received=$(echo "$line" | cut -f5)
  pg_us=$(awk -v t="$pg_ticks" -v hz="$hz" -v d="$received" 'BEGIN {printf "%.2f", (d > 0 ? t / hz * 1e6 / d : 0)}')
  pub_failed=$(node -p 'JSON.parse(require("fs").readFileSync(process.argv[1])).failed ?? 0' "$work/pub.json")
  printf '%s\t%s\t%s\t%s\n' "$rate" "$line" "$pg_us" "$pub_failed" >>"$work/rows.tsv"
  echo "$line" | awk -F'\t' -v pg="$pg_us" -v pf="$pub_failed" -v pr="$per_read" '{printf "%-19s %-10s conns=%-6s pub=%5s/s recv=%8s/%-8s lost=%s dup/reord=%s failed=%s pubfail=%s  delivered=%7s ev/s  p50=%6sms p99=%6sms p99.9=%6sms  cpu=%3s%%  rss/conn=%6s KiB  cpu/delivery=%s us (pg=%s us)  events/read=%s\n", $1,$2,$3,$4,$5,$6,$7,$8,$9,pf,$10,$11,$12,$13,$14,$15,$16,pg,pr}'
}

# The rows of this run (offered rate, the TSV line, pg us, publisher failures): evstreamd-tK /
# nchan-wK (`nchan` for K = 1) per offered rate, and each kind's sustainable rate.
summary() {
  awk -F'\t' -v budget="$SUSTAIN_P99_MS" '
    function ratio(a, b) { return (b + 0 > 0) ? sprintf("%.2f", a / b) : "n/a" }
    $3 == "latency" {
      rate = $1; kind = $2
      if (!(rate in rseen)) { rseen[rate] = 1; rates[++nr] = rate }
      if (!(kind in kseen)) { kseen[kind] = 1; kinds[++nk] = kind }
      p99[rate, kind] = $13; cpu[rate, kind] = $17; pg[rate, kind] = $18
      # all delivered (nothing lost, duplicated, failed; every event counted), the publisher got
      # >= 95 % of the rate out with every answer 2xx, p99 within the budget
      ok = $8 == 0 && $9 == 0 && $10 == 0 && $6 == $7 && $19 == 0 && $5 >= 0.95 * $1 && $13 <= budget + 0
      if (ok && rate + 0 > best[kind] + 0) best[kind] = rate
    }
    END {
      print "summary: evstreamd-tK / nchan-wK at each offered rate (goal: p99 ratio <= 0.5, cpu/delivery ratio <= 1)"
      for (i = 1; i <= nr; i++) for (j = 1; j <= nk; j++) {
        r = rates[i]; k = kinds[j]
        if (k !~ /^evstreamd-t[0-9]+(-noflag)?$/) continue
        w = k; sub(/^evstreamd-t/, "", w); sub(/-noflag$/, "", w); o = "nchan-w" w
        if (!((r, o) in p99) && w == 1) o = "nchan"
        if (!((r, o) in p99)) continue
        printf "  %5s/s  %s / %-8s  p99 %8s / %8s ms = %s   cpu/delivery %6s / %6s us = %s   (evstreamd pg=%s us)\n",
          r, k, o, p99[r, k], p99[r, o], ratio(p99[r, k], p99[r, o]), cpu[r, k], cpu[r, o], ratio(cpu[r, k], cpu[r, o]), pg[r, k]
      }
      for (i = 1; i <= nr; i++) for (j = 1; j <= nk; j++) {
        r = rates[i]; k = kinds[j]; b = k; sub(/^evstreamd-t/, "evstreamd-base-t", b)
        if (k !~ /^evstreamd-t[0-9]+(-noflag)?$/ || !((r, b) in p99)) continue
        printf "  %5s/s  %s / %s  p99 %s / %s ms = %s   cpu/delivery %s / %s us = %s   pg %s / %s us = %s\n",
          r, k, b, p99[r, k], p99[r, b], ratio(p99[r, k], p99[r, b]), cpu[r, k], cpu[r, b], ratio(cpu[r, k], cpu[r, b]),
          pg[r, k], pg[r, b], ratio(pg[r, k], pg[r, b])
      }
      printf "sustainable rate (highest rate run with p99 <= %s ms, all delivered, publisher on schedule):\n", budget
      for (j = 1; j <= nk; j++) printf "  %-19s %s\n", kinds[j], (kinds[j] in best) ? best[kinds[j]] "/s" : "none"
      if (("evstreamd-t1" in best) && ("evstreamd-t2" in best))
        printf "  evstreamd-t2 / evstreamd-t1 = %.2f (goal >= 1.6; no finer than the rates run)\n", best["evstreamd-t2"] / best["evstreamd-t1"]
    }
  ' "$work/rows.tsv"
}

echo "kind                mode       (native client; server and client share $(nproc) cores)"
for conns in $CONNS; do
  if [ -n "$RATES" ]; then  # explicit rates: rate outer, servers inner, never lowered by the budget
    for rate in $RATES; do
      [ $((rate * conns)) -le "$LATENCY_BUDGET" ] ||
        echo "($rate/s x $conns subscribers = $((rate * conns)) deliveries/s, above LATENCY_BUDGET $LATENCY_BUDGET: run as asked)"
      for kind in $SERVERS; do run "$kind" latency "$conns" $((rate * SECONDS_PER_RUN)) "$rate"; done
    done
  else
    rate=$(( RATE * conns > LATENCY_BUDGET ? LATENCY_BUDGET / conns : RATE ))
    [ "$rate" -ge 1 ] || rate=1
    for kind in $SERVERS; do run "$kind" latency "$conns" $((rate * SECONDS_PER_RUN)) "$rate"; done
  fi
done
[ "$THROUGHPUT" = 0 ] || for kind in $SERVERS; do run "$kind" throughput "$THROUGHPUT_CONNS" "$BURST" 1000000; done
[ -z "$RATES" ] || summary
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS evstream_fanout WITH (FORCE)"
