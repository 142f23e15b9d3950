-- Projections: each appended event upserts the target row in the same transaction.
BEGIN;
SELECT plan(14);

CREATE TABLE public.documents (
  id text PRIMARY KEY, title text, pages integer, tags jsonb, status text,
  version integer, updated_at timestamptz, note text DEFAULT 'untouched'
);
CREATE TABLE public.no_key (id text, title text);

SELECT throws_ok($$SELECT evstream.project_into('thing', 'public.no_key')$$, '42P10',
                 'key column "id" of public.no_key has no unique index', 'the key column needs a unique index');
SELECT throws_ok($$SELECT evstream.project_into('thing', 'public.documents', 'nope')$$, '42703',
                 'key column "nope" does not exist in public.documents', 'the key column must exist');

SELECT lives_ok($$SELECT evstream.project_into('document', 'public.documents')$$, 'project_into registers');

SELECT evstream.post_event('project:p1', 'document', 'd1', 'document.created',
                           '{"title": "Plan", "pages": 3, "tags": ["a"], "unknown": 1, "version": 99}');
SELECT results_eq(
  $$SELECT id, title, pages, tags, status, version, note FROM public.documents$$,
  $$VALUES ('d1'::text, 'Plan'::text, 3, '["a"]'::jsonb, NULL::text, 1, 'untouched'::text)$$,
  'matching keys are written and cast, other keys ignored, version maintained, defaults kept');
SELECT ok((SELECT updated_at = now() FROM public.documents WHERE id = 'd1'), 'updated_at is maintained');

SELECT evstream.post_event('project:p1', 'document', 'd1', 'document.renamed', '{"title": "Plan B", "status": "draft"}');
SELECT results_eq(
  $$SELECT title, pages, status, version FROM public.documents WHERE id = 'd1'$$,
  $$VALUES ('Plan B'::text, 3, 'draft'::text, 2)$$,
  'a later event updates only the keys it carries (status is data without a state machine)');

SELECT evstream.post_event('project:p1', 'document', 'd1', 'document.cleared', '{"pages": null}');
SELECT is((SELECT pages FROM public.documents WHERE id = 'd1'), NULL::int, 'a JSON null writes NULL');

SELECT throws_ok(
  $$SELECT evstream.post_event('project:p1', 'document', 'd2', 'document.created', '{"pages": "many"}')$$,
  '22P02', 'cannot project data.pages into public.documents."pages": invalid input syntax for type integer: "many"',
  'a cast failure is a clear error naming the key and the column');
SELECT is((SELECT count(*)::int FROM evstream.events WHERE aggregate_id = 'd2'), 0,
          'when the projection fails, the event is not appended');
SELECT is((SELECT count(*)::int FROM public.documents WHERE id = 'd2'), 0, 'and no row is written');

-- A batch projects each event in order.
SELECT evstream.post_events('[
  {"channel": "project:p1", "aggregate_type": "document", "aggregate_id": "d3", "event_type": "document.created", "data": {"title": "A"}},
  {"channel": "project:p1", "aggregate_type": "document", "aggregate_id": "d3", "event_type": "document.renamed", "data": {"title": "B"}}]');
SELECT results_eq($$SELECT title, version FROM public.documents WHERE id = 'd3'$$,
                  $$VALUES ('B'::text, 2)$$, 'post_events projects every event in order');

-- A target with a non-text key: aggregate_id is cast to the key's type.
CREATE TABLE public.tickets (id integer PRIMARY KEY, subject text);
SELECT evstream.project_into('ticket', 'public.tickets');
SELECT evstream.post_event('project:p1', 'ticket', '42', 'ticket.opened', '{"subject": "Help"}');
SELECT results_eq($$SELECT id, subject FROM public.tickets$$, $$VALUES (42, 'Help'::text)$$,
                  'aggregate_id is cast to the key column type');
SELECT throws_ok($$SELECT evstream.post_event('project:p1', 'ticket', 'abc', 'ticket.opened')$$,
                 '22P02', NULL, 'an aggregate_id that does not fit the key column is refused');

-- A dropped target is an error (not a silently skipped projection) until the projection is
-- registered again or removed.
DROP TABLE public.tickets;
SELECT throws_like($$SELECT evstream.post_event('project:p1', 'ticket', '43', 'ticket.opened')$$,
                   'the projection target of ticket (oid %) no longer exists',
                   'appends to a type whose projection target was dropped are refused');

SELECT * FROM finish();
ROLLBACK;
