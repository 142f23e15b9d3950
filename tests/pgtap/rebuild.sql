-- rebuild: truncate + replay gives the table the appends maintained, also for a projection
-- registered after its events exist.
BEGIN;
SELECT plan(10);

CREATE TABLE public.live (id text PRIMARY KEY, title text, size integer, state text, version integer, updated_at timestamptz);
SELECT evstream.project_into('doc', 'public.live', 'id', 'state');
SELECT evstream.allow_transition('doc', NULL, 'doc.created', 'draft');
SELECT evstream.allow_transition('doc', 'draft', 'doc.edited', 'draft');
SELECT evstream.allow_transition('doc', 'draft', 'doc.published', 'published');
SELECT evstream.allow_transition('doc', 'published', 'doc.edited', 'draft');

-- 60 documents, 1..5 events each, incrementally projected.
SELECT evstream.post_event('project:p', 'doc', 'doc_' || i, 'doc.created', jsonb_build_object('title', 'T' || i, 'size', i))
  FROM generate_series(1, 60) i;
SELECT evstream.post_event('project:p', 'doc', 'doc_' || i, 'doc.edited', jsonb_build_object('size', i * 10))
  FROM generate_series(1, 60) i WHERE i % 2 = 0;
SELECT evstream.post_event('project:p', 'doc', 'doc_' || i, 'doc.published', '{}')
  FROM generate_series(1, 60) i WHERE i % 3 = 0;
SELECT evstream.post_event('project:p', 'doc', 'doc_' || i, 'doc.edited', jsonb_build_object('title', 'U' || i))
  FROM generate_series(1, 60) i WHERE i % 5 = 0;

CREATE TEMP TABLE incremental AS SELECT * FROM public.live;
SELECT is((SELECT count(*)::int FROM incremental), 60, 'the incremental table has every document');

SELECT is(evstream.rebuild('doc'),
          (SELECT count(*) FROM evstream.events WHERE aggregate_type = 'doc'),
          'rebuild returns the number of events replayed');
SELECT set_eq($$SELECT * FROM public.live$$, $$SELECT * FROM incremental$$,
              'the rebuilt table equals the incrementally maintained one');

-- A projection registered after the events exist.
CREATE TABLE public.late (id text PRIMARY KEY, title text, version integer);
SELECT is((SELECT count(*)::int FROM public.late), 0, 'a new projection starts empty');
SELECT evstream.project_into('doc', 'public.late');
SELECT is(evstream.rebuild('doc'), 60::bigint + 30 + 20 + 12, 'rebuild fills it from the log');
SELECT set_eq($$SELECT id, title, version FROM public.late$$, $$SELECT id, title, version FROM incremental$$,
              'with the same values the live projection had');

-- Rebuild replaces whatever the table held.
UPDATE public.late SET title = 'tampered' WHERE id = 'doc_1';
SELECT evstream.rebuild('doc');
SELECT is((SELECT title FROM public.late WHERE id = 'doc_1'), 'T1', 'rebuild truncates and replays');

-- Many aggregates with different sets of keys: rebuild writes them in multi-row batches per
-- set of columns, and the remainder one by one; the result is still the incremental table.
CREATE TABLE public.bulk (id text PRIMARY KEY, title text, size integer, version integer);
SELECT evstream.project_into('bulk', 'public.bulk');
SELECT evstream.post_event('project:p', 'bulk', 'b' || i, 'bulk.created',
         CASE WHEN i % 3 = 0 THEN jsonb_build_object('title', 'T' || i)
              WHEN i % 3 = 1 THEN jsonb_build_object('title', 'T' || i, 'size', i)
              ELSE '{}'::jsonb END)
  FROM generate_series(1, 700) i;
SELECT evstream.post_event('project:p', 'bulk', 'b' || i, 'bulk.sized', jsonb_build_object('size', -i))
  FROM generate_series(1, 700, 7) i;
CREATE TEMP TABLE bulk_incremental AS SELECT * FROM public.bulk;
SELECT is(evstream.rebuild('bulk'), 800::bigint, 'rebuild replays 800 events of 700 aggregates');
SELECT set_eq($$SELECT * FROM public.bulk$$, $$SELECT * FROM bulk_incremental$$,
              'batched rebuild equals the incrementally maintained table');

SELECT throws_ok($$SELECT evstream.rebuild('nothing')$$, '22023', 'aggregate type nothing has no projection',
                 'rebuild needs a projection');

SELECT * FROM finish();
ROLLBACK;
