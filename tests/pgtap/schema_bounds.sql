-- Hostile JSON Schemas: patterns run on RE2 (linear time, bounded memory), patterns RE2 cannot
-- run and oversized or out-of-range schemas are refused at registration with an SQLSTATE, a
-- writer's post_event against a catastrophic pattern returns at once, and statement_timeout
-- interrupts a long validation.
BEGIN;
SELECT plan(16);

CREATE ROLE sb_writer NOLOGIN IN ROLE evstream_writer;

-- Refusals at registration.
SELECT throws_ok(
  $$SELECT evstream.register_event_type('sb.backref', '{"properties": {"code": {"pattern": "^(a)\\1$"}}}')$$,
  '2201B', NULL, 'a backreference is refused as an invalid regular expression');
SELECT throws_like(
  $$SELECT evstream.register_event_type('sb.lookahead', '{"pattern": "^(?=a)a$"}')$$,
  'invalid schema for event type sb.lookahead: schema.pattern: is not a valid regular expression for RE2 (%); backreferences and lookaround are not supported',
  'lookaround is refused with a message naming the place and the cause');
SELECT throws_ok(
  $$SELECT evstream.register_event_type('sb.lookbehind', '{"pattern": "(?<!a)b"}')$$,
  '2201B', NULL, 'lookbehind is refused');
SELECT throws_ok(
  $$SELECT evstream.register_event_type('sb.huge', '{"minLength": 1e300}')$$,
  '22023', 'invalid schema for event type sb.huge: schema.minLength: must be an integer from 0 to 2147483647',
  'minLength 1e300 is refused, not cast');
SELECT throws_ok(
  $$SELECT evstream.register_event_type('sb.negative', '{"maxItems": -1}')$$,
  '22023', 'invalid schema for event type sb.negative: schema.maxItems: must be an integer from 0 to 2147483647',
  'a negative count is refused');
SELECT throws_ok(
  $$SELECT evstream.register_event_type('sb.fraction', '{"maxLength": 2.5}')$$,
  '22023', 'invalid schema for event type sb.fraction: schema.maxLength: must be an integer from 0 to 2147483647',
  'a fractional count is refused');
SELECT throws_ok(
  $$SELECT evstream.register_event_type('sb.deep', (repeat('{"items": ', 70) || '{}' || repeat('}', 70))::jsonb)$$,
  '54000', 'invalid schema for event type sb.deep: schema: is nested deeper than 64 levels',
  'a schema nested too deep is refused');
SELECT throws_ok(
  $$SELECT evstream.register_event_type('sb.long', jsonb_build_object('pattern', repeat('a', 5000)))$$,
  '54000', 'invalid schema for event type sb.long: schema.pattern: pattern of 5000 bytes is longer than the limit of 4096',
  'an overlong pattern is refused');
SELECT throws_ok(
  $$SELECT evstream.register_event_type('sb.big', jsonb_build_object('enum', (SELECT jsonb_agg(i) FROM generate_series(1, 20000) i)))$$,
  '54000', 'invalid schema for event type sb.big: schema: has more than 10000 JSON values',
  'an oversized schema is refused');
SELECT is((SELECT count(*)::int FROM evstream.event_types WHERE event_type LIKE 'sb.%'), 0,
          'nothing refused reaches the catalog');

-- A catastrophic pattern for backtracking engines, posted against by a writer.
SELECT lives_ok(
  $$SELECT evstream.register_event_type('sb.word', '{"properties": {"w": {"type": "string", "pattern": "^(a+)+$"}, "z": {"type": "string", "pattern": "^(a*?)*$"}}}')$$,
  'nested quantifiers register (RE2 runs them in linear time)');

CREATE TEMP TABLE outcome (who text, result text, took interval);
GRANT INSERT ON outcome TO PUBLIC;
CREATE FUNCTION pg_temp.try(who text, stmt text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  t0 timestamptz := clock_timestamp();
BEGIN
  EXECUTE stmt;
  INSERT INTO outcome VALUES (who, 'ok', clock_timestamp() - t0);
EXCEPTION WHEN OTHERS OR query_canceled THEN
  INSERT INTO outcome VALUES (who, SQLSTATE || ': ' || SQLERRM, clock_timestamp() - t0);
END
$$;
GRANT EXECUTE ON FUNCTION pg_temp.try(text, text) TO PUBLIC;

SET LOCAL ROLE sb_writer;
SET LOCAL request.jwt.claims = '{"sub": "wes", "projects": ["a"]}';
SELECT pg_temp.try('forty', $$SELECT evstream.post_event('project:a', 'word', 'w1', 'sb.word',
                                 jsonb_build_object('w', repeat('a', 40) || '!'))$$);
SELECT pg_temp.try('lazy', $$SELECT evstream.post_event('project:a', 'word', 'w2', 'sb.word',
                                 jsonb_build_object('z', repeat('a', 20000) || 'b'))$$);
RESET ROLE;

SELECT is((SELECT result FROM outcome WHERE who = 'forty'),
          'EV003: data.w: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!" does not match pattern "^(a+)+$"',
          'a writer''s 40 characters against ^(a+)+$ are refused');
SELECT ok((SELECT took < interval '2 seconds' FROM outcome WHERE who = 'forty'), 'and promptly');
SELECT ok((SELECT result LIKE 'EV003: data.z: "aaaa%does not match pattern "^(a*?)*$"' AND took < interval '2 seconds'
             FROM outcome WHERE who = 'lazy'),
          '20 000 characters against ^(a*?)*$ neither crash the backend nor stall it');

-- statement_timeout interrupts a long validation (each match is short; the walk polls between).
SELECT evstream.register_event_type('sb.slow',
  '{"properties": {"items": {"type": "array", "items": {"type": "string", "pattern": "(a|b)*a(a|b){200}c"}}}}');
-- 200 strings of 23 000 pseudo-random a/b (RE2's DFA gives up on this pattern, its NFA takes
-- ~0.1 s per string), each a match: the whole validation takes ~20 s.
CREATE TEMP TABLE big AS
  WITH ab AS (SELECT translate(string_agg(md5(i::text), ''), '0123456789abcdef', 'abababababababab') AS t
                FROM generate_series(1, 719) i)
  SELECT jsonb_build_object('items', jsonb_agg(t || 'a' || repeat('b', 200) || 'c')) AS data
    FROM ab, generate_series(1, 200);
SET LOCAL statement_timeout = '300ms';
SELECT pg_temp.try('timeout', $$SELECT evstream.post_event('project:a', 'slow', 's1', 'sb.slow', (SELECT data FROM big))$$);
RESET statement_timeout;
SELECT is((SELECT result FROM outcome WHERE who = 'timeout'),
          '57014: canceling statement due to statement timeout', 'statement_timeout cancels the validation');
SELECT ok((SELECT took < interval '3 seconds' FROM outcome WHERE who = 'timeout'),
          'soon after the timeout (the whole validation would take ~20 s)');

SELECT * FROM finish();
ROLLBACK;
