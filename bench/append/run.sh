#!/usr/bin/env bash
# Append benchmark: pgbench against the private cluster, every variant in the same run.
#   plain      INSERT ... RETURNING into a table of the same shape and indexes (the physical limit)
#   plain2     the same plus the per-aggregate row upsert, as two statements in one transaction
#              (the two row writes post_event made until 0.3.0, without any of its checks)
#   plpgsql    a hand-written PL/pgSQL post_event with NOTIFY inside the transaction
#   evstream   evstream.post_event with evstream.doorbell = worker (default) | inline | off
#   invoker    the same C function declared without SECURITY DEFINER / SET search_path (what
#              post_event was before issue 10), doorbell worker: the price of the definer switch
# Prints TPS and the ratios, and appends them to bench/results/append.tsv.
# Settings: DURATION (s per run, default 10), ROUNDS (default 3), CLIENTS (default "8"),
# VARIANTS (default all), EXTRA_PGOPTIONS (given to every variant, e.g. "-c synchronous_commit=off"
# to measure the CPU cost of the append path when the WAL flush of a loaded disk would hide it).
# Variants are interleaved round by round and each reports its median, so a burst of load from
# elsewhere on the machine hits all of them alike.
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION="${DURATION:-10}"
ROUNDS="${ROUNDS:-3}"
CLIENTS="${CLIENTS:-8}"
VARIANTS="${VARIANTS:-plain plain2 plpgsql evstream-worker evstream-inline evstream-off invoker}"
bin="$(pg_config --bindir)"
here=bench/append

scripts/pg start >/dev/null
eval "$(scripts/pg env)"
export PGDATABASE=evstream_bench
psql -X -q -d postgres -c "SET client_min_messages = warning" \
  -c "DROP DATABASE IF EXISTS evstream_bench WITH (FORCE)" -c "CREATE DATABASE evstream_bench"

fresh() {  # a clean log before each run, so no variant pays for another's rows
  psql -X -q -c "SET client_min_messages = warning" -c "DROP EXTENSION IF EXISTS evstream CASCADE" \
    -c "CREATE EXTENSION evstream" -f "$here/plpgsql_post_event.sql" \
    -c "DROP TABLE IF EXISTS bench_plain, bench_plain_aggregates" \
    -c "CREATE TABLE bench_plain (LIKE evstream.events INCLUDING DEFAULTS INCLUDING INDEXES INCLUDING CONSTRAINTS)" \
    -c "CREATE TABLE bench_plain_aggregates (aggregate_type text NOT NULL, aggregate_id text NOT NULL, version integer NOT NULL, state text, updated_at timestamptz NOT NULL DEFAULT now(), channel text NOT NULL, PRIMARY KEY (aggregate_type, aggregate_id))" \
    -c "ALTER TABLE bench_plain ALTER COLUMN order_key SET DEFAULT 1" \
    -c "CREATE FUNCTION public.bench_post_event_invoker(channel text, aggregate_type text, aggregate_id text,
          event_type text, data jsonb DEFAULT '{}', metadata jsonb DEFAULT '{}', idempotency_key text DEFAULT NULL,
          expected_version integer DEFAULT NULL, correlation_id uuid DEFAULT NULL, causation_id uuid DEFAULT NULL,
          display jsonb DEFAULT NULL, created_by text DEFAULT NULL) RETURNS evstream.events
          LANGUAGE c VOLATILE AS '\$libdir/evstream', 'evstream_post_event'" \
    -c "CHECKPOINT" >/dev/null
}

tps() {  # tps SCRIPT CLIENTS [PGOPTIONS]
  local out
  out=$(PGOPTIONS="${EXTRA_PGOPTIONS:-} ${3:-}" "$bin/pgbench" -n -M prepared -c "$2" -j "$2" -T "$DURATION" -f "$1" 2>&1) || {
    echo "$out" >&2; return 1; }
  echo "$out" | awk '/^tps = / {printf "%.0f\n", $3}'
}

mkdir -p bench/results
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
stamp=$(date -u +%Y-%m-%dT%H:%M:%SZ)
cpu=$(nproc)
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

for c in $CLIENTS; do
  declare -A all=() r=()
  for round in $(seq 1 "$ROUNDS"); do
    for v in $VARIANTS; do
      fresh
      case "$v" in
        plain) t=$(tps "$here/plain.pgbench" "$c") ;;
        plain2) t=$(tps "$here/plain_two_rows.pgbench" "$c") ;;
        plpgsql) t=$(tps "$here/plpgsql.pgbench" "$c") ;;
        evstream-*) t=$(tps "$here/post_event.pgbench" "$c" "-c evstream.doorbell=${v#evstream-}") ;;
        invoker) t=$(tps "$here/post_event_invoker.pgbench" "$c") ;;
      esac
      all[$v]="${all[$v]:-} $t"
      printf '  round %s %-18s clients=%-3s %8s tps\n' "$round" "$v" "$c" "$t"
    done
  done
  for v in $VARIANTS; do
    r[$v]=$(echo "${all[$v]}" | median)
    printf '%-18s clients=%-3s median %8s tps  (runs:%s)\n' "$v" "$c" "${r[$v]}" "${all[$v]}"
    printf '%s\t%s\t%s cpus\tappend\t%s\t%s\t%sx%ss\t%s\n' "$stamp" "$commit" "$cpu" "$v" "$c" "$ROUNDS" "$DURATION" "${r[$v]}" \
      >>bench/results/append.tsv
  done
  base=${r[plain]:-}
  if [ -n "$base" ]; then
    for v in $VARIANTS; do
      [ "$v" = plain ] && continue
      awk -v a="${r[$v]}" -v b="$base" -v n="$v" -v c="$c" \
        'BEGIN {printf "ratio %-18s / plain  (clients=%s): %.2f\n", n, c, a / b}'
    done
  fi
  if [ -n "${r[invoker]:-}" ] && [ -n "${r[evstream-worker]:-}" ]; then
    awk -v a="${r[evstream-worker]}" -v b="${r[invoker]}" -v c="$c" \
      'BEGIN {printf "ratio evstream-worker (SECURITY DEFINER) / invoker (clients=%s): %.2f\n", c, a / b}'
  fi
  if [ -n "${r[plpgsql]:-}" ] && [ -n "${r[evstream-worker]:-}" ]; then
    awk -v a="${r[evstream-worker]}" -v b="${r[plpgsql]}" -v c="$c" \
      'BEGIN {printf "ratio evstream-worker / plpgsql (clients=%s): %.2f\n", c, a / b}'
  fi
  if [ -n "${r[evstream-off]:-}" ] && [ -n "${r[evstream-worker]:-}" ]; then
    awk -v a="${r[evstream-worker]}" -v b="${r[evstream-off]}" -v c="$c" \
      'BEGIN {printf "doorbell cost: worker / off (clients=%s): %.2f\n", c, a / b}'
  fi
  if [ -n "${r[evstream-off]:-}" ] && [ -n "${r[evstream-inline]:-}" ]; then
    awk -v a="${r[evstream-inline]}" -v b="${r[evstream-off]}" -v c="$c" \
      'BEGIN {printf "doorbell cost: inline / off (clients=%s): %.2f\n", c, a / b}'
  fi
  unset r all
done
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS evstream_bench WITH (FORCE)"
