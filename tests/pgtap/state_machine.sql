-- The state machine: declared transitions only; an illegal one appends nothing.
BEGIN;
SELECT plan(11);

CREATE TABLE public.orders (id text PRIMARY KEY, total numeric, state text, version integer);
SELECT evstream.project_into('order', 'public.orders', 'id', 'state');
SELECT evstream.allow_transition('order', NULL, 'order.placed', 'placed');
SELECT evstream.allow_transition('order', 'placed', 'order.payment_received', 'paid');
SELECT evstream.allow_transition('order', 'paid', 'order.shipped', 'shipped');
SELECT evstream.allow_transition('order', 'placed', 'order.cancelled', 'cancelled');

SELECT throws_ok(
  $$SELECT evstream.post_event('project:shop', 'order', 'o1', 'order.shipped')$$,
  'EV004', 'illegal transition: order o1 has no state yet, and order.shipped cannot start it',
  'an aggregate must start with a transition from NULL');

SELECT evstream.post_event('project:shop', 'order', 'o1', 'order.placed', '{"total": 20}');
SELECT results_eq($$SELECT total, state, version FROM public.orders$$, $$VALUES (20::numeric, 'placed'::text, 1)$$,
                  'the new state goes to the status column');
SELECT is((SELECT state FROM evstream.aggregates WHERE aggregate_type = 'order' AND aggregate_id = 'o1'),
          'placed', 'and to the aggregate row');

SELECT throws_ok(
  $$SELECT evstream.post_event('project:shop', 'order', 'o1', 'order.shipped', '{"total": 0}')$$,
  'EV004', 'illegal transition: order o1 is in state "placed", which does not accept order.shipped',
  'shipping before payment_received is refused, naming aggregate, state and event type');
SELECT is((SELECT count(*)::int FROM evstream.events WHERE aggregate_id = 'o1'), 1, 'nothing was appended');
SELECT results_eq($$SELECT total, state, version FROM public.orders$$, $$VALUES (20::numeric, 'placed'::text, 1)$$,
                  'the projected row is unchanged');
SELECT is((SELECT version FROM evstream.aggregates WHERE aggregate_id = 'o1'), 1, 'the version is unchanged');

SELECT evstream.post_event('project:shop', 'order', 'o1', 'order.payment_received');
SELECT evstream.post_event('project:shop', 'order', 'o1', 'order.shipped');
SELECT results_eq($$SELECT state, version FROM public.orders$$, $$VALUES ('shipped'::text, 3)$$,
                  'declared transitions move the state');

SELECT throws_ok(
  $$SELECT * FROM evstream.post_events('[
      {"channel": "project:shop", "aggregate_type": "order", "aggregate_id": "o2", "event_type": "order.placed"},
      {"channel": "project:shop", "aggregate_type": "order", "aggregate_id": "o2", "event_type": "order.cancelled"},
      {"channel": "project:shop", "aggregate_type": "order", "aggregate_id": "o2", "event_type": "order.payment_received"}]')$$,
  'EV004', 'events[2]: illegal transition: order o2 is in state "cancelled", which does not accept order.payment_received',
  'a batch sees the states of its own earlier events');
SELECT is((SELECT count(*)::int FROM evstream.events WHERE aggregate_id = 'o2'), 0, 'the refused batch appended nothing');

-- A type without transitions has no state machine.
SELECT lives_ok($$SELECT evstream.post_event('project:shop', 'cart', 'c1', 'cart.anything')$$,
                'types without declared transitions accept any event');

SELECT * FROM finish();
ROLLBACK;
