-- Idempotency keys (Stripe semantics): same key + same content returns the original event.
BEGIN;
SELECT plan(8);

CREATE TEMP TABLE first AS
  SELECT * FROM evstream.post_event('project:p1', 'order', 'o1', 'order.placed', '{"total": 10}',
                                    idempotency_key => 'k-1');

CREATE TEMP TABLE again AS
  SELECT * FROM evstream.post_event('project:p1', 'order', 'o1', 'order.placed', '{"total": 10}',
                                    idempotency_key => 'k-1');

SELECT is((SELECT id FROM again), (SELECT id FROM first), 'a retry returns the original id');
SELECT is((SELECT position FROM again), (SELECT position FROM first), 'and the original position');
SELECT is((SELECT version FROM again), (SELECT version FROM first), 'and the original version');
SELECT is((SELECT count(*)::int FROM evstream.events WHERE aggregate_id = 'o1'), 1,
          'a retry appends nothing');

SELECT throws_ok(
  $$SELECT evstream.post_event('project:p1', 'order', 'o1', 'order.placed', '{"total": 99}',
                               idempotency_key => 'k-1')$$,
  'EV002', 'idempotency_key "k-1" was already used on project:p1 for a different event',
  'the same key with different data is refused with EV002');

SELECT is((SELECT count(*)::int FROM evstream.events WHERE aggregate_id = 'o1'), 1,
          'the refused call appended nothing');

SELECT lives_ok(
  $$SELECT evstream.post_event('project:p2', 'order', 'o2', 'order.placed', '{"total": 99}',
                               idempotency_key => 'k-1')$$,
  'keys are scoped per channel: the same key on another channel is a new event');

SELECT is((SELECT (evstream.post_event('project:p1', 'order', 'o1', 'order.placed', '{"total": 10}',
                                       idempotency_key => 'k-1', expected_version => 0)).id),
          (SELECT id FROM first),
          'a retry returns the original even when its expected_version no longer matches');

SELECT * FROM finish();
ROLLBACK;
