#!/usr/bin/env bash
# Stats benchmark (issue 11 item 5): the cost of one stats call at a small and a large log, for
# the summary (evstream.stats(), evstream.channel_stats() — what GET /api/stats runs) and, beside
# it in the same run, the GROUP BY over the log that both used before (the baseline).
# Each log has the same 10 (channel, event type) groups, so only the number of events differs.
# Prints milliseconds per call (median of CALLS, or of BASE_CALLS for the baseline) and ratios.
# The "after APPENDS appends" row runs last: its log grows by CALLS x APPENDS events meanwhile.
# Settings: SIZES (default "10 1000000"), CALLS (200), BASE_CALLS (5), APPENDS (100: events
# appended before each call of the "with appends" row, which the call then folds).
set -euo pipefail
cd "$(dirname "$0")/../.."
SIZES="${SIZES:-10 1000000}"
CALLS="${CALLS:-200}"
BASE_CALLS="${BASE_CALLS:-5}"
APPENDS="${APPENDS:-100}"
scripts/pg start >/dev/null
eval "$(scripts/pg env)"
export PGDATABASE=evstream_statsbench
mkdir -p bench/results
stamp=$(date -u +%Y-%m-%dT%H:%M:%SZ); commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
results=$(mktemp)

for n in $SIZES; do
  psql -X -q -d postgres -c "SET client_min_messages = warning" \
    -c "DROP DATABASE IF EXISTS evstream_statsbench WITH (FORCE)" -c "CREATE DATABASE evstream_statsbench"
  psql -X -q -c "CREATE EXTENSION evstream"
  # Load through post_events, 1000 per call, 10 channels, one event type, 100 000 aggregates.
  load_start=$(date +%s.%N)
  psql -X -q -v events="$n" <<'SQL' >/dev/null
SELECT count(*) FROM generate_series(0, (:events - 1) / 1000) AS b,
  LATERAL evstream.post_events((
    SELECT jsonb_agg(jsonb_build_object('channel', 'project:p' || (i % 10), 'aggregate_type', 'doc',
           'aggregate_id', 'd' || (i % 100000), 'event_type', 'doc.touched', 'data', jsonb_build_object('i', i)))
      FROM generate_series(b * 1000, least(b * 1000 + 999, :events - 1)) AS i));
VACUUM ANALYZE evstream.events;
SQL
  load_end=$(date +%s.%N)
  echo "log of $n events loaded in $(echo "$load_end - $load_start" | bc) s" >&2
  PGOPTIONS="-c bench.calls=$CALLS -c bench.base_calls=$BASE_CALLS -c bench.appends=$APPENDS -c bench.n=$n" \
    psql -X -q -At -F '|' >>"$results" <<'SQL'
CREATE TEMP TABLE t (what text, ms float8);
-- Each call in its own transaction (COMMIT), like an HTTP request's statement.
CREATE PROCEDURE pg_temp.bench() LANGUAGE plpgsql AS $$
DECLARE
  t0 timestamptz;
  calls int := current_setting('bench.calls')::int;
  base_calls int := current_setting('bench.base_calls')::int;
  appends int := current_setting('bench.appends')::int;
  k int := 0;
BEGIN
  -- The first call folds the whole log once (a fresh install folds as it goes; an upgrade folds
  -- at ALTER EXTENSION UPDATE).
  t0 := clock_timestamp();
  PERFORM count(*) FROM evstream.stats();
  INSERT INTO t VALUES ('first call (folds the log once)', 1000 * extract(epoch FROM clock_timestamp() - t0));
  COMMIT;
  -- The baseline on the same log (before the appends below add to it).
  FOR i IN 1..base_calls LOOP
    t0 := clock_timestamp();
    PERFORM count(*) FROM (SELECT e.event_type, count(*), min(e.created_at), max(e.created_at)
                             FROM evstream.events e GROUP BY e.event_type) x;
    INSERT INTO t VALUES ('baseline: old stats() GROUP BY', 1000 * extract(epoch FROM clock_timestamp() - t0));
    COMMIT;
    t0 := clock_timestamp();
    PERFORM count(*) FROM (SELECT e.channel, e.event_type, count(*), min(e.created_at), max(e.created_at)
                             FROM evstream.events e GROUP BY e.channel, e.event_type) x;
    INSERT INTO t VALUES ('baseline: old /api/stats GROUP BY', 1000 * extract(epoch FROM clock_timestamp() - t0));
    COMMIT;
  END LOOP;
  FOR i IN 1..calls LOOP
    t0 := clock_timestamp();
    PERFORM count(*) FROM evstream.stats();
    INSERT INTO t VALUES ('stats()', 1000 * extract(epoch FROM clock_timestamp() - t0));
    COMMIT;
    t0 := clock_timestamp();
    PERFORM count(*) FROM evstream.channel_stats(NULL);
    INSERT INTO t VALUES ('channel_stats() (GET /api/stats)', 1000 * extract(epoch FROM clock_timestamp() - t0));
    COMMIT;
  END LOOP;
  FOR i IN 1..calls LOOP
    PERFORM evstream.post_events((
      SELECT jsonb_agg(jsonb_build_object('channel', 'project:p' || (j % 10), 'aggregate_type', 'doc',
             'aggregate_id', 'x' || (k + j), 'event_type', 'doc.touched'))
        FROM generate_series(1, appends) AS j));
    k := k + appends;
    COMMIT;
    t0 := clock_timestamp();
    PERFORM count(*) FROM evstream.channel_stats(NULL);
    INSERT INTO t VALUES ('channel_stats() after ' || appends || ' appends', 1000 * extract(epoch FROM clock_timestamp() - t0));
    COMMIT;
  END LOOP;
END $$;
CALL pg_temp.bench();
SELECT current_setting('bench.n'), what, percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), count(*) FROM t GROUP BY what;
SQL
done

awk -F'|' -v s="$stamp" -v c="$commit" '
  { ms[$1 "|" $2] = $3; if (!($1 in seen)) { seen[$1] = 1; sizes[++ns] = $1 }
    if (!($2 in w)) { w[$2] = 1; whats[++nw] = $2 }
    printf "%s\t%s\tstats\t%s\t%s\t%.3f\n", s, c, $1, $2, $3 >> "bench/results/stats.tsv" }
  END {
    printf "%-40s", "ms per call (median)"; for (i = 1; i <= ns; i++) printf "%14s", sizes[i] " ev"; printf "%12s\n", "large/small"
    for (j = 1; j <= nw; j++) {
      printf "%-40s", whats[j]
      for (i = 1; i <= ns; i++) printf "%14.3f", ms[sizes[i] "|" whats[j]]
      printf "%12.2f\n", ms[sizes[ns] "|" whats[j]] / ms[sizes[1] "|" whats[j]]
    }
    for (i = 1; i <= ns; i++)
      printf "at %s events: baseline GROUP BY / channel_stats() = %.1f\n", sizes[i],
        ms[sizes[i] "|baseline: old /api/stats GROUP BY"] / ms[sizes[i] "|channel_stats() (GET /api/stats)"]
  }' "$results"
rm -f "$results"
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS evstream_statsbench WITH (FORCE)"
