-- post_events: a JSON array appended all or nothing, positions consecutive within the batch.
BEGIN;
SELECT plan(9);

CREATE TEMP TABLE b AS SELECT * FROM evstream.post_events($$[
  {"channel": "project:p1", "aggregate_type": "doc", "aggregate_id": "b1", "event_type": "doc.created",
   "data": {"title": "A"}, "idempotency_key": "bk-1"},
  {"channel": "project:p1", "aggregate_type": "doc", "aggregate_id": "b1", "event_type": "doc.renamed",
   "data": {"title": "B"}, "expected_version": 1},
  {"channel": "user:u1", "aggregate_type": "doc", "aggregate_id": "b2", "event_type": "doc.created",
   "display": {"role": "user", "content": "hi"}, "created_by": "user:u1",
   "correlation_id": "33333333-3333-3333-3333-333333333333"}
]$$);

SELECT is((SELECT count(*)::int FROM b), 3, 'three events appended');
SELECT is((SELECT max(position) - min(position) FROM b), 2::bigint, 'positions are consecutive');
SELECT is((SELECT array_agg(version ORDER BY position) FROM b), ARRAY[1, 2, 1], 'versions per aggregate');
SELECT is((SELECT count(DISTINCT tx)::int FROM b), 1, 'one writing transaction');
SELECT is((SELECT created_by FROM b WHERE aggregate_id = 'b2'), 'user:u1', 'per-event fields are kept');

SELECT throws_ok($$SELECT * FROM evstream.post_events('[
  {"channel": "project:p1", "aggregate_type": "doc", "aggregate_id": "b3", "event_type": "doc.created"},
  {"channel": "nowhere", "aggregate_type": "doc", "aggregate_id": "b3", "event_type": "doc.renamed"}
]')$$, '22023',
  'events[1].channel must be project:<id>, user:<id> or channel:<id>, got "nowhere"',
  'one bad event refuses the whole batch and names it');
SELECT throws_ok($$SELECT * FROM evstream.post_events('[
  {"channel": "project:p1", "aggregate_type": "doc", "aggregate_id": "b1", "event_type": "doc.x"},
  {"channel": "project:p1", "aggregate_type": "doc", "aggregate_id": "b1", "event_type": "doc.y", "expected_version": 1}
]')$$, 'EV001', 'events[1].expected version 1 but aggregate doc/b1 is at version 3',
  'a version conflict inside the batch refuses the batch');
SELECT is((SELECT count(*)::int FROM evstream.events WHERE aggregate_id IN ('b1', 'b2', 'b3')), 3,
          'refused batches appended nothing');

SELECT throws_ok($$SELECT * FROM evstream.post_events('[{"channel": "project:p1", "aggregate_type": "doc",
  "aggregate_id": "b4", "event_type": "doc.created", "colour": "red"}]')$$, '22023',
  'events[0] has unknown keys: colour', 'unknown keys are refused (typos cannot vanish)');

SELECT * FROM finish();
ROLLBACK;
