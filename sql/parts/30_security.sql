-- ---------------------------------------------------------------------------------------------
-- Security: roles, row-level security from JWT claims, erasure.
-- Roles are cluster-wide: created when missing (a second database's CREATE EXTENSION finds them)
-- and never dropped by DROP EXTENSION (another database may still use them).
-- ---------------------------------------------------------------------------------------------
DO $$
DECLARE
  r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['evstream_reader', 'evstream_writer', 'evstream_admin', 'evstream_service'] LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
      BEGIN
        EXECUTE format('CREATE ROLE %I NOLOGIN', r);
      EXCEPTION WHEN duplicate_object OR unique_violation THEN
        NULL;  -- created concurrently by another database's CREATE EXTENSION
      END;
    END IF;
  END LOOP;
END
$$;

-- channel_allowed(channel): do the caller's claims (request.jwt.claims) allow this channel?
-- sub -> user:<sub>; projects[] -> project:<p>; channels[] -> exact names, trailing * = prefix.
-- Members of evstream_admin are allowed every channel.
CREATE FUNCTION evstream.channel_allowed(channel text) RETURNS boolean
  LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'evstream_channel_allowed';

-- _creator(created_by): the one identity rule, shared by post_event, post_events and publish.
-- Returns the created_by to store for the caller (the role outside any SECURITY DEFINER
-- function). Members of evstream_service (trusted writers: services writing as agent:<name> or
-- system) may pass any valid created_by; the default is user:<sub> of request.jwt.claims, else
-- system. Everyone else writes as user:<sub> of the claims: another value, or claims without a
-- sub, raise 42501. A malformed created_by raises 22023.
CREATE FUNCTION evstream._creator(created_by text) RETURNS text
  LANGUAGE c STABLE PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'evstream_creator';

ALTER TABLE evstream.events ENABLE ROW LEVEL SECURITY;
CREATE POLICY events_read ON evstream.events FOR SELECT
  USING (evstream.channel_allowed(channel));
CREATE POLICY events_write ON evstream.events FOR INSERT
  WITH CHECK (evstream.channel_allowed(channel));

CREATE TABLE evstream.erasures (
  id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  aggregate_type text        NOT NULL,
  aggregate_id   text        NOT NULL,
  event_count    integer     NOT NULL,
  event_ids      uuid[]      NOT NULL,
  positions      bigint[]    NOT NULL,
  channels       text[]      NOT NULL,
  erased_by      text        NOT NULL,
  claims         jsonb,
  erased_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE evstream.erasures IS 'Audit record of every evstream.erase_aggregate call.';

CREATE FUNCTION evstream.erase_aggregate(aggregate_type text, aggregate_id text) RETURNS bigint
  LANGUAGE c VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
  AS 'MODULE_PATHNAME', 'evstream_erase_aggregate';

-- Privileges: nothing for PUBLIC beyond what it needs to call the read API.
REVOKE ALL ON ALL TABLES IN SCHEMA evstream FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA evstream FROM PUBLIC;
GRANT USAGE ON SCHEMA evstream TO evstream_reader, evstream_writer, evstream_admin;

-- Readers: the log (filtered by RLS), the catalog, stats and their consumer state.
GRANT SELECT ON evstream.events, evstream.event_types, evstream.projections, evstream.transitions
  TO evstream_reader;
GRANT SELECT, INSERT, UPDATE ON evstream.consumer_checkpoints TO evstream_reader;
GRANT SELECT, INSERT ON evstream.consumer_failures TO evstream_reader;
GRANT EXECUTE ON FUNCTION evstream.read_after(bigint, integer, text[]),
                          evstream.stream(text, text, integer),
                          evstream.state_at(text, text, integer, timestamptz),
                          evstream.channel_allowed(text),
                          evstream.consume(text, integer, integer, integer),
                          evstream._advance(text, bigint, integer),
                          evstream.ack(text, bigint, integer),
                          evstream.fail(text, bigint, text, integer),
                          evstream.stats(),
                          evstream.events_by_correlation(uuid),
                          evstream.doorbell_rings()
  TO evstream_reader;

-- Writers: everything readers have, plus appending (RLS: only to channels their claims allow).
GRANT evstream_reader TO evstream_writer;
GRANT INSERT ON evstream.events TO evstream_writer;
GRANT SELECT, INSERT, UPDATE ON evstream.aggregates TO evstream_writer;
GRANT USAGE ON SEQUENCE evstream.events_position_seq TO evstream_writer;
GRANT EXECUTE ON FUNCTION evstream.post_event(text, text, text, text, jsonb, jsonb, text, integer,
                                              uuid, uuid, jsonb, text),
                          evstream.post_events(jsonb),
                          evstream._creator(text)
  TO evstream_writer;
-- Trusted writers: any created_by (agent:<name>, system). Not a writer by itself.
GRANT USAGE ON SCHEMA evstream TO evstream_service;

-- Admins: the catalog, rebuild, erasure and its audit; they see every channel (channel_allowed).
GRANT evstream_writer TO evstream_admin;
GRANT INSERT, UPDATE, DELETE ON evstream.event_types, evstream.projections, evstream.transitions
  TO evstream_admin;
GRANT SELECT ON evstream.erasures, evstream.consumer_checkpoints, evstream.consumer_failures
  TO evstream_admin;
GRANT EXECUTE ON FUNCTION evstream.register_event_type(text, jsonb, text, jsonb),
                          evstream.project_into(text, regclass, name, name),
                          evstream.allow_transition(text, text, text, text),
                          evstream.rebuild(text),
                          evstream.erase_aggregate(text, text)
  TO evstream_admin;
-- The triggers' functions run for whoever changes the tables.
GRANT EXECUTE ON FUNCTION evstream._refuse_change(), evstream._catalog_changed() TO PUBLIC;

