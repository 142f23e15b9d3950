-- Optimistic concurrency: expected_version is the aggregate's version before this event.
BEGIN;
SELECT plan(7);

SELECT is((evstream.post_event('project:p1', 'cart', 'c1', 'cart.created', expected_version => 0)).version,
          1, 'expected_version 0 creates a new aggregate at version 1');

SELECT throws_ok(
  $$SELECT evstream.post_event('project:p1', 'cart', 'c1', 'cart.created', expected_version => 0)$$,
  'EV001', 'expected version 0 but aggregate cart/c1 is at version 1',
  'expected_version 0 on an existing aggregate fails naming aggregate, expected and actual');

SELECT is((evstream.post_event('project:p1', 'cart', 'c1', 'cart.item_added', expected_version => 1)).version,
          2, 'a matching expected_version appends the next version');

SELECT throws_ok(
  $$SELECT evstream.post_event('project:p1', 'cart', 'c1', 'cart.item_added', expected_version => 1)$$,
  'EV001', 'expected version 1 but aggregate cart/c1 is at version 2',
  'a stale expected_version fails');

SELECT throws_ok(
  $$SELECT evstream.post_event('project:p1', 'cart', 'nope', 'cart.item_added', expected_version => 3)$$,
  'EV001', 'expected version 3 but aggregate cart/nope is at version 0',
  'an aggregate that does not exist is at version 0');

SELECT is((SELECT count(*)::int FROM evstream.events WHERE aggregate_type = 'cart'), 2,
          'failed appends left nothing in the log');
SELECT is((SELECT count(*)::int FROM evstream.aggregates WHERE aggregate_type = 'cart'), 1,
          'and no aggregate row for the missing aggregate');

SELECT * FROM finish();
ROLLBACK;
