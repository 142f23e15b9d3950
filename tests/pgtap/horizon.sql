-- The delivery horizon seen from one session: an appending transaction takes one order key for
-- all its events, holds the horizon at that key until it ends, and evstream.horizon() names it.
-- (Concurrent sessions, PREPARE, crashes: tests/e2e/horizon.test.mjs.)
BEGIN;
SELECT plan(11);

SELECT is((SELECT open_appenders FROM evstream.horizon()), 0, 'no appender open before this transaction appends');
SELECT ok((SELECT horizon = next_key FROM evstream.horizon()), 'with none open, the horizon is the next key');
SELECT ok((SELECT horizon > coalesce((SELECT max(order_key) FROM evstream.events), 0) FROM evstream.horizon()),
          'every committed event is below the horizon');

SELECT evstream.post_event('project:hz', 'doc', 'hz1', 'doc.created');
SELECT * FROM evstream.post_events('[{"channel":"project:hz","aggregate_type":"doc","aggregate_id":"hz2","event_type":"doc.created"},
                                     {"channel":"project:hz","aggregate_type":"doc","aggregate_id":"hz3","event_type":"doc.created"}]');
CREATE TEMP TABLE mine AS SELECT * FROM evstream.events WHERE channel = 'project:hz' AND aggregate_id LIKE 'hz_';

SELECT is((SELECT count(DISTINCT order_key)::int FROM mine), 1, 'one order key for every event of the transaction');
SELECT ok((SELECT min(order_key) FROM mine) > coalesce((SELECT max(order_key) FROM evstream.events
                                                          WHERE position NOT IN (SELECT position FROM mine)), 0),
          'the key is above every key handed out before');
SELECT is((SELECT horizon FROM evstream.horizon()), (SELECT min(order_key) FROM mine),
          'the open appender holds the horizon at its key');
SELECT is((SELECT pid FROM evstream.horizon()), pg_backend_pid(), 'evstream.horizon() names the holding backend');
SELECT is((SELECT open_appenders FROM evstream.horizon()), 1, 'one appender open');
SELECT is((SELECT database FROM evstream.horizon()), current_database(), 'and its database');
SELECT is((SELECT count(*)::int FROM evstream.read_after(0, 100000, ARRAY['project:hz'])), 0,
          'a transaction does not read its own uncommitted events');
SELECT is((SELECT evstream._read_horizon(0)), (SELECT min(order_key) FROM mine), '_read_horizon agrees');

SELECT * FROM finish();
ROLLBACK;
