-- Bad input: a clear error with an SQLSTATE naming the field; nothing appended; session usable.
BEGIN;
SELECT plan(14);

SELECT throws_ok($$SELECT evstream.post_event(NULL, 'doc', 'd1', 'doc.created')$$,
                 '22004', 'channel must not be null', 'NULL channel');
SELECT throws_ok($$SELECT evstream.post_event('project:p1', NULL, 'd1', 'doc.created')$$,
                 '22004', 'aggregate_type must not be null', 'NULL aggregate_type');
SELECT throws_ok($$SELECT evstream.post_event('project:p1', 'doc', '', 'doc.created')$$,
                 '22023', 'aggregate_id must not be empty', 'empty aggregate_id');
SELECT throws_ok($$SELECT evstream.post_event('project:p1', 'doc', 'd1', '')$$,
                 '22023', 'event_type must not be empty', 'empty event_type');
SELECT throws_ok($$SELECT evstream.post_event('team:t1', 'doc', 'd1', 'doc.created')$$,
                 '22023', 'channel must be project:<id>, user:<id> or channel:<id>, got "team:t1"',
                 'malformed channel');
SELECT throws_ok($$SELECT evstream.post_event('project:p1', 'doc', 'd1', 'doc.created', '[1, 2]')$$,
                 '22023', 'data must be a JSON object', 'non-object data');
SELECT throws_ok($$SELECT evstream.post_event('project:p1', 'doc', 'd1', 'doc.created', NULL)$$,
                 '22004', 'data must not be null', 'NULL data');
SELECT throws_ok($$SELECT evstream.post_event('project:p1', 'doc', 'd1', 'doc.created', '{}', '"x"')$$,
                 '22023', 'metadata must be a JSON object', 'non-object metadata');
SELECT throws_ok($$SELECT evstream.post_event('project:p1', 'doc', 'd1', 'doc.created',
                     idempotency_key => repeat('k', 256))$$,
                 '22023', 'idempotency_key is longer than 255 characters', 'oversized idempotency key');
SELECT throws_ok($$SELECT evstream.post_event('project:p1', 'doc', 'd1', 'doc.created',
                     display => '{"role": "robot"}')$$,
                 '22023', 'display.role must be "user", "assistant" or "system"', 'unknown display role');
SELECT throws_ok($$SELECT evstream.post_event('project:p1', 'doc', 'd1', 'doc.created',
                     created_by => 'root')$$,
                 '22023', 'created_by must be user:<id>, agent:<name> or system', 'bad created_by');
SELECT throws_ok($$SELECT evstream.post_event('project:p1', 'doc', 'd1', 'doc.created',
                     expected_version => -1)$$,
                 '22023', 'expected_version must be 0 or more', 'negative expected_version');
SELECT throws_ok($$SELECT * FROM evstream.post_events('{"channel": "project:p1"}')$$,
                 '22023', 'events must be a JSON array of event objects', 'post_events needs an array');

SELECT is((SELECT count(*)::int FROM evstream.events WHERE aggregate_id = 'd1'), 0,
          'nothing was appended, and the session still works');

SELECT * FROM finish();
ROLLBACK;
