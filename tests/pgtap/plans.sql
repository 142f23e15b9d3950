-- The reads evstreamd runs after every doorbell (read_after, log_tail, _held_back, _read_horizon)
-- walk events_order_idx: none scans the whole log, however large it grows. Their plans are kept
-- generic (planned once, whatever the bounds), so a query shape whose generic plan is a sequential
-- scan costs every call time in proportion to the log. A fresh session (each pgTAP file is one)
-- plans them here, after ANALYZE has seen a log of a few thousand rows.
BEGIN;
SELECT plan(6);

SELECT count(evstream.post_event('project:plans', 'doc', 'plans', 'doc.edited')) FROM generate_series(1, 3000);
ANALYZE evstream.events;

CREATE TEMP TABLE scans_before AS
  SELECT (SELECT seq_scan FROM pg_stat_xact_all_tables WHERE relid = 'evstream.events'::regclass) AS seq,
         pg_stat_get_xact_numscans('evstream.events_order_idx'::regclass) AS ordered,
         (SELECT min(position) FROM evstream.events WHERE channel = 'project:plans') AS first;

SELECT ok(evstream._held_back(), 'this transaction''s own events wait at the horizon it holds');
SELECT is((SELECT count(*)::int FROM evstream.log_tail()) <= 1, true, 'log_tail: at most one row');
SELECT is((SELECT count(*)::int FROM evstream.read_after((SELECT first FROM scans_before), 10)) <= 10, true,
          'read_after: at most max_count rows');
SELECT ok(evstream._read_horizon(0) > 0, '_read_horizon: a key');

SELECT is((SELECT seq_scan FROM pg_stat_xact_all_tables WHERE relid = 'evstream.events'::regclass)
            - (SELECT seq FROM scans_before), 0::bigint,
          'none of them scanned evstream.events sequentially');
SELECT ok(pg_stat_get_xact_numscans('evstream.events_order_idx'::regclass) - (SELECT ordered FROM scans_before) >= 3,
          'they walked events_order_idx instead');

SELECT * FROM finish();
ROLLBACK;
