#!/usr/bin/env bash
# Delivery latency benchmark (issue 13): end-to-end p50/p99 from post_event's commit to an SSE
# subscriber of the real evstreamd (the order-key horizon, --poll-ms 0: doorbells only), side by
# side in the same run with the xmin-rule baseline reader and a direct reader of the new horizon
# (the same loop as the baseline, through read_after: rule against rule without the daemon's hop;
# bench/latency/latency.mjs), in three scenarios:
#   idle     nothing else runs in the cluster
#   pgbench  pgbench (PGBENCH_CLIENTS clients, TPC-B-like) runs in another database
#   longtx   a session in another database keeps a write transaction open (HOLD_MS, then
#            commits and opens the next) for the whole run
# Settings: RATE (events/s, default 100), SECONDS (per scenario, default 10), SUBSCRIBERS
# (default 10), HOLD_MS (default 5000), PGBENCH_CLIENTS (default 4), SCENARIOS, ROUNDS (default 1).
# Results: printed, and appended to bench/results/latency.tsv.
set -euo pipefail
cd "$(dirname "$0")/../.."
RATE="${RATE:-100}"
SECONDS_PER_RUN="${SECONDS:-10}"
SUBSCRIBERS="${SUBSCRIBERS:-10}"
HOLD_MS="${HOLD_MS:-5000}"
PGBENCH_CLIENTS="${PGBENCH_CLIENTS:-4}"
SCENARIOS="${SCENARIOS:-idle pgbench longtx}"
ROUNDS="${ROUNDS:-1}"
build="${EVSTREAM_BUILD:-build}"
bin="$(pg_config --bindir)"
[ -x "$build/daemon/evstreamd" ] || { echo "build evstreamd first (cmake --build $build)"; exit 1; }

scripts/pg start >/dev/null
eval "$(scripts/pg env)"
export PGDATABASE=evstream_latency
other=evstream_latency_other
psql -X -q -d postgres -c "SET client_min_messages = warning" \
  -c "DROP DATABASE IF EXISTS evstream_latency WITH (FORCE)" -c "CREATE DATABASE evstream_latency" \
  -c "DROP DATABASE IF EXISTS $other WITH (FORCE)" -c "CREATE DATABASE $other"
# The baseline reader walks (tx, position), as the 0.1.0 log's readers did: give it its index.
psql -X -q -c "CREATE EXTENSION evstream" -c "CREATE INDEX bench_events_tx_idx ON evstream.events (tx, position)"
"$bin/pgbench" -q -i -s 4 -d "$other" >/dev/null 2>&1

secret="bench-secret-$(od -An -N16 -tx8 /dev/urandom | tr -d ' \n')"
token=$(node scripts/jwt.mjs "$secret" '{"sub": "bench", "projects": ["bench"]}')
work=$(mktemp -d /tmp/evstream-latency.XXXXXX)
port=8193
"$build/daemon/evstreamd" --listen "127.0.0.1:$port" --jwt-secret "$secret" --poll-ms 0 \
  --log-level warn --web-root "$work" 2>"$work/evstreamd.log" &
daemon=$!
pgbench_pid=""
cleanup() {
  [ -n "$pgbench_pid" ] && kill "$pgbench_pid" 2>/dev/null || true
  kill "$daemon" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 1 200); do
  curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.05
done

mkdir -p bench/results
stamp=$(date -u +%Y-%m-%dT%H:%M:%SZ)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
load=$(cut -d' ' -f1 /proc/loadavg)
printf '%-8s %-15s %9s %9s %9s %6s %7s   (load average %s, %s cpus)\n' scenario reader p50_ms p99_ms max_ms n missing "$load" "$(nproc)"
for round in $(seq 1 "$ROUNDS"); do
  for s in $SCENARIOS; do
    extra=()
    case "$s" in
      pgbench)
        "$bin/pgbench" -n -c "$PGBENCH_CLIENTS" -j 2 -T $((SECONDS_PER_RUN + 30)) -d "$other" >/dev/null 2>&1 &
        pgbench_pid=$!
        sleep 1 ;;  # let pgbench connect and reach its steady state before the first event
      longtx) extra=(--load longtx --other-db "$other") ;;
    esac
    out=$(node bench/latency/latency.mjs --url "http://127.0.0.1:$port" --token "$token" --scenario "$s" \
      --rate "$RATE" --seconds "$SECONDS_PER_RUN" --subscribers "$SUBSCRIBERS" --hold-ms "$HOLD_MS" "${extra[@]}")
    if [ -n "$pgbench_pid" ]; then kill "$pgbench_pid" 2>/dev/null || true; wait "$pgbench_pid" 2>/dev/null || true; pgbench_pid=""; fi
    echo "$out" | node -e '
      const r = JSON.parse(require("fs").readFileSync(0, "utf8"));
      const [stamp, commit, load, round] = process.argv.slice(1);
      const lines = [];
      const names = { sse: "evstreamd-sse", horizon: "horizon-direct", xmin: "xmin-baseline" };
      for (const k of ["sse", "horizon", "xmin"]) {
        const x = r[k];
        console.log(`${r.scenario.padEnd(8)} ${names[k].padEnd(15)} ${String(x.p50).padStart(9)} ${String(x.p99).padStart(9)} ${String(x.max).padStart(9)} ${String(x.n).padStart(6)} ${String(x.missing).padStart(7)}`);
        lines.push([stamp, commit, load, round, r.scenario, names[k], r.rate, r.subscribers, x.p50, x.p99, x.max, x.n, x.missing].join("\t"));
      }
      require("fs").appendFileSync("bench/results/latency.tsv", lines.join("\n") + "\n");
      const f = (a, b) => (a / b).toFixed(1);
      console.log(`${r.scenario.padEnd(8)} p99 ratio xmin-baseline / evstreamd-sse ${f(r.xmin.p99, r.sse.p99)}, xmin-baseline / horizon-direct ${f(r.xmin.p99, r.horizon.p99)}`);
    ' "$stamp" "$commit" "$load" "$round"
  done
done
psql -X -q -d postgres -c "SET client_min_messages = warning" \
  -c "DROP DATABASE IF EXISTS evstream_latency WITH (FORCE)" -c "DROP DATABASE IF EXISTS $other WITH (FORCE)"
