-- evstream.publish and the ephemeral outbox: only evstream's own functions write it; publish
-- applies the log's channel rule (channel_allowed) and identity rule (_creator); presence and the
-- outbox's reading and pruning belong to evstream_daemon. Checks run as non-superuser roles;
-- results go to temp tables asserted after RESET ROLE.
BEGIN;
SELECT plan(48);

CREATE ROLE pt_login NOLOGIN;
CREATE ROLE pt_writer NOLOGIN IN ROLE evstream_writer;
CREATE ROLE pt_daemon NOLOGIN IN ROLE evstream_daemon;

CREATE TEMP TABLE outcome (who text, result text);
GRANT INSERT ON outcome TO PUBLIC;
CREATE FUNCTION pg_temp.try(who text, stmt text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE stmt;
  INSERT INTO outcome VALUES (who, 'ok');
EXCEPTION WHEN OTHERS THEN
  INSERT INTO outcome VALUES (who, SQLSTATE);
END
$$;
GRANT EXECUTE ON FUNCTION pg_temp.try(text, text) TO PUBLIC;
CREATE FUNCTION pg_temp.result(w text) RETURNS text LANGUAGE sql AS $$ SELECT result FROM outcome WHERE who = w $$;

-- The definitions: definer functions with a fixed search_path; no privileges on the table.
SELECT ok((SELECT bool_and(p.prosecdef AND p.proconfig @> ARRAY['search_path=pg_catalog, pg_temp'])
             FROM pg_proc p WHERE p.pronamespace = 'evstream'::regnamespace
              AND p.proname IN ('publish', '_publish_each', '_publish_batch', '_presence_send', '_ephemeral_read',
                                '_ephemeral_tail', '_ephemeral_prune')) AND
          (SELECT count(*) = 7 FROM pg_proc p WHERE p.pronamespace = 'evstream'::regnamespace
              AND p.proname IN ('publish', '_publish_each', '_publish_batch', '_presence_send', '_ephemeral_read',
                                '_ephemeral_tail', '_ephemeral_prune')),
          'publish and the outbox functions are SECURITY DEFINER with search_path pg_catalog, pg_temp');
SELECT is((SELECT relpersistence::text FROM pg_class WHERE oid = 'evstream.ephemeral_outbox'::regclass), 'u',
          'the outbox is UNLOGGED');
SELECT ok(NOT has_table_privilege('evstream_writer', 'evstream.ephemeral_outbox', 'SELECT, INSERT, UPDATE, DELETE')
          AND NOT has_table_privilege('evstream_daemon', 'evstream.ephemeral_outbox', 'SELECT, INSERT, UPDATE, DELETE')
          AND NOT has_table_privilege('evstream_admin', 'evstream.ephemeral_outbox', 'SELECT, INSERT, UPDATE, DELETE'),
          'no role has privileges on the outbox table itself');

-- A superuser publishes: one row, payload as delivered, nothing on rollback.
CREATE TEMP TABLE ids AS SELECT evstream.publish('project:a', 'note.flash', '{"n": 1}', 'note', 'n1') AS id;
SELECT is((SELECT count(*)::int FROM evstream.ephemeral_outbox
            WHERE kind = 'event' AND channel = 'project:a' AND type = 'note.flash' AND entity = 'note' AND entity_id = 'n1'
              AND (payload::jsonb ->> 'ephemeralId')::uuid = (SELECT id FROM ids)), 1,
          'publish writes one outbox row whose payload carries the returned ephemeralId');
SELECT is((SELECT payload::jsonb - 'timestamp' - 'ephemeralId' FROM evstream.ephemeral_outbox WHERE type = 'note.flash'),
          '{"type": "note.flash", "channel": "project:a", "entity": "note", "id": "n1", "data": {"n": 1},
            "ephemeral": true, "createdBy": "system"}'::jsonb,
          'the payload is the frame object');
-- The payload text is what json_build_object printed before publish moved to C++, byte for byte
-- (escapes, numbers as stored, nested objects, NULL entity/id): the 8000-byte limit is unchanged.
SELECT evstream.publish('project:a', 'fmt.check', '{"s": "é\"\\\n\t\u0001/", "n": [1, 2.50, -0.0001, 1e20], "o": {"z": null, "a": true}}', 'ent"ity', NULL);
SELECT is((SELECT payload FROM evstream.ephemeral_outbox WHERE type = 'fmt.check'),
          (SELECT json_build_object('type', type, 'channel', channel, 'entity', entity, 'id', entity_id,
                    'data', (payload::jsonb -> 'data')::json, 'ephemeral', true,
                    'ephemeralId', (payload::jsonb ->> 'ephemeralId')::uuid, 'createdBy', payload::jsonb ->> 'createdBy',
                    'timestamp', payload::jsonb ->> 'timestamp')::text
             FROM evstream.ephemeral_outbox WHERE type = 'fmt.check'),
          'the payload text is json_build_object''s, byte for byte');
SELECT ok((SELECT payload::jsonb ->> 'timestamp' ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$'
             FROM evstream.ephemeral_outbox WHERE type = 'fmt.check'), 'the timestamp is UTC with milliseconds');
SELECT ok((SELECT abs(extract(epoch FROM (payload::jsonb ->> 'timestamp')::timestamptz - clock_timestamp())) < 60
             FROM evstream.ephemeral_outbox WHERE type = 'fmt.check'), 'the timestamp is the time of publishing');
-- The limit: with a fixed envelope, data that makes 7999 bytes passes and one byte more is refused.
SELECT evstream.publish('project:a', 'size.one', '{"x": ""}');
CREATE TEMP TABLE probe AS SELECT octet_length(payload) AS base FROM evstream.ephemeral_outbox WHERE type = 'size.one';
SELECT lives_ok(format($$SELECT evstream.publish('project:a', 'size.max', jsonb_build_object('x', repeat('a', %s)))$$,
                       7999 - (SELECT base FROM probe)), 'an event of exactly 7999 bytes is published');
SELECT is((SELECT octet_length(payload) FROM evstream.ephemeral_outbox WHERE type = 'size.max'), 7999, 'and its payload is 7999 bytes');
SELECT throws_ok(format($$SELECT evstream.publish('project:a', 'size.max', jsonb_build_object('x', repeat('a', %s)))$$,
                        8000 - (SELECT base FROM probe)), '22023', 'ephemeral event is too large: 8000 bytes (limit 7999)',
                 'an event of 8000 bytes is refused, naming its size');
SELECT ok(pg_current_xact_id_if_assigned() IS NOT NULL, 'publishing assigned the transaction id (readers rely on it)');

SAVEPOINT before_rollback;
SELECT evstream.publish('project:a', 'rolled.back');
ROLLBACK TO SAVEPOINT before_rollback;
SELECT is((SELECT count(*)::int FROM evstream.ephemeral_outbox WHERE type = 'rolled.back'), 0, 'nothing survives a rollback');

-- Bad input.
SELECT throws_ok($$SELECT evstream.publish(NULL, 't')$$, '22004', NULL, 'null channel: 22004');
SELECT throws_ok($$SELECT evstream.publish('team:x', 't')$$, '22023', NULL, 'channel outside the naming rule: 22023');
SELECT throws_ok($$SELECT evstream.publish('project:*', 't')$$, '22023', NULL, 'a pattern is no channel: 22023');
SELECT throws_ok($$SELECT evstream.publish('project:a', 'reset')$$, '22023', NULL, 'reserved type: 22023');
SELECT throws_ok($$SELECT evstream.publish('project:a', 'reauth')$$, '22023', NULL, 'reauth is a reserved type too: 22023');
SELECT throws_ok($$SELECT evstream.publish('project:a', 't', '[1]')$$, '22023', NULL, 'data not an object: 22023');
SELECT throws_ok($$SELECT evstream.publish('project:a', 't', jsonb_build_object('x', repeat('a', 8000)))$$, '22023', NULL,
                 'an event of 8000 bytes or more: 22023');

-- A writer with claims for project a only.
SET LOCAL ROLE pt_writer;
SET LOCAL request.jwt.claims = '{"sub": "ann", "projects": ["a"]}';
SELECT pg_temp.try('writer-a', $$SELECT evstream.publish('project:a', 'w.ok')$$);
SELECT pg_temp.try('writer-b', $$SELECT evstream.publish('project:b', 'w.b')$$);
SELECT pg_temp.try('writer-forge', $$SELECT evstream.publish('project:a', 'w.forge', '{}', NULL, NULL, 'user:bob')$$);
SELECT pg_temp.try('writer-system', $$SELECT evstream.publish('project:a', 'w.sys', '{}', NULL, NULL, 'system')$$);
SELECT pg_temp.try('writer-self', $$SELECT evstream.publish('project:a', 'w.self', '{}', NULL, NULL, 'user:ann')$$);
SELECT pg_temp.try('writer-insert', $$INSERT INTO evstream.ephemeral_outbox (kind, channel, type, payload) VALUES ('event', 'project:b', 'x', '{}')$$);
SELECT pg_temp.try('writer-select', $$SELECT * FROM evstream.ephemeral_outbox$$);
SELECT pg_temp.try('writer-presence', $$SELECT evstream._presence_send('[{"op": "join", "instance": "x", "channel": "project:a", "userId": "eve"}]')$$);
SELECT pg_temp.try('writer-read', $$SELECT * FROM evstream._ephemeral_read(0, '{}', 10)$$);
SELECT pg_temp.try('writer-prune', $$SELECT evstream._ephemeral_prune(1000000)$$);
SET LOCAL request.jwt.claims = '';
SELECT pg_temp.try('writer-noclaims', $$SELECT evstream.publish('project:a', 'w.none')$$);
-- A role that can only log in.
SET LOCAL ROLE pt_login;
SELECT pg_temp.try('login-publish', $$SELECT evstream.publish('project:a', 'l.x')$$);
-- The daemon's role.
SET LOCAL ROLE pt_daemon;
SELECT pg_temp.try('daemon-presence', $$SELECT evstream._presence_send('[{"op": "state", "instance": "pt", "members": {}}]')$$);
SELECT pg_temp.try('daemon-read', $$SELECT * FROM evstream._ephemeral_read(0, '{}', 10)$$);
SELECT pg_temp.try('daemon-insert', $$INSERT INTO evstream.ephemeral_outbox (kind, payload) VALUES ('presence', '{}')$$);
RESET ROLE;

SELECT is(pg_temp.result('writer-a'), 'ok', 'a writer publishes on a channel its claims allow');
SELECT is(pg_temp.result('writer-b'), '42501', 'publishing outside the claims (project A writer to project B): 42501');
SELECT is(pg_temp.result('writer-forge'), '42501', 'created_by of another user: 42501');
SELECT is(pg_temp.result('writer-system'), '42501', 'created_by system from a plain writer: 42501');
SELECT is((SELECT payload::jsonb ->> 'createdBy' FROM evstream.ephemeral_outbox WHERE type = 'w.ok'), 'user:ann',
          'a writer''s event is created by user:<sub> of its claims');
SELECT is(pg_temp.result('writer-self'), 'ok', 'created_by equal to the caller''s own identity is accepted');
SELECT is(pg_temp.result('writer-noclaims'), '42501', 'a writer without claims may publish nowhere');
SELECT is(ARRAY[pg_temp.result('writer-insert'), pg_temp.result('writer-select'), pg_temp.result('writer-presence'),
                pg_temp.result('writer-read'), pg_temp.result('writer-prune')],
          ARRAY['42501', '42501', '42501', '42501', '42501'],
          'a writer can neither touch the outbox nor send presence, read or prune');
SELECT is(pg_temp.result('login-publish'), '42501', 'a LOGIN-only role cannot publish');
SELECT is(ARRAY[pg_temp.result('daemon-presence'), pg_temp.result('daemon-read'), pg_temp.result('daemon-insert')],
          ARRAY['ok', 'ok', '42501'], 'evstream_daemon sends presence and reads through the functions only');
SELECT is((SELECT count(*)::int FROM evstream.ephemeral_outbox WHERE type IN ('w.b', 'w.forge', 'w.sys', 'w.none', 'l.x')
            OR payload LIKE '%eve%'), 0, 'refused calls left nothing in the outbox');

-- _publish_each (evstreamd's batch): each item under its own claims, in order, one id each.
SET LOCAL ROLE pt_daemon;
CREATE TEMP TABLE each_ids AS
  SELECT row_number() OVER () AS n, id FROM evstream._publish_each(
    '[{"claims": "{\"sub\": \"ann\"}", "channel": "project:e", "type": "each.one", "data": {"i": 1}, "entity": "doc", "id": "d1"},
      {"claims": "{\"sub\": \"bob\"}", "channel": "project:e", "type": "each.two", "data": {"i": 2}},
      {"channel": "project:e", "type": "each.three", "data": {"i": 3}}]') AS id;
SELECT pg_temp.try('daemon-each-bad', $$SELECT evstream._publish_each('[{"claims": "{\"sub\": \"ann\"}", "channel": "project:e", "type": "each.bad1", "data": {}},
                                                                   {"channel": "project:e", "type": "reset", "data": {}}]')$$);
SELECT pg_temp.try('daemon-each-forged', $$SELECT evstream._publish_each('[{"claims": "{\"sub\": \"bad sub\"}", "channel": "project:e", "type": "each.bad2", "data": {}}]')$$);
SELECT pg_temp.try('daemon-each-notarray', $$SELECT evstream._publish_each('{"channel": "project:e"}')$$);
SELECT pg_temp.try('daemon-each-noobject', $$SELECT evstream._publish_each('[1]')$$);
RESET ROLE;
SELECT is((SELECT array_agg(payload::jsonb ->> 'createdBy' ORDER BY o.id) FROM evstream.ephemeral_outbox o WHERE type LIKE 'each.%'),
          ARRAY['user:ann', 'user:bob', 'system'], 'each item is created by the sub of its own claims (none: the service default)');
SELECT is((SELECT array_agg((payload::jsonb ->> 'ephemeralId')::uuid ORDER BY o.id) FROM evstream.ephemeral_outbox o WHERE type LIKE 'each.%'),
          (SELECT array_agg(id ORDER BY n) FROM each_ids), 'the ids come back in item order, and the rows are in item order');
SELECT is((SELECT row(entity, entity_id, payload::jsonb -> 'data')::text FROM evstream.ephemeral_outbox WHERE type = 'each.one'),
          row('doc', 'd1', '{"i": 1}'::jsonb)::text, 'entity, id and data reach the row');
SELECT is(ARRAY[pg_temp.result('daemon-each-bad'), pg_temp.result('daemon-each-forged'), pg_temp.result('daemon-each-notarray'),
                pg_temp.result('daemon-each-noobject')], ARRAY['22023', '42501', '22023', '22004'],
          'a bad item fails the batch with publish''s SQLSTATE (reserved type, unusable sub, not an array, no channel)');
SELECT is((SELECT count(*)::int FROM evstream.ephemeral_outbox WHERE type LIKE 'each.bad%'), 0,
          'a refused batch writes nothing, not even its good items');
-- _publish_batch: _publish_each's checks and rows, and each item's outbox row as written (the
-- publishing evstreamd hands these to its own subscribers instead of reading them back).
SET LOCAL ROLE pt_daemon;
CREATE TEMP TABLE batch_rows AS
  SELECT row_number() OVER () AS n, b.* FROM evstream._publish_batch(
    '[{"claims": "{\"sub\": \"ann\"}", "channel": "project:e", "type": "batch.one", "data": {"i": 1}},
      {"claims": "{\"sub\": \"bob\"}", "channel": "project:e", "type": "batch.two", "data": {"i": 2}, "entity": "doc", "id": "d2"}]') b;
SELECT pg_temp.try('daemon-batch-forged', $$SELECT evstream._publish_batch('[{"claims": "{\"sub\": \"bad sub\"}", "channel": "project:e", "type": "batch.bad", "data": {}}]')$$);
SET LOCAL ROLE pt_writer;
SELECT pg_temp.try('writer-batch', $$SELECT evstream._publish_batch('[{"channel": "project:e", "type": "batch.writer", "data": {}}]')$$);
RESET ROLE;
SELECT is((SELECT array_agg(row(b.ephemeral_id, b.outbox_id, b.payload)::text ORDER BY b.n) FROM batch_rows b),
          (SELECT array_agg(row((o.payload::jsonb ->> 'ephemeralId')::uuid, o.id, o.payload)::text ORDER BY o.id)
             FROM evstream.ephemeral_outbox o WHERE o.type LIKE 'batch.%'),
          '_publish_batch returns each item''s ephemeralId, outbox id and payload, in item order, as written');
SELECT is((SELECT array_agg(payload::jsonb ->> 'createdBy' ORDER BY n) FROM batch_rows), ARRAY['user:ann', 'user:bob'],
          '_publish_batch checks each item under its own claims');
SELECT is(ARRAY[pg_temp.result('daemon-batch-forged'), pg_temp.result('writer-batch')], ARRAY['42501', '42501'],
          '_publish_batch refuses an unusable sub, and a writer that is not evstream_daemon cannot call it');
-- _presence_send: one row per message, the object as jsonb prints it; anything but objects refused.
SET LOCAL ROLE pt_daemon;
SELECT pg_temp.try('daemon-presence-two', $$SELECT evstream._presence_send('[{"op": "join", "instance": "i2", "n": [1, 2]}, {"op": "leave", "instance": "i2"}]')$$);
SELECT pg_temp.try('daemon-presence-bad', $$SELECT evstream._presence_send('[{"op": "join", "instance": "i3"}, "x"]')$$);
RESET ROLE;
SELECT is((SELECT array_agg(payload ORDER BY id) FROM evstream.ephemeral_outbox WHERE kind = 'presence' AND payload LIKE '%"i2"%'),
          ARRAY['{"n": [1, 2], "op": "join", "instance": "i2"}', '{"op": "leave", "instance": "i2"}'],
          'presence messages are written in order, as jsonb prints them');
SELECT is(pg_temp.result('daemon-presence-bad'), '22023', 'a presence message that is not an object: 22023');
SELECT is((SELECT count(*)::int FROM evstream.ephemeral_outbox WHERE payload LIKE '%"i3"%'), 0, 'and nothing of that call is written');

-- Reading: the horizon row first, then rows in id order; gaps listed below `after` are returned.
SELECT is((SELECT kind FROM evstream._ephemeral_read(0, '{}', 10) LIMIT 1), 'horizon', 'the first row is the horizon');
SELECT ok((SELECT horizon <= next_xid FROM evstream._ephemeral_read(0, '{}', 10) WHERE id IS NULL),
          'the horizon (snapshot xmin) is at or below the next transaction id');
SELECT is((SELECT array_agg(id ORDER BY id) FROM evstream._ephemeral_read((SELECT max(id) FROM evstream.ephemeral_outbox),
             ARRAY[(SELECT min(id) FROM evstream.ephemeral_outbox)], 10) WHERE id IS NOT NULL),
          ARRAY[(SELECT min(id) FROM evstream.ephemeral_outbox)], 'a gap id below the cursor is read again');
SELECT is((SELECT last_id FROM evstream._ephemeral_tail()), (SELECT max(id) FROM evstream.ephemeral_outbox),
          'the tail is the highest id');
SELECT is(evstream._ephemeral_prune((SELECT max(id) FROM evstream.ephemeral_outbox)) > 0, true, 'prune deletes up to the id');
SELECT is((SELECT count(*)::int FROM evstream.ephemeral_outbox), 0, 'the outbox is empty after pruning');

SELECT * FROM finish();
ROLLBACK;
