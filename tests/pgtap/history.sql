-- History: stats per event type and the events-by-correlation lookup.
BEGIN;
SELECT plan(4);

SELECT evstream.post_event('project:h', 'hist', 'h1', 'hist.started', correlation_id => '5d1d3a5e-0000-4000-8000-000000000001');
SELECT evstream.post_event('project:h', 'hist', 'h1', 'hist.step', correlation_id => '5d1d3a5e-0000-4000-8000-000000000001');
SELECT evstream.post_event('project:h', 'hist', 'h2', 'hist.step', correlation_id => '5d1d3a5e-0000-4000-8000-000000000001');
SELECT evstream.post_event('project:h', 'hist', 'h3', 'hist.step');

SELECT results_eq(
  $$SELECT event_type, events, first_at <= last_at FROM evstream.stats() WHERE event_type LIKE 'hist.%'$$,
  $$VALUES ('hist.started'::text, 1::bigint, true), ('hist.step', 3, true)$$,
  'stats() counts events per type with first and last time');
SELECT is((SELECT last_at FROM evstream.stats() WHERE event_type = 'hist.step'), now(), 'last_at is the latest append');

SELECT results_eq(
  $$SELECT aggregate_id, event_type FROM evstream.events_by_correlation('5d1d3a5e-0000-4000-8000-000000000001')$$,
  $$VALUES ('h1'::text, 'hist.started'::text), ('h1', 'hist.step'), ('h2', 'hist.step')$$,
  'events_by_correlation returns the correlated events in log order');
SELECT is((SELECT count(*)::int FROM evstream.events_by_correlation('5d1d3a5e-0000-4000-8000-0000000000ff')), 0,
          'an unknown correlation id returns nothing');

SELECT * FROM finish();
ROLLBACK;
