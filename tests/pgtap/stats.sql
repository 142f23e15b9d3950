-- Stats from the summary (issue 11 item 5): evstream.event_stats, folded from the log below the
-- horizon. Real sessions (dblink) append and fold at once while one appending transaction holds
-- the horizon; afterwards the summary and channel_stats()/stats() equal a GROUP BY over the log,
-- before and after erasures. A call reads the log only past the watermark (table counters), and
-- each role sees and may do only what the README's table says.
-- The sessions commit: their events (aggregate type stat_doc, channels project:pgtap-stats-N) are
-- erased before and after the test, and those erasures' audit rows deleted.
DO $$
DECLARE
  a text;
BEGIN
  FOR a IN SELECT DISTINCT e.aggregate_id FROM evstream.events e WHERE e.aggregate_type = 'stat_doc' LOOP
    PERFORM evstream.erase_aggregate('stat_doc', a);
  END LOOP;
  -- The test's own erasure records too (other files read evstream.erasures whole).
  DELETE FROM evstream.erasures WHERE aggregate_type = 'stat_doc';
END
$$;

BEGIN;
SELECT plan(24);
CREATE EXTENSION IF NOT EXISTS dblink;
CREATE TEMP TABLE conn AS
  SELECT format('dbname=%s port=%s host=%s user=%s', current_database(), current_setting('port'),
                split_part(current_setting('unix_socket_directories'), ',', 1), current_user) AS s;

-- The log as a GROUP BY, below a bound (NULL: all), for the test's channels.
CREATE FUNCTION pg_temp.grouped(below bigint)
  RETURNS TABLE (channel text, event_type text, events bigint, first_at timestamptz, last_at timestamptz)
  LANGUAGE sql AS $$
    SELECT e.channel, e.event_type, count(*), min(e.created_at), max(e.created_at)
      FROM evstream.events e
     WHERE e.channel LIKE 'project:pgtap-stats-%' AND (below IS NULL OR e.order_key < below)
     GROUP BY 1, 2 ORDER BY 1, 2 $$;
-- What channel_stats() answers in a committed session of its own.
CREATE FUNCTION pg_temp.remote_stats()
  RETURNS TABLE (channel text, event_type text, events bigint, first_at timestamptz, last_at timestamptz)
  LANGUAGE sql AS $$
    SELECT * FROM dblink((SELECT s FROM conn),
      $q$SELECT * FROM evstream.channel_stats() WHERE channel LIKE 'project:pgtap-stats-%' ORDER BY 1, 2$q$)
      AS x(channel text, event_type text, events bigint, first_at timestamptz, last_at timestamptz) $$;
CREATE FUNCTION pg_temp.summary()
  RETURNS TABLE (channel text, event_type text, events bigint, first_at timestamptz, last_at timestamptz)
  LANGUAGE sql AS $$
    SELECT s.* FROM evstream.event_stats s WHERE s.channel LIKE 'project:pgtap-stats-%' ORDER BY 1, 2 $$;

-- 1. One session appends and stays open: it holds the horizon.
SELECT dblink_connect('holder', (SELECT s FROM conn));
SELECT dblink_exec('holder', 'BEGIN');
SELECT * FROM dblink('holder', $q$SELECT position FROM evstream.post_event('project:pgtap-stats-0', 'stat_doc', 'held', 'stat.held')$q$)
  AS x(position bigint);
CREATE TEMP TABLE held AS
  SELECT * FROM dblink('holder', $q$SELECT order_key FROM evstream.events WHERE aggregate_id = 'held' AND aggregate_type = 'stat_doc'$q$)
    AS x(order_key bigint);

-- 2. Four writers append 60 transactions each (every fifth with two events), calling stats()
-- every tenth; a fifth session folds in a loop. All at once.
SELECT dblink_connect('w' || i, (SELECT s FROM conn)) FROM generate_series(1, 4) i;
SELECT dblink_connect('folder', (SELECT s FROM conn));
SELECT dblink_send_query('w' || i, format($q$
  DO $d$
  BEGIN
    FOR i IN 1..60 LOOP
      PERFORM evstream.post_event('project:pgtap-stats-' || (i %% 3), 'stat_doc', 'w%s-' || i,
                                  CASE WHEN i %% 2 = 0 THEN 'stat.even' ELSE 'stat.odd' END);
      IF i %% 5 = 0 THEN
        PERFORM evstream.post_event('project:pgtap-stats-' || (i %% 3), 'stat_doc', 'w%s-' || i, 'stat.more');
      END IF;
      COMMIT;
      IF i %% 10 = 0 THEN
        PERFORM count(*) FROM evstream.stats();
        COMMIT;
      END IF;
    END LOOP;
  END $d$ $q$, i, i)) FROM generate_series(1, 4) i;
SELECT dblink_send_query('folder', $q$
  DO $d$
  BEGIN
    FOR i IN 1..200 LOOP
      PERFORM evstream._stats_fold();
      COMMIT;
    END LOOP;
  END $d$ $q$);
SELECT count(*) FROM generate_series(1, 4) i, LATERAL dblink_get_result('w' || i) AS r(status text);
SELECT count(*) FROM dblink_get_result('folder') AS r(status text);

SELECT cmp_ok((SELECT folded_below FROM evstream.event_stats_state), '<=', (SELECT order_key FROM held),
              'folds stop at the open appending transaction''s order key (the horizon)');
SELECT cmp_ok((SELECT count(*) FROM evstream.events e, held WHERE e.channel LIKE 'project:pgtap-stats-%' AND e.order_key > held.order_key),
              '=', 4 * 72::bigint, 'every writer''s events are committed past the held one');
SELECT dblink_exec('holder', 'COMMIT');

SELECT results_eq('SELECT * FROM pg_temp.remote_stats()', 'SELECT * FROM pg_temp.grouped(NULL)',
  'after concurrent appends and folds, channel_stats() equals a GROUP BY over the log');
SELECT results_eq('SELECT * FROM pg_temp.summary()',
                  'SELECT * FROM pg_temp.grouped((SELECT folded_below FROM evstream.event_stats_state))',
  'the summary holds exactly the events below the watermark, each once');
SELECT cmp_ok((SELECT folded_below FROM evstream.event_stats_state), '>', (SELECT order_key FROM held),
              'once the held transaction committed, a fold passed it');
SELECT is((SELECT sum(events) FROM pg_temp.summary()), 4 * 72 + 1::numeric, 'the held event is counted once');

-- 3. Erasures: an aggregate holding its groups' first times, a two-event aggregate, the only event
-- of a group, and an event appended after the last fold (past the watermark).
CREATE TEMP TABLE first_agg AS
  SELECT e.aggregate_id FROM evstream.events e WHERE e.channel LIKE 'project:pgtap-stats-%'
     AND e.aggregate_id <> 'held'
   ORDER BY e.created_at, e.position LIMIT 1;
SELECT * FROM dblink((SELECT s FROM conn), format($q$SELECT evstream.erase_aggregate('stat_doc', %L)$q$, (SELECT aggregate_id FROM first_agg)))
  AS x(erased bigint);
SELECT * FROM dblink((SELECT s FROM conn), $q$SELECT evstream.erase_aggregate('stat_doc', 'w1-5')$q$) AS x(erased bigint);
SELECT * FROM dblink((SELECT s FROM conn), $q$SELECT evstream.erase_aggregate('stat_doc', 'held')$q$) AS x(erased bigint);
SELECT * FROM dblink((SELECT s FROM conn), $q$SELECT position FROM evstream.post_event('project:pgtap-stats-1', 'stat_doc', 'late', 'stat.late')$q$)
  AS x(position bigint);
SELECT * FROM dblink((SELECT s FROM conn), $q$SELECT evstream.erase_aggregate('stat_doc', 'late')$q$) AS x(erased bigint);
SELECT results_eq('SELECT * FROM pg_temp.summary()',
                  'SELECT * FROM pg_temp.grouped((SELECT folded_below FROM evstream.event_stats_state))',
  'after erasures the summary equals a GROUP BY below the watermark (counts, first and last times)');
SELECT is((SELECT count(*) FROM pg_temp.summary() WHERE event_type IN ('stat.held', 'stat.late')), 0::bigint,
          'a group whose events are all erased leaves the summary');
SELECT results_eq('SELECT * FROM pg_temp.remote_stats()', 'SELECT * FROM pg_temp.grouped(NULL)',
  'after erasures channel_stats() equals a GROUP BY over the log');
SELECT dblink_disconnect('holder');
SELECT dblink_disconnect('folder');
SELECT dblink_disconnect('w' || i) FROM generate_series(1, 4) i;

-- 4. A call reads the log only past the watermark: appends of this transaction (which hold the
-- horizon) make a tail of 3; the call reads the tail through events_order_idx, never the whole
-- log (no sequential scan).
ANALYZE evstream.events;
SELECT evstream.post_event('project:pgtap-stats-2', 'stat_doc', 'mine', 'stat.mine') FROM generate_series(1, 3);
CREATE TEMP TABLE before_call AS
  SELECT seq_scan, coalesce(idx_tup_fetch, 0) AS idx_tup_fetch FROM pg_stat_xact_user_tables
   WHERE relid = 'evstream.events'::regclass;
CREATE TEMP TABLE answer AS SELECT * FROM evstream.channel_stats();
CREATE TEMP TABLE after_call AS
  SELECT seq_scan, coalesce(idx_tup_fetch, 0) AS idx_tup_fetch FROM pg_stat_xact_user_tables
   WHERE relid = 'evstream.events'::regclass;
SELECT cmp_ok((SELECT count(*) FROM evstream.events), '>', 250::bigint, 'the log holds hundreds of events');
SELECT is((SELECT a.seq_scan - b.seq_scan FROM after_call a, before_call b), 0::bigint,
          'channel_stats() does not scan the log sequentially');
-- (the 3 rows, plus dead index entries of the erased event past the watermark)
SELECT cmp_ok((SELECT a.idx_tup_fetch - b.idx_tup_fetch FROM after_call a, before_call b), '<', 10::bigint,
              'channel_stats() fetches only the few rows past the watermark, not the log');
SELECT results_eq($$SELECT channel, event_type, events, first_at, last_at FROM answer
                     WHERE channel LIKE 'project:pgtap-stats-%' ORDER BY 1, 2$$,
                  'SELECT * FROM pg_temp.grouped(NULL)',
  'the answer counts this transaction''s own appends (past the watermark) too');
SELECT results_eq($$SELECT event_type, events, first_at, last_at FROM evstream.stats() WHERE event_type LIKE 'stat.%'$$,
                  $$SELECT event_type, sum(events)::bigint, min(first_at), max(last_at) FROM pg_temp.grouped(NULL)
                     GROUP BY event_type ORDER BY event_type$$,
  'stats() sums channel_stats() per event type');

-- 5. Roles.
CREATE ROLE st_login LOGIN;
CREATE ROLE st_reader NOLOGIN IN ROLE evstream_reader;
CREATE ROLE st_writer NOLOGIN IN ROLE evstream_writer;
CREATE ROLE st_bound NOLOGIN IN ROLE evstream_reader;
CREATE ROLE st_admin NOLOGIN IN ROLE evstream_admin;
SELECT evstream.grant_channels('st_bound', '{project:pgtap-stats-1}');
CREATE TEMP TABLE outcome (who text, result text);
CREATE TEMP TABLE seen (who text, channel text, event_type text, events bigint);
GRANT INSERT ON outcome, seen TO PUBLIC;
GRANT SELECT ON answer TO PUBLIC;
CREATE FUNCTION pg_temp.try(who text, stmt text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE stmt;
  INSERT INTO outcome VALUES (who, 'ok');
EXCEPTION WHEN OTHERS THEN
  INSERT INTO outcome VALUES (who, SQLSTATE);
END
$$;
GRANT EXECUTE ON FUNCTION pg_temp.try(text, text) TO PUBLIC;

SET LOCAL ROLE st_login;
SELECT pg_temp.try('login-stats', 'SELECT * FROM evstream.stats()');
SELECT pg_temp.try('login-summary', 'SELECT * FROM evstream.event_stats');
RESET ROLE;

SET LOCAL ROLE st_reader;
SET LOCAL request.jwt.claims = '{"projects": ["pgtap-stats-0"]}';
INSERT INTO seen SELECT 'reader-channel-stats', channel, event_type, events FROM evstream.channel_stats();
INSERT INTO seen SELECT 'reader-summary', channel, event_type, events FROM evstream.event_stats;
INSERT INTO seen SELECT 'reader-stats', NULL, event_type, events FROM evstream.stats();
SELECT pg_temp.try('reader-insert', $$INSERT INTO evstream.event_stats VALUES ('project:pgtap-stats-0', 'x', 1, now(), now())$$);
SELECT pg_temp.try('reader-update', 'UPDATE evstream.event_stats SET events = 0');
SELECT pg_temp.try('reader-delete', 'DELETE FROM evstream.event_stats');
SELECT pg_temp.try('reader-watermark', 'UPDATE evstream.event_stats_state SET folded_below = 0');
SELECT pg_temp.try('reader-rebuild', 'SELECT evstream.rebuild_stats()');
RESET ROLE;

SET LOCAL ROLE st_writer;
SET LOCAL request.jwt.claims = '{"sub": "w", "projects": ["pgtap-stats-0"]}';
SELECT pg_temp.try('writer-update', 'UPDATE evstream.event_stats SET events = 0');
SELECT pg_temp.try('writer-rebuild', 'SELECT evstream.rebuild_stats()');
RESET ROLE;

SET LOCAL ROLE st_bound;
SET LOCAL request.jwt.claims = '{"projects": ["pgtap-stats-0", "pgtap-stats-2"]}';
INSERT INTO seen SELECT 'bound', channel, event_type, events FROM evstream.channel_stats();
RESET ROLE;

SET LOCAL ROLE st_admin;
INSERT INTO seen SELECT 'admin', channel, event_type, events FROM evstream.channel_stats()
 WHERE channel LIKE 'project:pgtap-stats-%';
SELECT pg_temp.try('admin-rebuild', 'SELECT evstream.rebuild_stats()');
RESET ROLE;

SELECT is((SELECT result FROM outcome WHERE who = 'login-stats'), '42501', 'a role with only LOGIN cannot call stats()');
SELECT is((SELECT result FROM outcome WHERE who = 'login-summary'), '42501', 'a role with only LOGIN cannot read the summary');
SELECT results_eq($$SELECT channel, event_type, events FROM seen WHERE who = 'reader-channel-stats' ORDER BY 2$$,
                  $$SELECT channel, event_type, events FROM pg_temp.grouped(NULL) WHERE channel = 'project:pgtap-stats-0' ORDER BY 2$$,
  'reader: channel_stats() shows only the channels its claims allow, with their full counts');
SELECT set_eq($$SELECT DISTINCT channel FROM seen WHERE who = 'reader-summary'$$, ARRAY['project:pgtap-stats-0'],
  'reader: the summary table shows only its channels (row-level security)');
SELECT results_eq($$SELECT event_type, events FROM seen WHERE who = 'reader-stats' ORDER BY 1$$,
                  $$SELECT event_type, events FROM pg_temp.grouped(NULL) WHERE channel = 'project:pgtap-stats-0' ORDER BY 1$$,
  'reader: stats() counts only its channels');
SELECT set_eq($$SELECT who || ' ' || result FROM outcome WHERE who LIKE 'reader-%' OR who LIKE 'writer-%'$$,
              ARRAY['reader-insert 42501', 'reader-update 42501', 'reader-delete 42501', 'reader-watermark 42501',
                    'reader-rebuild 42501', 'writer-update 42501', 'writer-rebuild 42501'],
  'readers and writers cannot write the summary, move the watermark or rebuild');
SELECT set_eq($$SELECT DISTINCT channel FROM seen WHERE who = 'bound'$$, ARRAY['project:pgtap-stats-1'],
  'a role with channel grants sees its grants, whatever its claims say');
SELECT results_eq($$SELECT channel, event_type, events FROM seen WHERE who = 'admin' ORDER BY 1, 2$$,
                  $$SELECT channel, event_type, events FROM pg_temp.grouped(NULL)$$,
  'an admin sees every channel');
SELECT is((SELECT result FROM outcome WHERE who = 'admin-rebuild'), 'ok', 'an admin may rebuild the stats');
SELECT results_eq('SELECT * FROM pg_temp.summary()',
                  'SELECT * FROM pg_temp.grouped((SELECT folded_below FROM evstream.event_stats_state))',
  'after rebuild_stats() the summary equals a GROUP BY below the watermark');

SELECT * FROM finish();
ROLLBACK;

DO $$
DECLARE
  a text;
BEGIN
  FOR a IN SELECT DISTINCT e.aggregate_id FROM evstream.events e WHERE e.aggregate_type = 'stat_doc' LOOP
    PERFORM evstream.erase_aggregate('stat_doc', a);
  END LOOP;
  -- The test's own erasure records too (other files read evstream.erasures whole).
  DELETE FROM evstream.erasures WHERE aggregate_type = 'stat_doc';
END
$$;
