#!/usr/bin/env bash
# Where a delivery's CPU goes: one evstreamd, CONNS SSE subscribers (the native fan-out client),
# RATE events/s posted over HTTP (`POST /api/events`, bench/fanout/post_http.mjs). Needs root
# (perf on another process, uprobes) and Debian's linux-perf. Three windows on the same load:
#  1. perf record of the daemon only (call graphs) for PROFILE_SECONDS; CPU split by
#     profile_shares.mjs, plus perf report --no-children / --children;
#  2. syscall counts (tracepoints, no uprobes) for COUNT_SECONDS;
#  3. uprobes: libc malloc/calloc/realloc (allocations per delivery) and
#     Connection::FlushDeferred (one per connection with frames per loop turn) and
#     Server::OnCheck (one per loop turn), with write/writev counts, for COUNT_SECONDS;
#  4. every malloc with its call chain for 3 s: who still allocates (malloc-callers.tsv).
# Deliveries in each window from /metrics (evstream_events_delivered_total, read around the
# window, so a little longer than perf's own SECONDS: ratios to it are a few % low). Uprobes are added in
# the group `dperf` and removed on exit. Wrap the run in `flock /tmp/bench.lock` on a shared box.
# Settings: CONNS (1000), RATE (150), PROFILE_SECONDS (20), COUNT_SECONDS (10), PORT (8195),
#           EVSTREAM_BUILD (build), EVSTREAM_PGDIR (the private cluster, as scripts/pg),
#           OUT (bench/results/profile-<stamp>: reports and the summary are kept there).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
CONNS="${CONNS:-1000}" RATE="${RATE:-150}" SECS="${PROFILE_SECONDS:-20}"
COUNT_SECS="${COUNT_SECONDS:-10}" PORT="${PORT:-8195}"
build="${EVSTREAM_BUILD:-build}"
bin="$root/$build/daemon/evstreamd"
[ -x "$bin" ] || { echo "build evstreamd first: cmake -S . -B $build -DCMAKE_BUILD_TYPE=RelWithDebInfo && cmake --build $build --target evstreamd"; exit 1; }
command -v perf >/dev/null || { echo "perf missing: apt-get install linux-perf"; exit 1; }
stamp=$(date -u +%Y-%m-%dT%H:%M:%SZ); commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
out="${OUT:-$root/bench/results/profile-$stamp}"
mkdir -p "$out"
work=$(mktemp -d /tmp/evstream-profile.XXXXXX)
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
libc=$(ldd "$bin" | awk '/libc\.so/ {print $3}')

daemon_pid="" client_pid="" pub_pid=""
cleanup() {
  perf probe -q -d 'dperf:*' 2>/dev/null || true
  for p in $pub_pid $client_pid $daemon_pid; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

g++ -std=c++17 -O2 -o "$work/fanout-client" bench/fanout/loadclient.cpp -luv -lnghttp2

scripts/pg start >/dev/null
eval "$(scripts/pg env)"
export PGDATABASE=evstream_profile
psql -X -q -d postgres -c "SET client_min_messages = warning" \
  -c "DROP DATABASE IF EXISTS evstream_profile WITH (FORCE)" -c "CREATE DATABASE evstream_profile" \
  -c "ALTER DATABASE evstream_profile SET synchronous_commit = off"  # fan-out, not fsync
psql -X -q -c "CREATE EXTENSION evstream"
secret="bench-secret-$(od -An -N16 -tx8 /dev/urandom | tr -d ' \n')"
token=$(node scripts/jwt.mjs "$secret" '{"sub": "bench", "projects": ["bench"]}')

"$bin" --listen "127.0.0.1:$PORT" --jwt-secret "$secret" \
  --heartbeat 30 --max-queue-bytes 8388608 --max-connections-per-address 100000 \
  --max-connections-per-sub 100000 --log-level warn --web-root "$work" 2>"$out/evstreamd.log" &
daemon_pid=$!
for _ in $(seq 1 200); do curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/healthz" && break; sleep 0.05; done

total_events=$((RATE * (SECS + 2 * COUNT_SECS + 15)))
"$work/fanout-client" --port "$PORT" --path "/api/events/stream?channel=project:bench" \
  --header "Authorization: Bearer $token" --connections "$CONNS" --events "$total_events" \
  --timeout $((SECS + 2 * COUNT_SECS + 120)) --ready-file "$work/ready" >"$out/client.json" &
client_pid=$!
for _ in $(seq 1 1200); do [ -f "$work/ready" ] && break; sleep 0.05; done
[ -f "$work/ready" ] || { echo "subscribers did not connect"; exit 1; }
node bench/fanout/post_http.mjs --port "$PORT" --token "$token" --rate "$RATE" --count "$total_events" >"$out/pub.json" &
pub_pid=$!
sleep 5  # warm-up

metric() { curl -s "http://127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
ticks() { awk '{print $14 + $15}' "/proc/$daemon_pid/stat"; }
window_start() { d0=$(metric evstream_events_delivered_total); r0=$(metric evstream_feed_reads_total); t0=$(ticks); s0=$(date +%s.%N); }
window_end() {  # window_end NAME -> a line of the summary
  local d1 r1 t1 s1; d1=$(metric evstream_events_delivered_total); r1=$(metric evstream_feed_reads_total); t1=$(ticks); s1=$(date +%s.%N)
  deliveries=$((d1 - d0))
  awk -v n="$1" -v d="$deliveries" -v r="$((r1 - r0))" -v t="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" -v s0="$s0" -v s1="$s1" 'BEGIN {
    s = s1 - s0; printf "%s: %.1f s, deliveries %d (%.0f/s), feed reads %d, daemon CPU %.1f %% of a core, %.2f us per delivery\n",
      n, s, d, d / s, r, 100 * t / hz / s, (d > 0 ? 1e6 * t / hz / d : 0) }' | tee -a "$out/summary.txt"
}

echo "commit $commit, $stamp, $CONNS subscribers, $RATE events/s posted over HTTP, $(nproc) cores" | tee "$out/summary.txt"

# 1. The profile.
window_start
perf record -q --call-graph dwarf,16384 -F 499 -p "$daemon_pid" -o "$work/perf.data" -- sleep "$SECS" 2>"$work/record.log"
window_end "profile window"
# 2. Syscalls, tracepoints only.
window_start
perf stat -x, -e 'raw_syscalls:sys_enter,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_read,syscalls:sys_enter_sendto,syscalls:sys_enter_recvfrom' \
  -p "$daemon_pid" -o "$out/syscalls.csv" -- sleep "$COUNT_SECS"
window_end "syscall window"
cut -d, -f1,3 "$out/syscalls.csv" | grep -v '^#' | grep -v '^$' | tee -a "$out/summary.txt"
# 3. Uprobes: allocations and flushes per loop turn.
perf probe -q -x "$libc" -a 'dperf:malloc=malloc' -a 'dperf:calloc=calloc' -a 'dperf:realloc=realloc'
perf probe -q -x "$bin" -a 'dperf:flush=_ZN8evstream4http10Connection13FlushDeferredEv' -a 'dperf:turn=_ZN8evstream4http6Server7OnCheckEv'
window_start
perf stat -x, -e 'dperf:malloc,dperf:calloc,dperf:realloc,dperf:flush,dperf:turn,syscalls:sys_enter_write,syscalls:sys_enter_writev' \
  -p "$daemon_pid" -o "$out/uprobes.csv" -- sleep "$COUNT_SECS"
window_end "uprobe window"
cut -d, -f1,3 "$out/uprobes.csv" | grep -v '^#' | grep -v '^$' | tee -a "$out/summary.txt"
awk -F, -v d="$deliveries" -v conns="$CONNS" '/dperf:|sys_enter/ { c[$3] = $1 } END {
  a = c["dperf:malloc"] + c["dperf:calloc"] + c["dperf:realloc"]; w = c["syscalls:sys_enter_write"] + c["syscalls:sys_enter_writev"]
  printf "allocations per delivery: %.4f (%d malloc+calloc+realloc / %d deliveries)\n", a / d, a, d
  printf "loop turns %d; connection flushes %d (%.1f connections with frames per turn on average; %.1f flushes per connection of %d)\n", c["dperf:turn"], c["dperf:flush"], c["dperf:flush"] / c["dperf:turn"], c["dperf:flush"] / conns, conns
  printf "write+writev %d: %.3f per connection flush; deliveries per write %.2f\n", w, w / c["dperf:flush"], d / w }' "$out/uprobes.csv" | tee -a "$out/summary.txt"
# 4. Who allocates: every malloc with its call chain, 3 s.
perf record -q -e dperf:malloc -c 1 --call-graph dwarf,8192 -p "$daemon_pid" -o "$work/malloc.data" -- sleep 3 2>>"$work/record.log"
perf probe -q -d 'dperf:*'

kill "$pub_pid" "$client_pid" 2>/dev/null || true
kill "$daemon_pid"; wait "$daemon_pid" 2>/dev/null || true; daemon_pid=""
cat "$out/pub.json" >>"$out/summary.txt" 2>/dev/null || true

# Reports (after the load, so that they do not share the window with it).
perf report -i "$work/perf.data" --no-children --sort dso,sym --stdio -g none --percent-limit 0.3 2>/dev/null >"$out/report-self.txt"
perf report -i "$work/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null >"$out/report-dso.txt"
perf report -i "$work/perf.data" --children --sort sym --stdio -g none --percent-limit 2 2>/dev/null >"$out/report-children.txt"
perf script -i "$work/perf.data" --no-inline -F ip,sym,dso 2>/dev/null | node bench/fanout/profile_shares.mjs | tee "$out/shares.tsv"
perf script -i "$work/malloc.data" --no-inline -F ip,sym,dso 2>/dev/null | node bench/fanout/profile_shares.mjs --callers >"$out/malloc-callers.tsv"; cut -c1-200 "$out/malloc-callers.tsv" | head -30
echo "reports in $out"
