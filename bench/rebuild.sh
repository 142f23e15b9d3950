#!/usr/bin/env bash
# Rebuild benchmark: evstream.rebuild (C++ fold: truncate + replay, projection + state machine)
# on EVENTS events over AGGREGATES aggregates, against a hand-written SQL rebuild of the same
# table run beside it (jsonb_object_agg of every event's keys per aggregate, latest wins, then
# jsonb_populate_record; no state machine). Prints events/s and the ratio.
# Settings: EVENTS (default 200000), AGGREGATES (default 10000), ROUNDS (default 3).
# Uses the private cluster of scripts/pg (EVSTREAM_PGDIR / EVSTREAM_PGPORT).
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS="${EVENTS:-200000}"
AGGREGATES="${AGGREGATES:-10000}"
ROUNDS="${ROUNDS:-3}"

scripts/pg start >/dev/null
eval "$(scripts/pg env)"
export PGDATABASE=evstream_bench_rebuild
psql -X -q -d postgres -c "SET client_min_messages = warning" \
  -c "DROP DATABASE IF EXISTS evstream_bench_rebuild WITH (FORCE)" -c "CREATE DATABASE evstream_bench_rebuild"

psql -X -q -v ON_ERROR_STOP=1 >/dev/null <<SQL
SET client_min_messages = warning;
CREATE EXTENSION evstream;
CREATE TABLE items (id text PRIMARY KEY, title text, size integer, price numeric, status text,
                    version integer, updated_at timestamptz);
CREATE TABLE items_sql (LIKE items INCLUDING ALL);
SET evstream.doorbell = off;
-- Seed first (no projection yet: the table is built by rebuild alone).
DO \$\$
DECLARE
  chunk int := 20000;
BEGIN
  FOR start IN 0..${EVENTS} - 1 BY chunk LOOP
    PERFORM evstream.post_event('project:bench', 'item', 'item_' || (i % ${AGGREGATES}),
              CASE WHEN i < ${AGGREGATES} THEN 'item.created' ELSE 'item.updated' END,
              jsonb_build_object('title', 'title ' || i, 'size', i % 1000, 'price', (i % 500) / 4.0,
                                 'ignored', repeat('x', 40)))
      FROM generate_series(start, least(start + chunk, ${EVENTS}) - 1) i;
    COMMIT;
  END LOOP;
END
\$\$;
SELECT evstream.project_into('item', 'items');
SELECT evstream.allow_transition('item', NULL, 'item.created', 'active');
SELECT evstream.allow_transition('item', 'active', 'item.updated', 'active');
VACUUM ANALYZE;
CREATE FUNCTION timed_rebuild() RETURNS TABLE (n bigint, secs float8) LANGUAGE plpgsql AS \$\$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
  n := evstream.rebuild('item');
  secs := extract(epoch FROM clock_timestamp() - t0);
  RETURN NEXT;
END
\$\$;
CREATE FUNCTION timed_sql() RETURNS TABLE (n bigint, secs float8) LANGUAGE plpgsql AS \$\$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
  TRUNCATE items_sql;
  INSERT INTO items_sql
  SELECT r.* FROM (
    SELECT e.aggregate_id, max(e.version) AS version, max(e.created_at) AS at,
           jsonb_object_agg(kv.key, kv.value ORDER BY e.version) AS merged
      FROM evstream.events e, jsonb_each(e.data) kv
     WHERE e.aggregate_type = 'item' GROUP BY e.aggregate_id) s,
    LATERAL jsonb_populate_record(NULL::items_sql,
      s.merged || jsonb_build_object('id', s.aggregate_id, 'version', s.version, 'updated_at', s.at)) r;
  n := (SELECT count(*) FROM evstream.events WHERE aggregate_type = 'item');
  secs := extract(epoch FROM clock_timestamp() - t0);
  RETURN NEXT;
END
\$\$;
SQL

best_c=0; best_s=0
for round in $(seq 1 "$ROUNDS"); do
  read -r n secs < <(psql -X -qAt -F ' ' -c "SELECT * FROM timed_rebuild()")
  rate=$(awk -v n="$n" -v s="$secs" 'BEGIN {printf "%.0f", n / s}')
  read -r n2 secs2 < <(psql -X -qAt -F ' ' -c "SELECT * FROM timed_sql()")
  rate2=$(awk -v n="$n2" -v s="$secs2" 'BEGIN {printf "%.0f", n / s}')
  printf '  round %s  evstream.rebuild: %s events in %.3f s = %s events/s   SQL rebuild: %.3f s = %s events/s\n' \
    "$round" "$n" "$secs" "$rate" "$secs2" "$rate2"
  [ "$rate" -gt "$best_c" ] && best_c=$rate
  [ "$rate2" -gt "$best_s" ] && best_s=$rate2
done
same=$(psql -X -qAt -c "SELECT count(*) FROM (SELECT id, title, size, price, version, updated_at FROM items
                         EXCEPT SELECT id, title, size, price, version, updated_at FROM items_sql) d")
echo "rows differing between the two rebuilt tables: $same"
awk -v c="$best_c" -v s="$best_s" -v e="$EVENTS" -v a="$AGGREGATES" 'BEGIN {
  printf "rebuild of %d events over %d aggregates (best of rounds):\n", e, a
  printf "  evstream.rebuild   %9d events/s  (goal >= 100000: %s)\n", c, (c >= 100000 ? "met" : "NOT met")
  printf "  hand-written SQL   %9d events/s\n", s
  printf "  ratio evstream / SQL = %.2f\n", c / s }'
