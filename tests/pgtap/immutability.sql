-- The log is immutable: UPDATE, DELETE and TRUNCATE are refused, also for the owner.
BEGIN;
SELECT plan(5);

SELECT evstream.post_event('project:p1', 'document', 'imm_1', 'document.created');

SELECT throws_ok($$UPDATE evstream.events SET data = '{"x": 1}' WHERE aggregate_id = 'imm_1'$$,
                 'EV010', 'evstream.events is immutable: UPDATE is not allowed', 'UPDATE is refused');
SELECT throws_ok($$DELETE FROM evstream.events WHERE aggregate_id = 'imm_1'$$,
                 'EV010', 'evstream.events is immutable: DELETE is not allowed', 'DELETE is refused');
SELECT throws_ok($$TRUNCATE evstream.events$$,
                 'EV010', 'evstream.events is immutable: TRUNCATE is not allowed', 'TRUNCATE is refused');

SET LOCAL session_replication_role = replica;
SELECT throws_ok($$DELETE FROM evstream.events WHERE aggregate_id = 'imm_1'$$,
                 'EV010', NULL, 'DELETE is refused even with session_replication_role = replica');
RESET session_replication_role;

SELECT is((SELECT count(*)::int FROM evstream.events WHERE aggregate_id = 'imm_1'), 1,
          'the event is still there');

SELECT * FROM finish();
ROLLBACK;
