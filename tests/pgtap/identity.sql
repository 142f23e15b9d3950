-- Identity (issue 10 item 2): evstream._creator is the one rule for created_by. With claims a
-- caller writes as user:<sub>; only members of evstream_service choose another created_by; an
-- idempotent replay returns the original only to the same creator.
BEGIN;
SELECT plan(18);

CREATE ROLE idt_writer NOLOGIN IN ROLE evstream_writer;
CREATE ROLE idt_service NOLOGIN IN ROLE evstream_writer, evstream_service;

CREATE TEMP TABLE outcome (who text, result text);
GRANT INSERT ON outcome TO PUBLIC;
CREATE FUNCTION pg_temp.try(who text, stmt text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  r text;
BEGIN
  EXECUTE stmt INTO r;
  INSERT INTO outcome VALUES (who, 'ok: ' || coalesce(r, 'null'));
EXCEPTION WHEN OTHERS THEN
  INSERT INTO outcome VALUES (who, SQLSTATE || ': ' || SQLERRM);
END
$$;
GRANT EXECUTE ON FUNCTION pg_temp.try(text, text) TO PUBLIC;

-- A writer whose claims say sub u1.
SET LOCAL ROLE idt_writer;
SET LOCAL request.jwt.claims = '{"sub": "u1", "projects": ["p"]}';
SELECT pg_temp.try('w-default', $$SELECT evstream._creator(NULL)$$);
SELECT pg_temp.try('w-self', $$SELECT evstream._creator('user:u1')$$);
SELECT pg_temp.try('w-forge-user', $$SELECT evstream._creator('user:bob')$$);
SELECT pg_temp.try('w-forge-agent', $$SELECT evstream._creator('agent:bot')$$);
SELECT pg_temp.try('w-forge-system', $$SELECT evstream._creator('system')$$);
SELECT pg_temp.try('w-bad', $$SELECT evstream._creator('root')$$);
SELECT pg_temp.try('w-post-forged', $$SELECT (evstream.post_event('project:p', 'doc', 'd1', 'doc.created',
                                              created_by => 'user:bob')).created_by$$);
SELECT pg_temp.try('w-batch-forged', $$SELECT string_agg(created_by, ',') FROM evstream.post_events('[
  {"channel": "project:p", "aggregate_type": "doc", "aggregate_id": "d2", "event_type": "doc.created"},
  {"channel": "project:p", "aggregate_type": "doc", "aggregate_id": "d3", "event_type": "doc.created",
   "created_by": "system"}]')$$);
SELECT pg_temp.try('w-post', $$SELECT (evstream.post_event('project:p', 'doc', 'd4', 'doc.created', '{"t": 1}',
                                       idempotency_key => 'k1')).created_by$$);
-- Another user of the same project replays u1's key with the same content.
SET LOCAL request.jwt.claims = '{"sub": "u2", "projects": ["p"]}';
SELECT pg_temp.try('w-replay-other', $$SELECT (evstream.post_event('project:p', 'doc', 'd4', 'doc.created', '{"t": 1}',
                                               idempotency_key => 'k1')).id::text$$);
SET LOCAL request.jwt.claims = '{"sub": "u1", "projects": ["p"]}';
SELECT pg_temp.try('w-replay-same', $$SELECT (evstream.post_event('project:p', 'doc', 'd4', 'doc.created', '{"t": 1}',
                                              idempotency_key => 'k1')).created_by$$);
-- Claims without a sub: no identity to write as.
SET LOCAL request.jwt.claims = '{"projects": ["p"]}';
SELECT pg_temp.try('w-nosub', $$SELECT evstream._creator(NULL)$$);
RESET ROLE;

-- A trusted writer (evstream_service) writes as an agent or the system.
SET LOCAL ROLE idt_service;
SET LOCAL request.jwt.claims = '{"sub": "svc", "projects": ["p"]}';
SELECT pg_temp.try('s-agent', $$SELECT (evstream.post_event('project:p', 'doc', 'd5', 'doc.created',
                                        created_by => 'agent:tagger')).created_by$$);
SELECT pg_temp.try('s-default', $$SELECT evstream._creator(NULL)$$);
SET LOCAL request.jwt.claims = '';
SELECT pg_temp.try('s-system', $$SELECT evstream._creator(NULL)$$);
RESET ROLE;

SELECT is((SELECT result FROM outcome WHERE who = 'w-default'), 'ok: user:u1',
          'a writer with claims writes as user:<sub>');
SELECT is((SELECT result FROM outcome WHERE who = 'w-self'), 'ok: user:u1',
          'passing its own identity is accepted');
SELECT is((SELECT result FROM outcome WHERE who = 'w-forge-user'),
          '42501: created_by user:bob is not the caller''s identity user:u1',
          'another user''s identity is refused with 42501');
SELECT matches((SELECT result FROM outcome WHERE who = 'w-forge-agent'), '^42501: ',
               'an agent identity is refused to a plain writer');
SELECT matches((SELECT result FROM outcome WHERE who = 'w-forge-system'), '^42501: ',
               'system is refused to a plain writer');
SELECT matches((SELECT result FROM outcome WHERE who = 'w-bad'), '^22023: created_by must be',
               'a malformed created_by is 22023');
SELECT is((SELECT result FROM outcome WHERE who = 'w-post-forged'),
          '42501: created_by user:bob is not the caller''s identity user:u1',
          'post_event applies the same rule');
SELECT is((SELECT result FROM outcome WHERE who = 'w-batch-forged'),
          '42501: events[1].created_by system is not the caller''s identity user:u1',
          'post_events applies it to every event of the batch');
SELECT is((SELECT count(*)::int FROM evstream.events WHERE aggregate_id IN ('d1', 'd2', 'd3')), 0,
          'refused posts appended nothing');
SELECT is((SELECT result FROM outcome WHERE who = 'w-post'), 'ok: user:u1', 'post_event stores user:<sub>');
SELECT is((SELECT result FROM outcome WHERE who = 'w-replay-other'),
          'EV002: idempotency_key "k1" was already used on project:p for a different event',
          'another user replaying the key gets a conflict that reveals nothing of the original');
SELECT is((SELECT result FROM outcome WHERE who = 'w-replay-same'), 'ok: user:u1',
          'the same user replaying gets the original');
SELECT is((SELECT count(*)::int FROM evstream.events WHERE aggregate_id = 'd4'), 1,
          'replays appended nothing');
SELECT matches((SELECT result FROM outcome WHERE who = 'w-nosub'), '^42501: the caller has no identity',
               'claims without a sub give a plain writer no identity (42501)');
SELECT is((SELECT result FROM outcome WHERE who = 's-agent'), 'ok: agent:tagger',
          'an evstream_service member writes as agent:<name>');
SELECT is((SELECT result FROM outcome WHERE who = 's-default'), 'ok: user:svc',
          'its default is still user:<sub> of its claims');
SELECT is((SELECT result FROM outcome WHERE who = 's-system'), 'ok: system',
          'and system without claims');
SELECT is(evstream._creator('agent:x'), 'agent:x', 'a superuser is a trusted writer');

SELECT * FROM finish();
ROLLBACK;
