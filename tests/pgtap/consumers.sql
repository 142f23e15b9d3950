-- Consumers: consume / ack / fail, checkpoints, failures, and members splitting a stream.
-- consume() only delivers committed events, so this file first commits 40 events of its own
-- (channel project:consumer-seed); the assertions run in a rolled-back transaction.
DO $$
BEGIN
  PERFORM evstream.post_event('project:consumer-seed', 'seeded', 's' || (i % 9), 'seeded.happened',
                              jsonb_build_object('i', i))
     FROM generate_series(1, 40) i;
END
$$;
BEGIN;
SELECT plan(15);

-- Events committed before this transaction are what consume() can deliver (below the delivery
-- horizon: no appending transaction is open). This test's own appends are in its own
-- transaction, so the checks use a table of expected positions instead of fresh appends.
CREATE TEMP TABLE mine AS
  SELECT e.position FROM evstream.events e ORDER BY e.order_key, e.position;

SELECT cmp_ok((SELECT count(*)::int FROM mine), '>=', 40, 'the seeded events are committed');
SELECT is((SELECT count(*)::int FROM evstream.consume('c1', 100000)), (SELECT count(*)::int FROM mine),
          'a new consumer gets every committed event');
SELECT is((SELECT array_agg(position) FROM evstream.consume('c1', 2)),
          (SELECT array_agg(position) FROM (SELECT position FROM mine LIMIT 2) m),
          'in the gap-free order, limited by max_count');

SELECT evstream.ack('c1', (SELECT position FROM mine LIMIT 1 OFFSET 1));
SELECT is((SELECT min(position) FROM evstream.consume('c1', 1)), (SELECT position FROM mine LIMIT 1 OFFSET 2),
          'ack advances the checkpoint');

SELECT evstream.ack('c1', (SELECT position FROM mine LIMIT 1));
SELECT is((SELECT min(position) FROM evstream.consume('c1', 1)), (SELECT position FROM mine LIMIT 1 OFFSET 2),
          'acking an older position never moves the checkpoint back');

SELECT evstream.fail('c1', (SELECT position FROM mine LIMIT 1 OFFSET 2), 'boom');
SELECT evstream.fail('c1', (SELECT position FROM mine LIMIT 1 OFFSET 2), 'boom again');
SELECT results_eq(
  $$SELECT consumer, member, position, error, attempts FROM evstream.consumer_failures ORDER BY id$$,
  $$SELECT 'c1'::text, 0, position, e, a FROM (SELECT position FROM mine LIMIT 1 OFFSET 2) m,
           (VALUES ('boom'::text, 1), ('boom again', 2)) v(e, a)$$,
  'fail records consumer, event, error and attempts');
SELECT ok((SELECT bool_and(event_id IS NOT NULL AND failed_at IS NOT NULL) FROM evstream.consumer_failures),
          'with the event id and the time');
SELECT is((SELECT min(position) FROM evstream.consume('c1', 1)), (SELECT position FROM mine LIMIT 1 OFFSET 3),
          'fail advances past the event');

SELECT throws_ok($$SELECT evstream.ack('c1', -5)$$, 'EV006', 'position -5 is not in the log',
                 'ack of an unknown position is refused');
SELECT throws_ok($$SELECT * FROM evstream.consume('c1', 10, 2, 2)$$, '22023',
                 'member must be between 0 and size - 1 (got member 2, size 2)', 'member is checked against size');
SELECT throws_ok($$SELECT * FROM evstream.consume('c1', 10, 0, 3)$$, '22023',
                 'consumer c1 member 0 was created with size 1, not 3', 'a group keeps its size');

-- Two members of a group split the stream by aggregate: no loss, no duplicate, each
-- aggregate's events in order on one member.
CREATE TEMP TABLE got AS
  SELECT 0 AS member, e.* FROM evstream.consume('split', 100000, 0, 2) e
  UNION ALL SELECT 1, e.* FROM evstream.consume('split', 100000, 1, 2) e;
SELECT set_eq($$SELECT position FROM got$$, $$SELECT position FROM mine$$, 'together the members get every event');
SELECT is((SELECT count(*)::int FROM got), (SELECT count(*)::int FROM mine), 'and none twice');
SELECT is((SELECT count(*)::int FROM (SELECT aggregate_type, aggregate_id FROM got
                                       GROUP BY 1, 2 HAVING count(DISTINCT member) > 1) x), 0,
          'each aggregate goes to one member');

SELECT is((SELECT count(*)::int FROM evstream.consumer_checkpoints WHERE consumer = 'split'), 2,
          'each member has its own checkpoint');

SELECT * FROM finish();
ROLLBACK;
