-- Security: row-level security from JWT claims, least-privilege roles, erase_aggregate.
-- Checks run as non-superuser roles; their results are collected into temp tables and asserted
-- after RESET ROLE (pgTAP's own bookkeeping belongs to the superuser).
BEGIN;
SELECT plan(21);

CREATE ROLE st_reader NOLOGIN IN ROLE evstream_reader;
CREATE ROLE st_writer NOLOGIN IN ROLE evstream_writer;
CREATE ROLE st_admin NOLOGIN IN ROLE evstream_admin;

SELECT evstream.post_event('project:a', 'doc', 'a1', 'doc.created');
SELECT evstream.post_event('project:a', 'doc', 'a2', 'doc.created');
SELECT evstream.post_event('project:b', 'doc', 'b1', 'doc.created');
SELECT evstream.post_event('user:ann', 'note', 'n1', 'note.created');
SELECT evstream.post_event('project:team-x', 'doc', 'tx1', 'doc.created');
SELECT evstream.post_event('channel:lobby', 'msg', 'm1', 'msg.posted');

CREATE TEMP TABLE seen (who text, channel text);
CREATE TEMP TABLE outcome (who text, result text);
GRANT INSERT ON seen, outcome TO PUBLIC;

CREATE FUNCTION pg_temp.try(who text, stmt text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE stmt;
  INSERT INTO outcome VALUES (who, 'ok');
EXCEPTION WHEN OTHERS THEN
  INSERT INTO outcome VALUES (who, SQLSTATE || ': ' || SQLERRM);
END
$$;
GRANT EXECUTE ON FUNCTION pg_temp.try(text, text) TO PUBLIC;

-- Readers with different claims.
SET LOCAL ROLE st_reader;
SET LOCAL request.jwt.claims = '{"sub": "ann", "projects": ["a"]}';
INSERT INTO seen SELECT 'ann', channel FROM evstream.events WHERE aggregate_type IN ('doc', 'note', 'msg');
INSERT INTO seen SELECT 'ann-stream-b', channel FROM evstream.stream('doc', 'b1');
SET LOCAL request.jwt.claims = '{"projects": ["b"]}';
INSERT INTO seen SELECT 'bea', channel FROM evstream.events WHERE aggregate_type IN ('doc', 'note', 'msg');
SET LOCAL request.jwt.claims = '{"channels": ["project:team-*", "channel:lobby"]}';
INSERT INTO seen SELECT 'wild', channel FROM evstream.events WHERE aggregate_type IN ('doc', 'note', 'msg');
SET LOCAL request.jwt.claims = '';
INSERT INTO seen SELECT 'anon', channel FROM evstream.events WHERE aggregate_type IN ('doc', 'note', 'msg');
SELECT pg_temp.try('reader-post', $$SELECT evstream.post_event('project:a', 'doc', 'a9', 'doc.created')$$);
SELECT pg_temp.try('reader-erase', $$SELECT evstream.erase_aggregate('doc', 'a1')$$);
SELECT pg_temp.try('reader-register', $$SELECT evstream.register_event_type('doc.x')$$);
RESET ROLE;

SELECT set_eq($$SELECT channel FROM seen WHERE who = 'ann'$$, ARRAY['project:a', 'project:a', 'user:ann'],
              'a user of project A sees project A and their own user channel');
SELECT is((SELECT count(*)::int FROM seen WHERE who = 'ann' AND channel = 'project:b'), 0,
          'a user of project A sees none of project B''s events');
SELECT is((SELECT count(*)::int FROM seen WHERE who = 'ann-stream-b'), 0, 'not through stream() either');
SELECT set_eq($$SELECT channel FROM seen WHERE who = 'bea'$$, ARRAY['project:b'],
              'a user of project B sees only project B');
SELECT set_eq($$SELECT channel FROM seen WHERE who = 'wild'$$, ARRAY['project:team-x', 'channel:lobby'],
              'channels claims match exactly or by a trailing * prefix');
SELECT is((SELECT count(*)::int FROM seen WHERE who = 'anon'), 0, 'without claims nothing is visible');
SELECT matches((SELECT result FROM outcome WHERE who = 'reader-post'), '^42501: permission denied',
               'readers cannot post');
SELECT matches((SELECT result FROM outcome WHERE who = 'reader-erase'), '^42501: permission denied',
               'readers cannot erase');
SELECT matches((SELECT result FROM outcome WHERE who = 'reader-register'), '^42501: permission denied',
               'readers cannot change the catalog');

-- Writers post only to channels their claims allow.
SET LOCAL ROLE st_writer;
SET LOCAL request.jwt.claims = '{"sub": "wes", "projects": ["a"]}';
SELECT pg_temp.try('writer-a', $$SELECT evstream.post_event('project:a', 'doc', 'a3', 'doc.created')$$);
SELECT pg_temp.try('writer-b', $$SELECT evstream.post_event('project:b', 'doc', 'b2', 'doc.created')$$);
SELECT pg_temp.try('writer-batch', $$SELECT evstream.post_events('[
  {"channel": "project:a", "aggregate_type": "doc", "aggregate_id": "a4", "event_type": "doc.created"},
  {"channel": "user:bob", "aggregate_type": "doc", "aggregate_id": "a5", "event_type": "doc.created"}]')$$);
SELECT pg_temp.try('writer-delete', $$DELETE FROM evstream.events WHERE aggregate_id = 'a1'$$);
RESET ROLE;

SELECT is((SELECT result FROM outcome WHERE who = 'writer-a'), 'ok', 'a writer posts to a channel its claims allow');
SELECT is((SELECT result FROM outcome WHERE who = 'writer-b'),
          'EV005: channel project:b is not allowed by the caller''s claims', 'and not to another project');
SELECT is((SELECT result FROM outcome WHERE who = 'writer-batch'),
          'EV005: events[1].channel user:bob is not allowed by the caller''s claims', 'nor inside a batch');
SELECT is((SELECT created_by FROM evstream.events WHERE aggregate_id = 'a3'), 'user:wes', 'created_by comes from the claims');
SELECT is((SELECT count(*)::int FROM evstream.events WHERE aggregate_id IN ('b2', 'a4', 'a5')), 0, 'refused posts appended nothing');
SELECT matches((SELECT result FROM outcome WHERE who = 'writer-delete'), '^42501: permission denied',
               'writers cannot delete from the log');

-- Admins see every channel and erase.
CREATE TABLE public.docs (id text PRIMARY KEY, title text);
-- erase_aggregate deletes the projected row with the caller's rights.
GRANT SELECT, DELETE ON public.docs TO st_admin;
SELECT evstream.project_into('doc', 'public.docs');
SELECT evstream.rebuild('doc');
SELECT evstream.post_event('project:a', 'doc', 'a1', 'doc.renamed', '{"title": "secret"}');
SET LOCAL ROLE st_admin;
SET LOCAL request.jwt.claims = '{"sub": "root"}';
INSERT INTO seen SELECT 'admin', channel FROM evstream.events WHERE aggregate_type IN ('doc', 'note', 'msg');
SELECT pg_temp.try('admin-erase', $$SELECT evstream.erase_aggregate('doc', 'a1')$$);
RESET ROLE;

SELECT is((SELECT count(*)::int FROM seen WHERE who = 'admin'),
          (SELECT count(*)::int FROM evstream.events WHERE aggregate_type IN ('doc', 'note', 'msg')) + 2,
          'evstream_admin members see every channel');
SELECT is((SELECT result FROM outcome WHERE who = 'admin-erase'), 'ok', 'an admin erases an aggregate');
SELECT is((SELECT count(*)::int FROM evstream.events WHERE aggregate_type = 'doc' AND aggregate_id = 'a1'), 0,
          'its events are gone');
SELECT results_eq(
  $$SELECT aggregate_type, aggregate_id, event_count, cardinality(event_ids), channels, erased_by, claims->>'sub'
      FROM evstream.erasures$$,
  $$VALUES ('doc'::text, 'a1'::text, 2, 2, ARRAY['project:a'], 'st_admin'::text, 'root'::text)$$,
  'the erasure is recorded: what, how many, which events, by whom');
SELECT ok(NOT EXISTS (SELECT 1 FROM evstream.aggregates WHERE aggregate_type = 'doc' AND aggregate_id = 'a1')
          AND NOT EXISTS (SELECT 1 FROM public.docs WHERE id = 'a1')
          AND EXISTS (SELECT 1 FROM public.docs WHERE id = 'a2'),
          'the aggregate row and its projected row go too, other aggregates stay');
SELECT throws_ok($$DELETE FROM evstream.events WHERE aggregate_id = 'a2'$$, 'EV010', NULL,
                 'after an erasure the log is immutable again, even for the owner');

SELECT * FROM finish();
ROLLBACK;
