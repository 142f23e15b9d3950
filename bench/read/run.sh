#!/usr/bin/env bash
# Read benchmark: walk the whole log in batches with evstream.read_after (gap-free order), and
# beside it the naive reader a team would write (position > cursor ORDER BY position LIMIT n, as a
# set-returning SQL function; it can skip late commits, read_after cannot). Prints batches/s, events/s and the ratio.
# Settings: EVENTS (default 200000), BATCH (default 1000).
set -euo pipefail
cd "$(dirname "$0")/../.."
EVENTS="${EVENTS:-200000}"
BATCH="${BATCH:-1000}"
scripts/pg start >/dev/null
eval "$(scripts/pg env)"
export PGDATABASE=evstream_readbench
psql -X -q -d postgres -c "SET client_min_messages = warning" \
  -c "DROP DATABASE IF EXISTS evstream_readbench WITH (FORCE)" -c "CREATE DATABASE evstream_readbench"
psql -X -q -c "CREATE EXTENSION evstream"
# Load through post_events, 1000 per call, 100 000 aggregates (one statement: an aggregate
# row updated thousands of times in one transaction would make every update walk its chain).
psql -X -q -v events="$EVENTS" <<'SQL' >/dev/null
SELECT count(*) FROM generate_series(0, (:events - 1) / 1000) AS b,
  LATERAL evstream.post_events((
    SELECT jsonb_agg(jsonb_build_object('channel', 'project:p' || (i % 10), 'aggregate_type', 'doc',
           'aggregate_id', 'd' || (i % 100000), 'event_type', 'doc.touched', 'data', jsonb_build_object('i', i)))
      FROM generate_series(b * 1000, least(b * 1000 + 999, :events - 1)) AS i));
VACUUM ANALYZE evstream.events;
-- The naive reader, as a set-returning function like read_after (materialised like it; an SQL
-- function would be inlined and its unused columns never read).
CREATE FUNCTION naive_read(after_position bigint, max_count int) RETURNS SETOF evstream.events
  LANGUAGE plpgsql STABLE AS $$ BEGIN
  RETURN QUERY SELECT * FROM evstream.events WHERE position > after_position ORDER BY position LIMIT max_count;
END $$;
SQL
out=$(PGOPTIONS="-c bench.batch=$BATCH" psql -X -q -At <<'SQL'
CREATE TEMP TABLE r (reader text, batches int, events bigint, seconds float8);
DO $$
DECLARE
  cursor_pos bigint; n int; total bigint; batches int; t0 timestamptz; last bigint;
  batch int := current_setting('bench.batch')::int;
BEGIN
  FOR round IN 1..2 LOOP
    cursor_pos := 0; total := 0; batches := 0; t0 := clock_timestamp();
    LOOP
      SELECT count(*), (array_agg(position))[count(*)]  -- function output order
        INTO n, last FROM evstream.read_after(cursor_pos, batch);
      EXIT WHEN n = 0;
      total := total + n; batches := batches + 1; cursor_pos := last;
    END LOOP;
    INSERT INTO r VALUES ('read_after', batches, total, extract(epoch FROM clock_timestamp() - t0));
    cursor_pos := 0; total := 0; batches := 0; t0 := clock_timestamp();
    LOOP
      SELECT count(*), (array_agg(position))[count(*)]
        INTO n, last FROM naive_read(cursor_pos, batch);
      EXIT WHEN n = 0;
      total := total + n; batches := batches + 1; cursor_pos := last;
    END LOOP;
    INSERT INTO r VALUES ('naive', batches, total, extract(epoch FROM clock_timestamp() - t0));
  END LOOP;
END $$;
SELECT reader, min(seconds), max(events), max(batches) FROM r GROUP BY reader ORDER BY reader DESC;
SQL
)
mkdir -p bench/results
stamp=$(date -u +%Y-%m-%dT%H:%M:%SZ); commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
echo "$out" | awk -F'|' -v s="$stamp" -v c="$commit" -v b="$BATCH" '
  { secs[$1] = $2; ev[$1] = $3; nb[$1] = $4;
    printf "%-11s %8d events in %5d batches of %d: %7.3f s  %8.0f batches/s  %9.0f events/s\n", $1, $3, $4, b, $2, $4 / $2, $3 / $2
    printf "%s\t%s\tread\t%s\t%d\t%d\t%.0f\t%.0f\n", s, c, $1, $3, b, $4 / $2, $3 / $2 >> "bench/results/read.tsv" }
  END { printf "ratio read_after / naive reader (events/s): %.2f\n", (ev["read_after"] / secs["read_after"]) / (ev["naive"] / secs["naive"]) }'
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS evstream_readbench WITH (FORCE)"
