-- How post_event writes the log row: directly through the table and its indexes (no executor)
-- while evstream.events has only its own constraints and no INSERT trigger; through an SQL
-- INSERT when an administrator has added either, so what they added still runs.
BEGIN;
SELECT plan(20);

CREATE TEMP TABLE got AS
  SELECT e, pg_current_xact_id() AS xact, now() AS at
    FROM evstream.post_event('project:lw', 'doc', 'lw1', 'doc.created', '{"n": 1}',
                             idempotency_key => 'lw-k1', display => '{"role": "user"}') e;

SELECT is((SELECT direct::int || '/' || through_sql FROM evstream._append_paths()), '1/0',
          'the log as evstream made it: the row was written directly');
SELECT is((SELECT (e).tx FROM got), (SELECT xact FROM got), 'tx is the writing transaction');
SELECT is((SELECT (e).created_at FROM got), (SELECT at FROM got), 'created_at is the transaction start');
SELECT ok((SELECT (e).id IS NOT NULL AND (e).order_key > 0 AND (e).position > 0 FROM got),
          'id, order_key and position are set');
SELECT is((SELECT e FROM evstream.events e WHERE e.aggregate_id = 'lw1'), (SELECT e FROM got),
          'the returned row is the stored row, column for column');
SELECT is((SELECT count(*)::int FROM evstream.events WHERE channel = 'project:lw' AND idempotency_key = 'lw-k1'),
          1, 'the partial idempotency index finds the row');
SELECT is((SELECT ctid FROM evstream.events WHERE aggregate_type = 'doc' AND aggregate_id = 'lw1' AND version = 1),
          (SELECT ctid FROM evstream.events WHERE position = (SELECT (e).position FROM got)),
          'the (aggregate, version) index points at the row');
SELECT throws_ok(
  $$SELECT evstream.post_event('project:lw', 'doc', 'lw1', 'doc.created', '{"n": 2}', idempotency_key => 'lw-k1')$$,
  'EV002', NULL, 'the same key for a different event is still refused');

-- An INSERT trigger added by an administrator runs for every append.
CREATE TABLE lw_seen (position bigint);
CREATE FUNCTION lw_note() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN INSERT INTO public.lw_seen VALUES (NEW.position); RETURN NEW; END$$;
CREATE TRIGGER lw_after AFTER INSERT ON evstream.events FOR EACH ROW EXECUTE FUNCTION lw_note();
CREATE TEMP TABLE lw_posted AS SELECT (evstream.post_event('project:lw', 'doc', 'lw2', 'doc.created')).position;
SELECT is((SELECT array_agg(position) FROM lw_seen), (SELECT array_agg(position) FROM lw_posted),
          'an added AFTER INSERT trigger sees the append');
SELECT is((SELECT through_sql::int FROM evstream._append_paths()), 1, 'with the trigger, through SQL');
DROP TRIGGER lw_after ON evstream.events;
SELECT is((evstream.post_event('project:lw', 'doc', 'lw2', 'doc.renamed')).version, 2,
          'without the trigger appends go on (directly) with the next version');
SELECT is((SELECT count(*)::int FROM lw_seen), 1, 'the dropped trigger no longer runs');
SELECT is((SELECT direct::int || '/' || through_sql FROM evstream._append_paths()), '2/1',
          'and the row after it was written directly again');

-- A CHECK constraint added by an administrator is enforced.
ALTER TABLE evstream.events ADD CONSTRAINT lw_no_forbidden CHECK (event_type <> 'doc.forbidden');
SELECT throws_ok(
  $$SELECT evstream.post_event('project:lw', 'doc', 'lw3', 'doc.forbidden')$$,
  '23514', NULL, 'an added CHECK constraint refuses the row');
-- Through SQL, one call's row is visible to the next call of the same statement.
SELECT results_eq(
  $$SELECT (evstream.post_event('project:lw', 'doc', 'lw5', 'doc.n')).version FROM generate_series(1, 3)$$,
  $$VALUES (1), (2), (3)$$, 'with an added constraint, calls in one statement get versions 1, 2, 3');
ALTER TABLE evstream.events DROP CONSTRAINT lw_no_forbidden;
-- One of evstream's own constraints replaced by another: the same number, another rule.
ALTER TABLE evstream.events DROP CONSTRAINT events_version_check;
ALTER TABLE evstream.events ADD CONSTRAINT lw_small_versions CHECK (version < 3) NOT VALID;
SELECT throws_ok(
  $$SELECT evstream.post_event('project:lw', 'doc', 'lw5', 'doc.n')$$,
  '23514', NULL, 'a replaced CHECK constraint is enforced');
ALTER TABLE evstream.events DROP CONSTRAINT lw_small_versions;
ALTER TABLE evstream.events ADD CONSTRAINT events_version_check CHECK (version > 0);

SELECT is((evstream.post_event('project:lw', 'doc', 'lw3', 'doc.forbidden')).version, 1,
          'once dropped, the row is accepted');

-- FORCE ROW LEVEL SECURITY subjects an owner that is not a superuser to policies: appends go
-- through SQL, which applies them (here the owner is a superuser, so they pass).
CREATE TEMP TABLE lw_before AS SELECT through_sql FROM evstream._append_paths();
ALTER TABLE evstream.events FORCE ROW LEVEL SECURITY;
SELECT evstream.post_event('project:lw', 'doc', 'lw7', 'doc.created');
ALTER TABLE evstream.events NO FORCE ROW LEVEL SECURITY;
SELECT is((SELECT through_sql FROM evstream._append_paths()) - (SELECT through_sql FROM lw_before), 1::bigint,
          'under FORCE ROW LEVEL SECURITY the row went through SQL');

-- The log's relations are looked up once per session: recreated, the new ones are used.
SET client_min_messages = warning;
DROP EXTENSION evstream CASCADE;
CREATE EXTENSION evstream;
RESET client_min_messages;
-- NOT NULL added on a column post_event may leave null (on the new, empty log).
ALTER TABLE evstream.events ALTER COLUMN display SET NOT NULL;
SELECT throws_ok(
  $$SELECT evstream.post_event('project:lw', 'doc', 'lw6', 'doc.created')$$,
  '23502', NULL, 'an added NOT NULL constraint is enforced');
ALTER TABLE evstream.events ALTER COLUMN display DROP NOT NULL;
SELECT is((evstream.post_event('project:lw', 'doc', 'lw9', 'doc.created')).version, 1,
          'after DROP / CREATE EXTENSION in the same session, appends go to the new log');

SELECT * FROM finish();
ROLLBACK;
