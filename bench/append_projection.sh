#!/usr/bin/env bash
# post_event with a JSON Schema and a projection (+ state machine) vs without: pgbench, the
# variants interleaved round by round, each the median of its rounds, ratios against `bare`.
#   bare        post_event, unregistered type, no projection (the issue-2 append path)
#   schema      the event type has a JSON Schema (object, 4 typed properties, required, bounds)
#   projection  the aggregate type projects into a table (upsert per event) with a state machine
#   both        schema + projection + state machine
# Settings: DURATION (s per run, default 10), ROUNDS (default 3), CLIENTS (default 8),
# AGGREGATES (ids drawn from 1..AGGREGATES, default 100000), SYNCHRONOUS_COMMIT (default on;
# off takes the WAL flush out of each commit, which shows the CPU cost of the per-event work).
# Uses the private cluster of scripts/pg (EVSTREAM_PGDIR / EVSTREAM_PGPORT).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-10}"
ROUNDS="${ROUNDS:-3}"
CLIENTS="${CLIENTS:-8}"
AGGREGATES="${AGGREGATES:-100000}"
SYNCHRONOUS_COMMIT="${SYNCHRONOUS_COMMIT:-on}"
VARIANTS="bare schema projection both"
bin="$(pg_config --bindir)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

scripts/pg start >/dev/null
eval "$(scripts/pg env)"
export PGDATABASE=evstream_bench_projection
psql -X -q -d postgres -c "SET client_min_messages = warning" \
  -c "DROP DATABASE IF EXISTS evstream_bench_projection WITH (FORCE)" -c "CREATE DATABASE evstream_bench_projection"

# pgbench reads ':name' as a variable even inside quotes, hence 'project:' || 'bench'.
for v in $VARIANTS; do
  cat >"$tmp/$v.pgbench" <<PGB
\set id random(1, $AGGREGATES)
\set size :id % 1000
\set cents :id % 500
SELECT position FROM evstream.post_event('project:' || 'bench', '$v', CAST(:id AS text), '$v.updated',
  jsonb_build_object('title', 'title ' || CAST(:id AS text), 'size', CAST(:size AS int),
                     'price', CAST(:cents AS numeric) / 4, 'sku', 'SKU-' || CAST(:id AS text)));
PGB
done

schema='{"type": "object", "required": ["title", "size"], "additionalProperties": false,
  "properties": {"title": {"type": "string", "minLength": 1, "maxLength": 200},
                 "size": {"type": "integer", "minimum": 0}, "price": {"type": "number", "minimum": 0},
                 "sku": {"type": "string", "pattern": "^SKU-[0-9]+$"}}}'

fresh() {  # a clean log and tables before each run
  psql -X -q -v ON_ERROR_STOP=1 >/dev/null <<SQL
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS evstream CASCADE;
CREATE EXTENSION evstream;
DROP TABLE IF EXISTS target_projection, target_both;
CREATE TABLE target_projection (id text PRIMARY KEY, title text, size integer, price numeric,
                                sku text, status text, version integer, updated_at timestamptz);
CREATE TABLE target_both (LIKE target_projection INCLUDING ALL);
SELECT evstream.register_event_type('schema.updated', '$schema');
SELECT evstream.register_event_type('both.updated', '$schema');
SELECT evstream.project_into('projection', 'target_projection');
SELECT evstream.project_into('both', 'target_both');
SELECT evstream.allow_transition(t, NULL, t || '.updated', 'active'),
       evstream.allow_transition(t, 'active', t || '.updated', 'active')
  FROM unnest(ARRAY['projection', 'both']) t;
CHECKPOINT;
SQL
}

tps() {  # tps SCRIPT
  local out
  out=$(PGOPTIONS="-c synchronous_commit=$SYNCHRONOUS_COMMIT" "$bin/pgbench" -n -M prepared -c "$CLIENTS" -j "$CLIENTS" -T "$DURATION" -f "$1" 2>&1) || {
    echo "$out" >&2; return 1; }
  echo "$out" | awk '/^tps = / {printf "%.0f\n", $3}'
}
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

declare -A all=()
for round in $(seq 1 "$ROUNDS"); do
  for v in $VARIANTS; do
    fresh
    t=$(tps "$tmp/$v.pgbench")
    all[$v]="${all[$v]:-} $t"
    printf '  round %s %-11s clients=%s %8s tps\n' "$round" "$v" "$CLIENTS" "$t"
  done
done
base=$(echo "${all[bare]}" | median)
echo "post_event, $CLIENTS clients, ${DURATION}s x $ROUNDS rounds, synchronous_commit=$SYNCHRONOUS_COMMIT (median TPS, ratio to bare):"
for v in $VARIANTS; do
  m=$(echo "${all[$v]}" | median)
  awk -v v="$v" -v m="$m" -v b="$base" 'BEGIN {printf "  %-11s %8d tps  %.2f\n", v, m, m / b}'
done
