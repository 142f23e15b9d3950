-- state_at: time travel by folding the log, touching no table.
BEGIN;
SELECT plan(9);

-- Without a projection: every data key, the version, and the state machine's state.
SELECT evstream.allow_transition('task', NULL, 'task.opened', 'open');
SELECT evstream.allow_transition('task', 'open', 'task.assigned', 'assigned');
SELECT evstream.allow_transition('task', 'assigned', 'task.closed', 'closed');
SELECT evstream.post_event('project:p', 'task', 't1', 'task.opened', '{"title": "Fix", "prio": 1}');
SELECT evstream.post_event('project:p', 'task', 't1', 'task.assigned', '{"assignee": "bob"}');
SELECT evstream.post_event('project:p', 'task', 't1', 'task.closed', '{"prio": 3}');

SELECT is(evstream.state_at('task', 't1', 1) - 'updated_at',
          '{"title": "Fix", "prio": 1, "version": 1, "status": "open"}'::jsonb, 'state at version 1');
SELECT is(evstream.state_at('task', 't1', 2) - 'updated_at',
          '{"title": "Fix", "prio": 1, "assignee": "bob", "version": 2, "status": "assigned"}'::jsonb,
          'state at version 2');
SELECT is(evstream.state_at('task', 't1') - 'updated_at',
          '{"title": "Fix", "prio": 3, "assignee": "bob", "version": 3, "status": "closed"}'::jsonb,
          'state now (no bound)');
SELECT is(evstream.state_at('task', 't1', 0), NULL, 'nothing before version 1');
SELECT is(evstream.state_at('task', 'nobody'), NULL, 'NULL for an unknown aggregate');
SELECT is(evstream.state_at('task', 't1', at_time => now() - interval '1 second'), NULL,
          'nothing existed before the first event''s time');
SELECT is((evstream.state_at('task', 't1', at_time => now()))->>'version', '3',
          'at_time includes events up to that time');

-- With a projection: the target's columns, keyed like the table.
CREATE TABLE public.tasks (id text PRIMARY KEY, title text, prio integer, status text, version integer);
SELECT evstream.project_into('task', 'public.tasks');
SELECT evstream.rebuild('task');
SELECT is(evstream.state_at('task', 't1', 2),
          '{"id": "t1", "title": "Fix", "prio": 1, "status": "assigned", "version": 2}'::jsonb,
          'with a projection, only its columns (assignee has none)');
SELECT is(evstream.state_at('task', 't1'), (SELECT to_jsonb(t) FROM public.tasks t WHERE id = 't1'),
          'the latest state equals the projected row');

SELECT * FROM finish();
ROLLBACK;
