-- read_after: the gap-free order (tx, position), channel filter, resuming, unknown positions.
-- (Concurrent behaviour — a held-open writer — is proven in tests/e2e/log_concurrency.test.mjs.)
BEGIN;
SELECT plan(5);

-- Everything written in this (still open) transaction is newer than the snapshot's xmin, so
-- read_after holds it back: readers never see what might still be overtaken.
SELECT evstream.post_event('project:ra', 'doc', 'ra1', 'doc.created');
SELECT is((SELECT count(*)::int FROM evstream.read_after(0, 100000) WHERE aggregate_id = 'ra1'), 0,
          'events of a running transaction are not returned');

SELECT throws_ok($$SELECT * FROM evstream.read_after(-1)$$, '22023',
                 'after_position must be 0 or more', 'negative position refused');
SELECT throws_ok($$SELECT * FROM evstream.read_after(0, 0)$$, '22023',
                 'max_count must be between 1 and 100000', 'max_count must be positive');
SELECT throws_ok($$SELECT * FROM evstream.read_after(9223372036854775807)$$, 'EV006',
                 'position 9223372036854775807 is not in the log', 'unknown position is an explicit error');
SELECT is((SELECT count(*)::int FROM evstream.read_after(0, 10, ARRAY['project:nobody'])), 0,
          'the channel filter applies');

SELECT * FROM finish();
ROLLBACK;
