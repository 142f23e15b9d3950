-- Hostile roles (issue 10 items 1-4): a role with only LOGIN, a reader, a writer whose claims
-- cover one project, a role limited by channel grants, and an admin that is not superuser try
-- every attack of the issue. Each fails with a clear SQLSTATE; the log and evstream's state are
-- unchanged; no user code runs with the owner's rights.
-- Attempts run as those roles through pg_temp.try, which records the outcome; assertions run
-- after RESET ROLE (pgTAP's bookkeeping belongs to the superuser).
BEGIN;
SELECT plan(70);

CREATE ROLE hr_login LOGIN;
CREATE ROLE hr_reader NOLOGIN IN ROLE evstream_reader;
CREATE ROLE hr_writer NOLOGIN IN ROLE evstream_writer;
CREATE ROLE hr_bound NOLOGIN IN ROLE evstream_writer;
CREATE ROLE hr_admin NOLOGIN IN ROLE evstream_admin;

-- Tenants' data, written by the owner.
CREATE TABLE public.hr_docs (id text PRIMARY KEY, title text, status text, version int);
SELECT evstream.allow_transition('hr_doc', NULL, 'doc.created', 'draft');
SELECT evstream.allow_transition('hr_doc', 'draft', 'doc.published', 'published');
SELECT evstream.project_into('hr_doc', 'public.hr_docs');
SELECT evstream.post_event('project:a', 'hr_doc', 'a1', 'doc.created', '{"title": "A"}');
SELECT evstream.post_event('project:b', 'hr_doc', 'b1', 'doc.created', '{"title": "B"}');
SELECT evstream.post_event('project:b', 'hr_doc', 'b2', 'doc.created', '{"title": "B2"}');
SELECT count(*) FROM evstream.consume('hr_b_consumer');  -- the owner's consumer
SELECT evstream.fail('hr_b_consumer', (SELECT max(position) FROM evstream.events), 'secret failure of b');
SELECT evstream.erase_aggregate('hr_doc', 'b2');

-- Owner-written trigger-free target; the admin's own table with a hostile trigger comes later.
GRANT SELECT, INSERT, UPDATE ON public.hr_docs TO hr_writer, hr_bound;

-- What must not change.
CREATE TEMP TABLE before_state AS
  SELECT (SELECT count(*) FROM evstream.events) AS events,
         (SELECT max(position) FROM evstream.events) AS last_position,
         (SELECT md5(string_agg(a::text, ',' ORDER BY aggregate_type, aggregate_id)) FROM evstream.aggregates a) AS aggregates,
         (SELECT md5(string_agg(k::text, ',' ORDER BY consumer, member)) FROM evstream.consumer_checkpoints k) AS checkpoints,
         (SELECT count(*) FROM evstream.consumer_failures) AS failures,
         (SELECT count(*) FROM evstream.event_types) + (SELECT count(*) FROM evstream.transitions)
           + (SELECT count(*) FROM evstream.projections) AS catalog;

CREATE TEMP TABLE outcome (who text, result text);
CREATE TEMP TABLE seen (who text, value text);
GRANT INSERT ON outcome, seen TO PUBLIC;
CREATE FUNCTION pg_temp.try(who text, stmt text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE stmt;
  INSERT INTO outcome VALUES (who, 'ok');
EXCEPTION WHEN OTHERS THEN
  INSERT INTO outcome VALUES (who, SQLSTATE || ': ' || SQLERRM);
END
$$;
GRANT EXECUTE ON FUNCTION pg_temp.try(text, text) TO PUBLIC;
CREATE FUNCTION pg_temp.code(who text) RETURNS text LANGUAGE sql AS
  $$SELECT left(result, 5) FROM outcome WHERE outcome.who = code.who$$;

-- 1. A role with only LOGIN.
SET LOCAL ROLE hr_login;
SELECT pg_temp.try('login-insert', $$INSERT INTO evstream.events (channel, aggregate_type, aggregate_id, version, event_type, tx)
                                      VALUES ('project:a', 'hr_doc', 'a1', 9, 'x', '3')$$);
SELECT pg_temp.try('login-select', $$SELECT count(*) FROM evstream.events$$);
SELECT pg_temp.try('login-post', $$SELECT evstream.post_event('project:a', 'hr_doc', 'a9', 'doc.created')$$);
SELECT pg_temp.try('login-consume', $$SELECT evstream.consume('hr_b_consumer')$$);
SELECT pg_temp.try('login-ack', $$SELECT evstream.ack('hr_b_consumer', 1)$$);
SELECT pg_temp.try('login-creator', $$SELECT evstream._creator('system')$$);
SELECT pg_temp.try('login-grant', $$SELECT evstream.grant_channels('hr_login', '{project:*}')$$);
RESET ROLE;

-- 2. A reader whose claims cover project a.
SET LOCAL ROLE hr_reader;
SET LOCAL request.jwt.claims = '{"sub": "rita", "projects": ["a"]}';
SELECT pg_temp.try('reader-insert', $$INSERT INTO evstream.events (channel, aggregate_type, aggregate_id, version, event_type)
                                       VALUES ('project:a', 'hr_doc', 'a1', 9, 'x')$$);
SELECT pg_temp.try('reader-update-agg', $$UPDATE evstream.aggregates SET state = 'published'$$);
SELECT pg_temp.try('reader-update-states', $$UPDATE evstream.aggregate_states SET state = 'published'$$);
SELECT pg_temp.try('reader-move-checkpoint', $$UPDATE evstream.consumer_checkpoints SET position = 0$$);
SELECT pg_temp.try('reader-insert-checkpoint', $$INSERT INTO evstream.consumer_checkpoints (consumer, member, owner_role)
                                                  VALUES ('x', 0, 10)$$);
SELECT pg_temp.try('reader-insert-failure', $$INSERT INTO evstream.consumer_failures (consumer, member, position, error, attempts, owner_role)
                                               VALUES ('x', 0, 1, 'e', 1, 10)$$);
SELECT pg_temp.try('reader-ack-other', $$SELECT evstream.ack('hr_b_consumer', (SELECT max(position) FROM evstream.events))$$);
SELECT pg_temp.try('reader-fail-other', $$SELECT evstream.fail('hr_b_consumer', (SELECT max(position) FROM evstream.events), 'x')$$);
SELECT pg_temp.try('reader-consume-other', $$SELECT evstream.consume('hr_b_consumer')$$);
SELECT pg_temp.try('reader-advance', $$SELECT evstream._advance('hr_b_consumer', 1, 0)$$);
SELECT pg_temp.try('reader-post', $$SELECT evstream.post_event('project:a', 'hr_doc', 'a9', 'doc.created')$$);
SELECT pg_temp.try('reader-erase', $$SELECT evstream.erase_aggregate('hr_doc', 'a1')$$);
SELECT pg_temp.try('reader-truncate', $$TRUNCATE evstream.consumer_checkpoints$$);
INSERT INTO seen SELECT 'reader-aggregates', aggregate_id FROM evstream.aggregates WHERE aggregate_type = 'hr_doc';
INSERT INTO seen SELECT 'reader-checkpoints', consumer FROM evstream.consumer_checkpoints;
INSERT INTO seen SELECT 'reader-failures', error FROM evstream.consumer_failures;
INSERT INTO seen SELECT 'reader-erasures', aggregate_id FROM evstream.erasures;
INSERT INTO seen SELECT 'reader-stats', event_type || '=' || events FROM evstream.stats() WHERE event_type = 'doc.created';
RESET ROLE;

-- 3. A writer whose claims cover project a (sub u1).
SET LOCAL ROLE hr_writer;
SET LOCAL request.jwt.claims = '{"sub": "u1", "projects": ["a"]}';
SELECT pg_temp.try('writer-insert-low-tx', $$INSERT INTO evstream.events (channel, aggregate_type, aggregate_id, version, event_type, tx, created_by)
                                              VALUES ('project:a', 'hr_doc', 'a1', 2, 'doc.published', '3', 'user:bob')$$);
SELECT pg_temp.try('writer-update-agg', $$UPDATE evstream.aggregates SET state = 'published', version = 1000000 WHERE aggregate_id = 'a1'$$);
SELECT pg_temp.try('writer-delete-agg', $$DELETE FROM evstream.aggregates$$);
SELECT pg_temp.try('writer-update-states', $$UPDATE evstream.aggregate_states SET state = 'published' WHERE aggregate_id = 'a1'$$);
SELECT pg_temp.try('writer-delete-states', $$DELETE FROM evstream.aggregate_states$$);
SELECT pg_temp.try('writer-nextval', $$SELECT nextval('evstream.events_position_seq')$$);
SELECT pg_temp.try('writer-catalog', $$INSERT INTO evstream.transitions VALUES ('hr_doc', 'draft', 'doc.hacked', 'published')$$);
SELECT pg_temp.try('writer-register', $$SELECT evstream.register_event_type('doc.hacked')$$);
SELECT pg_temp.try('writer-transition', $$SELECT evstream.allow_transition('hr_doc', 'draft', 'doc.hacked', 'published')$$);
SELECT pg_temp.try('writer-grant-self', $$SELECT evstream.grant_channels('hr_writer', '{project:*}')$$);
SELECT pg_temp.try('writer-post-b', $$SELECT evstream.post_event('project:b', 'hr_doc', 'b9', 'doc.created')$$);
SELECT pg_temp.try('writer-forge', $$SELECT evstream.post_event('project:a', 'hr_doc', 'a8', 'doc.created', created_by => 'user:bob')$$);
SELECT pg_temp.try('writer-skip-fsm', $$SELECT evstream.post_event('project:a', 'hr_doc', 'a1', 'doc.archived')$$);
INSERT INTO seen SELECT 'writer-aggregates', aggregate_id FROM evstream.aggregates WHERE aggregate_type = 'hr_doc';
RESET ROLE;

-- 4. A role limited by channel grants: its claims are its own to set, so they are not trusted.
SELECT evstream.grant_channels('hr_bound', '{project:a}');
SET LOCAL ROLE hr_bound;
SET LOCAL request.jwt.claims = '{"sub": "bob", "projects": ["a", "b"], "channels": ["project:*"]}';
INSERT INTO seen SELECT 'bound-events', channel FROM evstream.events WHERE aggregate_type = 'hr_doc';
SELECT pg_temp.try('bound-post-b', $$SELECT evstream.post_event('project:b', 'hr_doc', 'b9', 'doc.created')$$);
SELECT pg_temp.try('bound-as-bob', $$SELECT evstream.post_event('project:a', 'hr_doc', 'a7', 'doc.created', created_by => 'user:bob')$$);
INSERT INTO seen SELECT 'bound-creator', evstream._creator(NULL);
SELECT pg_temp.try('bound-revoke', $$SELECT evstream.revoke_channels('hr_bound')$$);
RESET ROLE;

-- evstreamd's role reads every channel (it filters by token itself), without being an admin.
CREATE ROLE hr_daemon NOLOGIN IN ROLE evstream_daemon;
SET LOCAL ROLE hr_daemon;
SET LOCAL request.jwt.claims = '';
INSERT INTO seen SELECT 'daemon-events', channel FROM evstream.events WHERE aggregate_type = 'hr_doc';
SELECT pg_temp.try('daemon-erase', $$SELECT evstream.erase_aggregate('hr_doc', 'a1')$$);
RESET ROLE;

-- 5. An admin that is not superuser.
GRANT CREATE ON SCHEMA public TO hr_admin;
CREATE SCHEMA hr_evil AUTHORIZATION hr_admin;
SET LOCAL ROLE hr_admin;
SET LOCAL request.jwt.claims = '{"sub": "ops"}';
SELECT pg_temp.try('admin-insert', $$INSERT INTO evstream.events (channel, aggregate_type, aggregate_id, version, event_type)
                                      VALUES ('project:a', 'hr_doc', 'a1', 9, 'x')$$);
SELECT pg_temp.try('admin-update-catalog', $$UPDATE evstream.transitions SET to_state = 'published'$$);
SELECT pg_temp.try('admin-delete-erasures', $$DELETE FROM evstream.erasures$$);
SELECT pg_temp.try('admin-truncate', $$TRUNCATE evstream.events$$);
SELECT pg_temp.try('admin-grants-table', $$INSERT INTO evstream.channel_grants (role, channel) VALUES (1, 'project:a')$$);
SELECT pg_temp.try('admin-project-foreign', $$SELECT evstream.project_into('hr_doc', 'public.hr_docs')$$);
-- The escalation of the issue: a projection target whose BEFORE DELETE trigger tries to make
-- the admin superuser; erase_aggregate deletes the projected row.
CREATE TABLE public.hr_trap (id text PRIMARY KEY, title text, status text, version int);
CREATE TABLE public.hr_trap_log (who text, super boolean);
CREATE FUNCTION public.hr_trap_fn() RETURNS trigger LANGUAGE plpgsql AS $t$
BEGIN
  INSERT INTO public.hr_trap_log VALUES (current_user, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user));
  BEGIN
    ALTER ROLE hr_admin SUPERUSER;
  EXCEPTION WHEN insufficient_privilege THEN
    NULL;
  END;
  IF TG_OP = 'DELETE' THEN
    RETURN OLD;
  END IF;
  RETURN NEW;
END
$t$;
CREATE TRIGGER hr_trap_del BEFORE DELETE ON public.hr_trap FOR EACH ROW EXECUTE FUNCTION public.hr_trap_fn();
CREATE TRIGGER hr_trap_ins BEFORE INSERT ON public.hr_trap FOR EACH ROW EXECUTE FUNCTION public.hr_trap_fn();
SELECT pg_temp.try('admin-project-trap', $$SELECT evstream.project_into('hr_trap', 'public.hr_trap')$$);
SELECT pg_temp.try('admin-post-trap', $$SELECT evstream.post_event('project:a', 'hr_trap', 't1', 'trap.created', '{"title": "t"}')$$);
SELECT pg_temp.try('admin-erase-trap', $$SELECT evstream.erase_aggregate('hr_trap', 't1')$$);
-- A hostile search_path does not reach definer code: a format() that would redirect the
-- projection is ignored.
CREATE FUNCTION hr_evil.format(text, name, name) RETURNS text LANGUAGE sql AS $f$SELECT 'public.hr_docs'$f$;
SET LOCAL search_path = hr_evil, pg_catalog, public;
SELECT evstream.project_into('hr_trap', 'public.hr_trap');  -- drops every cached configuration
SELECT pg_temp.try('admin-evil-state-at', $$SELECT evstream.state_at('hr_trap', 't1')$$);
SELECT pg_temp.try('admin-evil-post', $$SELECT evstream.post_event('project:a', 'hr_trap', 't2', 'trap.created', '{"title": "t2"}')$$);
RESET search_path;
-- rebuild truncates and rewrites the target with the admin's rights (evstream's own tables as
-- the owner): refused on a table the admin cannot truncate, fine once it may.
SELECT pg_temp.try('admin-rebuild-foreign', $$SELECT evstream.rebuild('hr_doc')$$);
SELECT pg_temp.try('admin-remove-projection', $$SELECT evstream.remove_projection('hr_nothing')$$);
RESET ROLE;
GRANT SELECT, INSERT, UPDATE, TRUNCATE ON public.hr_docs TO hr_admin;
SET LOCAL ROLE hr_admin;
SELECT pg_temp.try('admin-rebuild', $$SELECT evstream.rebuild('hr_doc')$$);
RESET ROLE;
SET LOCAL ROLE hr_writer;
SELECT pg_temp.try('writer-remove-projection', $$SELECT evstream.remove_projection('hr_doc')$$);
SELECT pg_temp.try('writer-rebuild', $$SELECT evstream.rebuild('hr_doc')$$);
RESET ROLE;

-- Outcomes: LOGIN only.
SELECT is(pg_temp.code('login-insert'), '42501', 'LOGIN only: INSERT into the log is refused (42501)');
SELECT is(pg_temp.code('login-select'), '42501', 'LOGIN only: reading the log is refused');
SELECT is(pg_temp.code('login-post'), '42501', 'LOGIN only: post_event is refused');
SELECT is(pg_temp.code('login-consume'), '42501', 'LOGIN only: consume is refused');
SELECT is(pg_temp.code('login-ack'), '42501', 'LOGIN only: ack is refused');
SELECT is(pg_temp.code('login-creator'), '42501', 'LOGIN only: _creator is refused');
SELECT is(pg_temp.code('login-grant'), '42501', 'LOGIN only: grant_channels is refused');
-- Reader.
SELECT is(pg_temp.code('reader-insert'), '42501', 'reader: INSERT into the log is refused');
-- evstream.aggregates is a view over the log: no one can write it (55000, not updatable).
SELECT is(pg_temp.code('reader-update-agg'), '55000', 'reader: UPDATE of aggregates (a view) is refused');
SELECT is(pg_temp.code('reader-update-states'), '42501', 'reader: UPDATE of aggregate states is refused');
SELECT is(pg_temp.code('reader-move-checkpoint'), '42501', 'reader: moving checkpoints directly is refused');
SELECT is(pg_temp.code('reader-insert-checkpoint'), '42501', 'reader: creating checkpoints directly is refused');
SELECT is(pg_temp.code('reader-insert-failure'), '42501', 'reader: writing failures directly is refused');
SELECT is((SELECT result FROM outcome WHERE who = 'reader-ack-other'), '42501: permission denied for consumer hr_b_consumer',
          'reader: ack of another role''s consumer is refused');
SELECT is(pg_temp.code('reader-fail-other'), '42501', 'reader: fail of another role''s consumer is refused');
SELECT is(pg_temp.code('reader-consume-other'), '42501', 'reader: consuming another role''s consumer is refused');
SELECT is(pg_temp.code('reader-advance'), '42501', 'reader: the internal _advance is not callable');
SELECT is(pg_temp.code('reader-post'), '42501', 'reader: post_event is refused');
SELECT is(pg_temp.code('reader-erase'), '42501', 'reader: erase_aggregate is refused');
SELECT is(pg_temp.code('reader-truncate'), '42501', 'reader: TRUNCATE is refused');
SELECT set_eq($$SELECT value FROM seen WHERE who = 'reader-aggregates'$$, ARRAY['a1'],
              'reader: aggregates of other tenants are invisible');
SELECT is((SELECT count(*)::int FROM seen WHERE who IN ('reader-checkpoints', 'reader-failures')), 0,
          'reader: other roles'' checkpoints and failure messages are invisible');
SELECT is((SELECT count(*)::int FROM seen WHERE who = 'reader-erasures'), 0,
          'reader: erasures of other channels are invisible');
SELECT set_eq($$SELECT value FROM seen WHERE who = 'reader-stats'$$, ARRAY['doc.created=1'],
              'reader: stats() counts only its channels');
-- Writer.
SELECT is(pg_temp.code('writer-insert-low-tx'), '42501', 'writer: INSERT with a forged tx, version and created_by is refused');
SELECT is(pg_temp.code('writer-update-agg'), '55000', 'writer: UPDATE of another tenant''s aggregate (a view) is refused');
SELECT is(pg_temp.code('writer-delete-agg'), '55000', 'writer: DELETE of aggregates (a view) is refused');
SELECT is(pg_temp.code('writer-update-states'), '42501', 'writer: UPDATE of aggregate states is refused');
SELECT is(pg_temp.code('writer-delete-states'), '42501', 'writer: DELETE of aggregate states is refused');
SELECT is(pg_temp.code('writer-nextval'), '42501', 'writer: positions cannot be taken directly');
SELECT is(pg_temp.code('writer-catalog'), '42501', 'writer: the catalog tables are not writable');
SELECT is(pg_temp.code('writer-register'), '42501', 'writer: register_event_type is refused');
SELECT is(pg_temp.code('writer-transition'), '42501', 'writer: allow_transition is refused');
SELECT is(pg_temp.code('writer-grant-self'), '42501', 'writer: it cannot grant itself channels');
SELECT is(pg_temp.code('writer-post-b'), 'EV005', 'writer: posting to another project is EV005');
SELECT is(pg_temp.code('writer-forge'), '42501', 'writer: writing as another user is 42501');
SELECT is(pg_temp.code('writer-skip-fsm'), 'EV004', 'writer: the state machine still applies');
SELECT set_eq($$SELECT value FROM seen WHERE who = 'writer-aggregates'$$, ARRAY['a1'],
              'writer: aggregates of other tenants are invisible');
-- Role bound by channel grants.
SELECT set_eq($$SELECT DISTINCT value FROM seen WHERE who = 'bound-events'$$, ARRAY['project:a'],
              'bound role: sees only its granted channels whatever its claims say');
SELECT is(pg_temp.code('bound-post-b'), 'EV005', 'bound role: posting outside its grants is EV005');
SELECT is(pg_temp.code('bound-as-bob'), '42501', 'bound role: the claims'' sub is not its identity');
SELECT is((SELECT value FROM seen WHERE who = 'bound-creator'), 'user:hr_bound', 'bound role: it writes as user:<role name>');
SELECT is(pg_temp.code('bound-revoke'), '42501', 'bound role: it cannot revoke its own grants');
SELECT set_eq($$SELECT DISTINCT value FROM seen WHERE who = 'daemon-events'$$, ARRAY['project:a', 'project:b'],
              'evstream_daemon: sees every channel without claims');
SELECT is(pg_temp.code('daemon-erase'), '42501', 'evstream_daemon: but is no admin');
-- Admin (not superuser).
SELECT is(pg_temp.code('admin-insert'), '42501', 'admin: INSERT into the log is refused');
SELECT is(pg_temp.code('admin-update-catalog'), '42501', 'admin: the catalog is written only through its functions');
SELECT is(pg_temp.code('admin-delete-erasures'), '42501', 'admin: the erasure audit cannot be deleted');
SELECT is(pg_temp.code('admin-truncate'), '42501', 'admin: TRUNCATE of the log is refused');
SELECT is(pg_temp.code('admin-grants-table'), '42501', 'admin: grants are written only through grant_channels');
SELECT is(pg_temp.code('admin-project-foreign'), '42501', 'admin: it cannot project into a table it cannot write');
SELECT is((SELECT result FROM outcome WHERE who = 'admin-project-trap'), 'ok', 'admin: it projects into its own table');
SELECT is((SELECT result FROM outcome WHERE who = 'admin-post-trap'), 'ok', 'admin: appends write its table');
SELECT is((SELECT result FROM outcome WHERE who = 'admin-erase-trap'), 'ok', 'admin: it erases the aggregate');
SELECT is((SELECT count(*)::int FROM public.hr_trap_log), 3, 'the target''s triggers ran for both inserts and the delete');
SELECT set_eq($$SELECT DISTINCT who || ':' || super FROM public.hr_trap_log$$, ARRAY['hr_admin:false'],
              'the target''s triggers ran as the admin, never as the owner');
SELECT ok(NOT (SELECT rolsuper FROM pg_roles WHERE rolname = 'hr_admin'), 'the admin did not become superuser');
SELECT is((SELECT result FROM outcome WHERE who = 'admin-evil-post'), 'ok', 'admin: a post under a hostile search_path works');
SELECT ok(EXISTS (SELECT 1 FROM public.hr_trap WHERE id = 't2') AND NOT EXISTS (SELECT 1 FROM public.hr_docs WHERE id = 't2'),
          'and projects into the registered target, not where the hostile format() points');
SELECT is(pg_temp.code('admin-rebuild-foreign'), '42501', 'admin: rebuild of a target it cannot truncate is refused');
SELECT is(pg_temp.code('admin-remove-projection'), 'ok', 'admin: remove_projection runs');
SELECT is(pg_temp.code('admin-rebuild'), 'ok', 'admin: rebuild of a target it may write runs (states written by the owner)');
SELECT set_eq($$SELECT id || ':' || status FROM public.hr_docs$$, ARRAY['a1:draft', 'b1:draft'],
              'and the rebuilt projection is right');
SELECT is(pg_temp.code('writer-remove-projection'), '42501', 'writer: remove_projection is refused');
SELECT is(pg_temp.code('writer-rebuild'), '42501', 'writer: rebuild is refused');
-- Nothing changed but what the API did.
SELECT is((SELECT count(*) FROM evstream.events WHERE aggregate_type <> 'hr_trap'), (SELECT events FROM before_state),
          'the log of the attacked tenants is unchanged');
SELECT is((SELECT md5(string_agg(a::text, ',' ORDER BY aggregate_type, aggregate_id)) FROM evstream.aggregates a
            WHERE aggregate_type <> 'hr_trap'), (SELECT aggregates FROM before_state), 'aggregates are unchanged');
SELECT is((SELECT md5(string_agg(k::text, ',' ORDER BY consumer, member)) FROM evstream.consumer_checkpoints k
           ), (SELECT checkpoints FROM before_state),
          'other consumers'' checkpoints are unchanged');
SELECT is((SELECT count(*) FROM evstream.consumer_failures), (SELECT failures FROM before_state), 'failures are unchanged');
SELECT is((SELECT count(*) FROM evstream.event_types) + (SELECT count(*) FROM evstream.transitions)
            + (SELECT count(*) FROM evstream.projections WHERE aggregate_type <> 'hr_trap'),
          (SELECT catalog FROM before_state), 'the catalog is unchanged');

SELECT * FROM finish();
ROLLBACK;
