-- Event-type catalog: JSON Schema validation of data, refusal of invalid schemas, and
-- evstream.require_registered_types.
BEGIN;
SELECT plan(16);

SELECT lives_ok(
  $$SELECT evstream.register_event_type('order.placed',
      '{"type": "object", "required": ["price", "sku"], "additionalProperties": false,
        "properties": {"price": {"type": "number", "minimum": 0},
                       "sku": {"type": "string", "pattern": "^[A-Z]+-[0-9]+$"},
                       "lines": {"type": "array", "items": {"type": "object",
                                 "properties": {"qty": {"type": "integer", "minimum": 1}}}},
                       "buyer": {"type": "string", "format": "email"}}}',
      'A customer placed an order.', '{"price": 10, "sku": "AB-1"}')$$,
  'a type with a schema, description and example registers');

SELECT is((SELECT description FROM evstream.event_types WHERE event_type = 'order.placed'),
          'A customer placed an order.', 'the catalog row is stored');

SELECT lives_ok(
  $$SELECT evstream.post_event('project:shop', 'order', 'o1', 'order.placed', '{"price": 10, "sku": "AB-1"}')$$,
  'valid data is appended');

SELECT throws_ok(
  $$SELECT evstream.post_event('project:shop', 'order', 'o2', 'order.placed', '{"price": -3, "sku": "AB-1"}')$$,
  'EV003', 'data.price: -3 is less than minimum 0', 'a schema rejection names the path and the rule');

SELECT throws_ok(
  $$SELECT evstream.post_event('project:shop', 'order', 'o2', 'order.placed',
      '{"price": 1, "sku": "AB-1", "lines": [{"qty": 2}, {"qty": 0}]}')$$,
  'EV003', 'data.lines[1].qty: 0 is less than minimum 1', 'nested paths are named');

SELECT throws_ok(
  $$SELECT evstream.post_event('project:shop', 'order', 'o2', 'order.placed', '{"price": 1}')$$,
  'EV003', 'data.sku: required property is missing', 'required properties are enforced');

SELECT throws_ok(
  $$SELECT evstream.post_event('project:shop', 'order', 'o2', 'order.placed',
      '{"price": 1, "sku": "AB-1", "coupon": "X"}')$$,
  'EV003', 'data.coupon: property is not allowed (additionalProperties is false)',
  'additionalProperties false refuses unknown keys');

SELECT throws_ok(
  $$SELECT * FROM evstream.post_events('[
      {"channel": "project:shop", "aggregate_type": "order", "aggregate_id": "o3",
       "event_type": "order.placed", "data": {"price": 1, "sku": "AB-1"}},
      {"channel": "project:shop", "aggregate_type": "order", "aggregate_id": "o4",
       "event_type": "order.placed", "data": {"price": 1, "sku": "ab"}}]')$$,
  'EV003', 'events[1].data.sku: "ab" does not match pattern "^[A-Z]+-[0-9]+$"',
  'post_events names the failing event');

SELECT is((SELECT count(*)::int FROM evstream.events WHERE aggregate_type = 'order'), 1,
          'refused events append nothing (not even the valid half of a batch)');
SELECT is((SELECT count(*)::int FROM evstream.aggregates WHERE aggregate_type = 'order'), 1,
          'refused events create no aggregate');

SELECT throws_ok(
  $$SELECT evstream.register_event_type('order.cancelled', '{"properties": {"reason": {"type": "string", "minLenght": 3}}}')$$,
  '22023', 'invalid schema for event type order.cancelled: schema.properties.reason: unknown keyword "minLenght"',
  'a typo keyword is refused at registration');

SELECT throws_ok(
  $$SELECT evstream.register_event_type('order.cancelled', '{"type": "text"}')$$,
  '22023', NULL, 'an invalid schema is refused at registration');

SELECT throws_ok(
  $$SELECT evstream.register_event_type('order.refunded', '{"required": ["amount"]}', NULL, '{"reason": "x"}')$$,
  'EV003', 'example does not match the schema of order.refunded: example.amount: required property is missing',
  'an example must match the schema');

SELECT is((SELECT count(*)::int FROM evstream.event_types WHERE event_type IN ('order.cancelled', 'order.refunded')), 0,
          'refused registrations leave no row');

-- Re-registering changes the rule at once (the cached schema is dropped).
SELECT evstream.register_event_type('order.placed', '{"properties": {"price": {"maximum": 5}}}');
SELECT throws_ok(
  $$SELECT evstream.post_event('project:shop', 'order', 'o5', 'order.placed', '{"price": 7}')$$,
  'EV003', 'data.price: 7 is greater than maximum 5', 'a new schema replaces the cached one');

SET LOCAL evstream.require_registered_types = on;
SELECT throws_ok(
  $$SELECT evstream.post_event('project:shop', 'order', 'o6', 'order.unknown')$$,
  'EV007', 'event_type order.unknown is not registered',
  'require_registered_types refuses unregistered types');

SELECT * FROM finish();
ROLLBACK;
