#!/usr/bin/env bash
# Append cost in CPU time: the same variants as run.sh (plain, plain2, plpgsql, evstream-worker,
# evstream-off), each a fixed number of transactions, measured as the CPU time (user + system)
# its backends and this database's doorbell worker spend per transaction. TPS on a shared machine
# swings with other people's load and with the disk's flush time; the CPU an append costs does
# not, and it is what decides throughput once the machine is CPU-bound. Ratios are
# (CPU per plain INSERT) / (CPU per variant): the throughput ratio a CPU-bound run would show.
# Settings: TXNS (per client, default 3000), CLIENTS (default "8 1"), ROUNDS (default 3),
# VARIANTS, EXTRA_PGOPTIONS (default "-c synchronous_commit=off": the commit's flush wait is not
# CPU). Results: printed, and appended to bench/results/append_cpu.tsv.
set -euo pipefail
cd "$(dirname "$0")/../.."
TXNS="${TXNS:-3000}"
CLIENTS="${CLIENTS:-8 1}"
ROUNDS="${ROUNDS:-3}"
VARIANTS="${VARIANTS:-plain plain2 plpgsql evstream-worker evstream-off}"
EXTRA_PGOPTIONS="${EXTRA_PGOPTIONS--c synchronous_commit=off}"
bin="$(pg_config --bindir)"
here=bench/append
hz=$(getconf CLK_TCK)

scripts/pg start >/dev/null
eval "$(scripts/pg env)"
export PGDATABASE=evstream_bench
PGDATA_DIR="${EVSTREAM_PGDIR:-$(pwd)/.pg}/data"
psql -X -q -d postgres -c "SET client_min_messages = warning" \
  -c "DROP DATABASE IF EXISTS evstream_bench WITH (FORCE)" -c "CREATE DATABASE evstream_bench"

fresh() {
  psql -X -q -c "SET client_min_messages = warning" -c "DROP EXTENSION IF EXISTS evstream CASCADE" \
    -c "CREATE EXTENSION evstream" -f "$here/plpgsql_post_event.sql" \
    -c "DROP TABLE IF EXISTS bench_plain, bench_plain_aggregates" \
    -c "CREATE TABLE bench_plain (LIKE evstream.events INCLUDING DEFAULTS INCLUDING INDEXES INCLUDING CONSTRAINTS)" \
    -c "CREATE TABLE bench_plain_aggregates (aggregate_type text NOT NULL, aggregate_id text NOT NULL, version integer NOT NULL, state text, updated_at timestamptz NOT NULL DEFAULT now(), channel text NOT NULL, PRIMARY KEY (aggregate_type, aggregate_id))" \
    -c "ALTER TABLE bench_plain ALTER COLUMN order_key SET DEFAULT 1" \
    -c "ALTER TABLE bench_plain SET (autovacuum_enabled = false)" \
    -c "ALTER TABLE bench_plain_aggregates SET (autovacuum_enabled = false)" \
    -c "ALTER TABLE bench_pl_events SET (autovacuum_enabled = false)" \
    -c "ALTER TABLE bench_pl_aggregates SET (autovacuum_enabled = false)" \
    -c "ALTER TABLE evstream.events SET (autovacuum_enabled = false)" \
    -c "ALTER TABLE evstream.aggregate_states SET (autovacuum_enabled = false)" -c "CHECKPOINT" >/dev/null
}

# cpu_per_txn SCRIPT CLIENTS [PGOPTIONS]: microseconds of CPU per transaction spent by the
# backends and this database's doorbell worker, read exactly from the postmaster's counters of
# its exited children (cutime + cstime of /proc/<postmaster>/stat): taken before pgbench starts
# and again once every backend of the run and the doorbell worker (idle exit after
# evstream.doorbell_idle_exit) have exited. Nothing else of this cluster runs meanwhile
# (autovacuum is off on the bench tables); a few ms of the one query that finds the worker count.
postmaster=$(head -1 "$PGDATA_DIR/postmaster.pid")
children_cpu() { sed 's/.*) //' "/proc/$postmaster/stat" | awk '{print $14 + $15}'; }
cpu_per_txn() {
  local out; out=$(mktemp)
  local before; before=$(children_cpu)
  PGOPTIONS="$EXTRA_PGOPTIONS ${3:-}" "$bin/pgbench" -n -M prepared -c "$2" -j "$2" -t "$TXNS" -f "$1" \
    >"$out" 2>&1 || { cat "$out" >&2; return 1; }
  local w
  for w in $(psql -X -At -d postgres -c "SELECT pid FROM pg_stat_activity
      WHERE datname = 'evstream_bench' AND backend_type = 'evstream doorbell'"); do
    while [ -e "/proc/$w" ]; do sleep 0.1; done
  done
  while [ -n "$(psql -X -At -d postgres -c "SELECT 1 FROM pg_stat_activity WHERE datname = 'evstream_bench' LIMIT 1")" ]; do
    sleep 0.05
  done
  local after; after=$(children_cpu)
  local n; n=$(awk '/number of transactions actually processed/ {split($NF, a, "/"); print a[1]}' "$out")
  rm -f "$out"
  awk -v a="$after" -v b="$before" -v n="$n" -v hz="$hz" 'BEGIN {printf "%.0f\n", (a - b) / hz * 1e6 / n}'
}

mkdir -p bench/results
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
stamp=$(date -u +%Y-%m-%dT%H:%M:%SZ)
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
echo "load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cpus, PGOPTIONS '$EXTRA_PGOPTIONS'"
for c in $CLIENTS; do
  declare -A all=() r=()
  for round in $(seq 1 "$ROUNDS"); do
    for v in $VARIANTS; do
      fresh
      case "$v" in
        plain) t=$(cpu_per_txn "$here/plain.pgbench" "$c") ;;
        plain2) t=$(cpu_per_txn "$here/plain_two_rows.pgbench" "$c") ;;
        plpgsql) t=$(cpu_per_txn "$here/plpgsql.pgbench" "$c") ;;
        evstream-*) t=$(cpu_per_txn "$here/post_event.pgbench" "$c" "-c evstream.doorbell=${v#evstream-}") ;;
      esac
      all[$v]="${all[$v]:-} $t"
      printf '  round %s %-18s clients=%-3s %6s us CPU per transaction\n' "$round" "$v" "$c" "$t"
    done
  done
  for v in $VARIANTS; do
    r[$v]=$(echo "${all[$v]}" | median)
    printf '%-18s clients=%-3s median %6s us/txn  (runs:%s)\n' "$v" "$c" "${r[$v]}" "${all[$v]}"
    printf '%s\t%s\tappend_cpu\t%s\t%s\t%sx%s\t%s\n' "$stamp" "$commit" "$v" "$c" "$ROUNDS" "$TXNS" "${r[$v]}" \
      >>bench/results/append_cpu.tsv
  done
  for v in $VARIANTS; do
    [ "$v" = plain ] && continue
    awk -v a="${r[$v]}" -v b="${r[plain]}" -v n="$v" -v c="$c" \
      'BEGIN {printf "CPU ratio plain / %-16s (clients=%s): %.2f\n", n, c, b / a}'
  done
  if [ -n "${r[plpgsql]:-}" ] && [ -n "${r[evstream-worker]:-}" ]; then
    awk -v a="${r[evstream-worker]}" -v b="${r[plpgsql]}" -v c="$c" \
      'BEGIN {printf "CPU ratio plpgsql / evstream-worker (clients=%s): %.2f\n", c, b / a}'
  fi
  unset r all
done
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS evstream_bench WITH (FORCE)"
