-- post_event and post_events set their search path (pg_catalog, pg_temp) in C, only when they
-- run SQL, rather than with a SET clause: a caller's hostile search path reaches none of their
-- SQL, theirs does not leak back to the caller after success or error, and functions they reach
-- keep their own search_path settings. A fresh session (pg_prove runs each file in its
-- own), so their statements are first prepared under the hostile path.
BEGIN;
SELECT plan(13);

CREATE SCHEMA sp_evil;
CREATE FUNCTION sp_evil.always(text, text) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT true';
CREATE OPERATOR sp_evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = sp_evil.always);
CREATE FUNCTION sp_evil.field(jsonb, text) RETURNS text LANGUAGE sql IMMUTABLE AS $$SELECT 'project:evil'$$;
CREATE OPERATOR sp_evil.->> (LEFTARG = jsonb, RIGHTARG = text, FUNCTION = sp_evil.field);
CREATE FUNCTION sp_evil.now() RETURNS timestamptz LANGUAGE sql AS $$SELECT 'epoch'::timestamptz$$;

-- (Nothing of pgTAP runs under the hostile path: its own "=" would be hijacked too.)
CREATE TEMP TABLE sp_seen (what text, value text);
SET LOCAL search_path = sp_evil, pg_catalog, public;
SELECT evstream.post_event('project:sp', 'doc', 'sp1', 'doc.created', '{"n": 1}', idempotency_key => 'sp-k1');
-- An evil "=" in the key lookup would find sp-k1's event here (and answer EV002).
SELECT evstream.post_event('project:sp', 'doc', 'sp2', 'doc.created', '{"n": 2}', idempotency_key => 'sp-k2');
-- An evil "->>" in the batch's unpacking would send every event to project:evil.
SELECT evstream.post_events('[{"channel": "project:sp", "aggregate_type": "doc", "aggregate_id": "sp3",
                               "event_type": "doc.created", "idempotency_key": "sp-k3"}]');
INSERT INTO pg_temp.sp_seen SELECT 'after calls', current_schemas(false)::text;
DO $$
BEGIN
  PERFORM evstream.post_event('project:sp', 'doc', 'sp1', 'doc.created', '{"n": 9}', idempotency_key => 'sp-k1');
  INSERT INTO pg_temp.sp_seen VALUES ('failing call', 'no error');
EXCEPTION WHEN OTHERS THEN
  INSERT INTO pg_temp.sp_seen VALUES ('failing call', SQLSTATE);
END
$$;
INSERT INTO pg_temp.sp_seen SELECT 'after failing call', current_schemas(false)::text;
RESET search_path;

SELECT is((SELECT value FROM sp_seen WHERE what = 'after calls'), '{sp_evil,pg_catalog,public}',
          'the caller''s search path is back after the calls');
SELECT is((SELECT value FROM sp_seen WHERE what = 'failing call'), 'EV002',
          'a failing call under the hostile path raises its own error (EV002)');
SELECT is((SELECT value FROM sp_seen WHERE what = 'after failing call'), '{sp_evil,pg_catalog,public}',
          'the caller''s search path is back after a failing call');

SELECT results_eq(
  $$SELECT aggregate_id, channel, idempotency_key FROM evstream.events WHERE aggregate_id LIKE 'sp_' ORDER BY 1$$,
  $$VALUES ('sp1'::text, 'project:sp'::text, 'sp-k1'::text), ('sp2', 'project:sp', 'sp-k2'),
           ('sp3', 'project:sp', 'sp-k3')$$,
  'three events with their own keys and channels: no hostile operator was used');
SELECT ok((SELECT bool_and(created_at = now()) FROM evstream.events WHERE aggregate_id LIKE 'sp_'),
          'created_at is pg_catalog.now(), not the caller''s now()');
SELECT is((SELECT version FROM evstream.post_event('project:sp', 'doc', 'sp1', 'doc.renamed')), 2,
          'after the hostile path, appends go on');
SELECT ok((SELECT bool_and(p.prosecdef AND p.proconfig IS NULL) FROM pg_proc p
            WHERE p.pronamespace = 'evstream'::regnamespace AND p.proname IN ('post_event', 'post_events')),
          'post_event and post_events: SECURITY DEFINER, search path fixed in C (no SET clause)');
SELECT ok((SELECT bool_and(p.proconfig @> ARRAY['search_path=pg_catalog, pg_temp']) FROM pg_proc p
            WHERE p.pronamespace = 'evstream'::regnamespace AND p.prosecdef
              AND p.proname NOT IN ('post_event', 'post_events')),
          'every other SECURITY DEFINER function sets search_path = pg_catalog, pg_temp');

-- What post_event reaches keeps its own search_path setting: a projection target's trigger
-- declared SET search_path = sp_app finds its unqualified table (an override search path
-- would have hidden it).
CREATE SCHEMA sp_app;
CREATE TABLE sp_app.audit (id text);
CREATE TABLE public.sp_docs (id text PRIMARY KEY, title text, version integer, updated_at timestamptz);
CREATE FUNCTION public.sp_note() RETURNS trigger LANGUAGE plpgsql SET search_path = sp_app AS
  $$BEGIN INSERT INTO audit VALUES (NEW.id); RETURN NEW; END$$;
CREATE TRIGGER sp_note AFTER INSERT OR UPDATE ON public.sp_docs FOR EACH ROW EXECUTE FUNCTION public.sp_note();
SELECT evstream.project_into('sp_doc', 'public.sp_docs');
SELECT lives_ok($$SELECT evstream.post_event('project:sp', 'sp_doc', 'sd1', 'sp_doc.created', '{"title": "t"}')$$,
                'a projection whose target trigger sets its own search_path works');
SELECT is((SELECT array_agg(id) FROM sp_app.audit), ARRAY['sd1'], 'the trigger ran with its own search_path');

-- A projection's domain check is the caller's code too: it runs under the fixed search path on
-- every call, whether or not the call ran SQL before it (with an idempotency key it does; without
-- one, the catalog cached, it does not). sp_valid names its table without a schema.
CREATE TABLE public.sp_skus (code text);
INSERT INTO public.sp_skus VALUES ('A1');
CREATE FUNCTION public.sp_valid(text) RETURNS boolean LANGUAGE plpgsql STABLE AS
  $$BEGIN IF $1 IS NULL THEN RETURN true; END IF; RETURN EXISTS (SELECT 1 FROM sp_skus WHERE code = $1); END$$;
CREATE DOMAIN public.sp_sku AS text CHECK (public.sp_valid(VALUE));
CREATE FUNCTION public.sp_valid2(text) RETURNS boolean LANGUAGE plpgsql STABLE SET search_path = public AS
  $$BEGIN IF $1 IS NULL THEN RETURN true; END IF; RETURN EXISTS (SELECT 1 FROM sp_skus WHERE code = $1); END$$;
CREATE DOMAIN public.sp_sku2 AS text CHECK (public.sp_valid2(VALUE));
CREATE TABLE public.sp_items (id text PRIMARY KEY, sku public.sp_sku, sku2 public.sp_sku2, version integer,
                              updated_at timestamptz);
SELECT evstream.project_into('sp_item', 'public.sp_items');
SET LOCAL search_path = public, pg_catalog;
SELECT throws_ok($$SELECT evstream.post_event('project:sp', 'sp_item', 'i1', 'sp_item.created', '{"sku": "A1"}',
                                                idempotency_key => 'sp-i1')$$,
                 '42P01', NULL, 'with a key: the domain check runs under the fixed search path');
SELECT throws_ok($$SELECT evstream.post_event('project:sp', 'sp_item', 'i2', 'sp_item.created', '{"sku": "A1"}')$$,
                 '42P01', NULL, 'without a key, catalog cached: the same search path');
RESET search_path;
SELECT is((evstream.post_event('project:sp', 'sp_item', 'i3', 'sp_item.created', '{"sku2": "A1"}')).version, 1,
          'a check function that sets its own search_path works');

SELECT * FROM finish();
ROLLBACK;
