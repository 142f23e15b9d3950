-- post_event: the basic append, its defaults, and the returned row.
BEGIN;
SELECT plan(12);

SELECT lives_ok(
  $$SELECT evstream.post_event('project:p1', 'document', 'tap_doc_1', 'document.created',
                                '{"title": "Plan"}')$$,
  'post_event appends an event');

SELECT is(count(*)::int, 1, 'one row in the log') FROM evstream.events WHERE aggregate_id = 'tap_doc_1';

SELECT results_eq(
  $$SELECT channel, aggregate_type, aggregate_id, version, event_type, data, metadata, created_by
      FROM evstream.events WHERE aggregate_id = 'tap_doc_1'$$,
  $$VALUES ('project:p1'::text, 'document'::text, 'tap_doc_1'::text, 1, 'document.created'::text,
            '{"title": "Plan"}'::jsonb, '{}'::jsonb, 'system'::text)$$,
  'stored columns match the call, metadata defaults to {} and created_by to system');

SELECT is((evstream.post_event('project:p1', 'document', 'tap_doc_1', 'document.renamed')).version, 2,
          'the second event of an aggregate gets version 2');

SELECT is((SELECT version FROM evstream.aggregates WHERE aggregate_type = 'document' AND aggregate_id = 'tap_doc_1'),
          2, 'the aggregate row tracks the current version');

SELECT ok((SELECT tx = pg_current_xact_id() FROM evstream.events WHERE aggregate_id = 'tap_doc_1' AND version = 2),
          'tx records the writing transaction');

SELECT ok((SELECT bool_and(id IS NOT NULL AND position > 0) FROM evstream.events WHERE aggregate_id = 'tap_doc_1'),
          'id and position are generated');

SELECT is((evstream.post_event('project:p1', 'document', 'tap_doc_1', 'document.tagged',
            correlation_id => '11111111-1111-1111-1111-111111111111',
            causation_id => '22222222-2222-2222-2222-222222222222',
            display => '{"role": "assistant", "content": "Tagged", "icon": "tag", "color": "#0a0"}',
            created_by => 'agent:tagger')).created_by,
          'agent:tagger', 'created_by is stored when given');

SELECT results_eq(
  $$SELECT correlation_id, causation_id, display->>'role'
      FROM evstream.events WHERE aggregate_id = 'tap_doc_1' AND version = 3$$,
  $$VALUES ('11111111-1111-1111-1111-111111111111'::uuid, '22222222-2222-2222-2222-222222222222'::uuid, 'assistant'::text)$$,
  'correlation, causation and display are stored');

-- created_by from PostgREST-style claims
SELECT set_config('request.jwt.claims', '{"sub": "alice", "role": "web"}', true);
SELECT is((evstream.post_event('user:alice', 'note', 'n1', 'note.created')).created_by, 'user:alice',
          'created_by defaults to user:<sub> from request.jwt.claims');
SELECT set_config('request.jwt.claims', '', true);
SELECT is((evstream.post_event('user:alice', 'note', 'n1', 'note.edited')).created_by, 'system',
          'created_by is system without claims');

SELECT is((SELECT array_agg(version ORDER BY version) FROM evstream.stream('document', 'tap_doc_1')),
          ARRAY[1, 2, 3], 'stream() returns one aggregate in version order');

SELECT * FROM finish();
ROLLBACK;
