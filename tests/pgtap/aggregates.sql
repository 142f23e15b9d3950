-- evstream.aggregates (a view over the log since 0.3.0) and the per-aggregate append lock.
BEGIN;
SELECT plan(11);

SELECT evstream.allow_transition('ag_ticket', NULL, 'ag_ticket.opened', 'open');
SELECT evstream.allow_transition('ag_ticket', 'open', 'ag_ticket.closed', 'closed');
SELECT evstream.post_event('project:ag1', 'ag_ticket', 't1', 'ag_ticket.opened');
SELECT evstream.post_event('project:ag2', 'ag_ticket', 't1', 'ag_ticket.closed');  -- another channel
SELECT evstream.post_event('project:ag1', 'ag_note', 'n1', 'ag_note.written');
SELECT evstream.post_event('project:ag2', 'ag_note', 'n2', 'ag_note.written');

SELECT results_eq(
  $$SELECT aggregate_type, aggregate_id, version, state, channel FROM evstream.aggregates
     WHERE aggregate_type LIKE 'ag\_%' ORDER BY 1, 2$$,
  $$VALUES ('ag_note'::text, 'n1'::text, 1, NULL::text, 'project:ag1'::text),
           ('ag_note', 'n2', 1, NULL, 'project:ag2'),
           ('ag_ticket', 't1', 2, 'closed', 'project:ag1')$$,
  'one row per aggregate: last version, state, the channel of its first event');
SELECT is((SELECT updated_at FROM evstream.aggregates WHERE aggregate_id = 't1'),
          (SELECT max(created_at) FROM evstream.events WHERE aggregate_id = 't1'), 'updated_at is the last event''s time');
SELECT results_eq(
  $$SELECT aggregate_id, state, channel FROM evstream.aggregate_states WHERE aggregate_type = 'ag_ticket'$$,
  $$VALUES ('t1'::text, 'closed'::text, 'project:ag1'::text)$$,
  'states are kept for state machines only, with the first channel');

-- Readers see the aggregates whose first event's channel their claims allow.
CREATE ROLE ag_reader;
GRANT evstream_reader TO ag_reader;
CREATE TEMP TABLE ag_seen (who text, id text);
GRANT INSERT ON ag_seen TO ag_reader;
SET LOCAL ROLE ag_reader;
SET LOCAL request.jwt.claims = '{"projects": ["ag2"]}';
INSERT INTO ag_seen SELECT 'ag2', aggregate_id FROM evstream.aggregates WHERE aggregate_type LIKE 'ag\_%';
INSERT INTO ag_seen SELECT 'ag2-states', aggregate_id FROM evstream.aggregate_states WHERE aggregate_type LIKE 'ag\_%';
-- A leaky function in the caller's condition runs only on rows the caller may see.
CREATE FUNCTION pg_temp.ag_leak(text) RETURNS boolean LANGUAGE plpgsql COST 0.0001 AS
  $$BEGIN INSERT INTO ag_seen VALUES ('leak', $1); RETURN true; END$$;
INSERT INTO ag_seen SELECT 'ag2-leaky', aggregate_id FROM evstream.aggregates WHERE pg_temp.ag_leak(aggregate_id);
SET LOCAL request.jwt.claims = '{"projects": ["ag1"]}';
INSERT INTO ag_seen SELECT 'ag1', aggregate_id FROM evstream.aggregates WHERE aggregate_type LIKE 'ag\_%';
RESET ROLE;
SELECT set_eq($$SELECT id FROM ag_seen WHERE who = 'ag2'$$, ARRAY['n2'],
              'project ag2 sees n2 only (t1 started on ag1)');
SELECT is((SELECT count(*)::int FROM ag_seen WHERE who = 'ag2-states'), 0, 'and no state of t1');
SELECT set_eq($$SELECT id FROM ag_seen WHERE who = 'leak'$$, ARRAY['n2'],
              'a leaky function in the caller''s WHERE sees only allowed rows (security_barrier)');
SELECT set_eq($$SELECT id FROM ag_seen WHERE who = 'ag1'$$, ARRAY['n1', 't1'], 'project ag1 sees n1 and t1');

-- The append lock: held by an appending transaction until it ends, in evstream's key space.
SELECT is((SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 17750
             AND pid = pg_backend_pid() AND mode = 'ExclusiveLock'), 3,
          'this transaction holds the locks of the three aggregates it appended to');

-- A batch with two events of one aggregate gets consecutive versions and sees its own states.
SELECT results_eq(
  $$SELECT version FROM evstream.post_events('[
      {"channel": "project:ag1", "aggregate_type": "ag_ticket", "aggregate_id": "t2", "event_type": "ag_ticket.opened"},
      {"channel": "project:ag1", "aggregate_type": "ag_ticket", "aggregate_id": "t2", "event_type": "ag_ticket.closed"},
      {"channel": "project:ag1", "aggregate_type": "ag_note", "aggregate_id": "n1", "event_type": "ag_note.edited",
       "expected_version": 1}]')$$,
  $$VALUES (1), (2), (2)$$, 'batch versions follow the log and the batch''s own earlier events');
SELECT is((SELECT state FROM evstream.aggregates WHERE aggregate_id = 't2'), 'closed', 'the batch''s last state is stored');

-- Erasure removes the aggregate from the view and its state.
SELECT evstream.erase_aggregate('ag_ticket', 't1');
SELECT ok(NOT EXISTS (SELECT 1 FROM evstream.aggregates WHERE aggregate_id = 't1')
          AND NOT EXISTS (SELECT 1 FROM evstream.aggregate_states WHERE aggregate_id = 't1'),
          'an erased aggregate leaves no row and no state');

SELECT * FROM finish();
ROLLBACK;
