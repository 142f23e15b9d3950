-- ---------------------------------------------------------------------------------------------
-- Security: roles, the channel and identity rules, row-level security, erasure, privileges.
-- The full model (who may do what, when claims can be trusted) is in the README, "Security model".
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

-- _caller(): the role evstream's functions check (GetOuterUserId: the login role or the role set
-- with SET ROLE; what current_user is outside any SECURITY DEFINER function).
CREATE FUNCTION evstream._caller() RETURNS oid
  LANGUAGE c STABLE PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'evstream_caller';

-- Channel grants: the channels a role that runs its own SQL may use, set by an admin. A role with
-- at least one grant (directly or through a role it belongs to) is limited to its grants and its
-- request.jwt.claims are ignored (any session can set that setting). channel: an exact channel
-- name, or a prefix ending in * (project:team-*).
CREATE TABLE evstream.channel_grants (
  role       oid         NOT NULL,
  channel    text        NOT NULL,
  granted_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (role, channel),
  CONSTRAINT channel_grants_channel_check
    CHECK (channel ~ '^(project|user|channel):[A-Za-z0-9_.:@+=-]*[*]?$')
);
COMMENT ON TABLE evstream.channel_grants IS
  'Channels a role may use whatever its claims say. Write with evstream.grant_channels / revoke_channels.';
CREATE TRIGGER channel_grants_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
  ON evstream.channel_grants FOR EACH STATEMENT EXECUTE FUNCTION evstream._catalog_changed();
SELECT pg_catalog.pg_extension_config_dump('evstream.channel_grants', '');

-- channel_allowed(channel): may the caller use this channel? Members of evstream_admin or
-- evstream_daemon (evstreamd applies the same rule per verified token itself) and superusers:
-- every channel. A role with channel grants: exactly its grants. Anyone else: what
-- its claims (request.jwt.claims) allow: sub -> user:<sub>; projects[] -> project:<p>;
-- channels[] -> exact names, a trailing * = prefix.
CREATE FUNCTION evstream.channel_allowed(channel text) RETURNS boolean
  LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'evstream_channel_allowed';

-- _creator(created_by): the one identity rule, shared by post_event, post_events and publish.
-- Returns the created_by to store for the caller. Members of evstream_service (trusted writers:
-- services writing as agent:<name> or system) may pass any valid created_by; the default is
-- user:<sub> of request.jwt.claims, else system. A role with channel grants writes as
-- user:<role name>; everyone else as user:<sub> of the claims: another value, or claims without
-- a sub, raise 42501. A malformed created_by raises 22023.
CREATE FUNCTION evstream._creator(created_by text) RETURNS text
  LANGUAGE c STABLE PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'evstream_creator';

-- _may_use_consumer(owner_role): has the caller the privileges of the consumer's owner (or is
-- it an admin)?
CREATE FUNCTION evstream._may_use_consumer(owner_role oid) RETURNS boolean
  LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'evstream_may_use_consumer';

CREATE FUNCTION evstream.grant_channels(role regrole, channels text[]) RETURNS void
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  c text;
BEGIN
  IF role IS NULL OR channels IS NULL THEN
    RAISE EXCEPTION 'role and channels must not be null' USING ERRCODE = '22004';
  END IF;
  FOREACH c IN ARRAY channels LOOP
    IF c IS NULL OR c !~ '^(project|user|channel):[A-Za-z0-9_.:@+=-]*[*]?$' THEN
      RAISE EXCEPTION 'channel grant must be a channel name or a prefix ending in *, got "%"', c
        USING ERRCODE = '22023', HINT = 'e.g. project:p1, user:ann, project:team-*';
    END IF;
    INSERT INTO evstream.channel_grants AS g (role, channel) VALUES (grant_channels.role, c)
    ON CONFLICT DO NOTHING;
  END LOOP;
END
$$;

-- revoke_channels(role, channels): removes those grants (NULL: all of the role's grants).
-- A role left without grants is trusted by its claims again.
CREATE FUNCTION evstream.revoke_channels(role regrole, channels text[] DEFAULT NULL) RETURNS integer
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  n integer;
BEGIN
  DELETE FROM evstream.channel_grants g
   WHERE g.role = revoke_channels.role::oid
     AND (revoke_channels.channels IS NULL OR g.channel = ANY (revoke_channels.channels));
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$$;

-- Row-level security: every table holding tenant data shows a caller only its channels.
ALTER TABLE evstream.events ENABLE ROW LEVEL SECURITY;
CREATE POLICY events_read ON evstream.events FOR SELECT
  USING (evstream.channel_allowed(channel));
ALTER TABLE evstream.aggregate_states ENABLE ROW LEVEL SECURITY;
CREATE POLICY aggregate_states_read ON evstream.aggregate_states FOR SELECT
  USING (evstream.channel_allowed(channel));

-- One row per aggregate in the log: its current version (its last event's), the time of its
-- last event, its state (state machines only) and the channel of its first event. A view over
-- the log, not a table appends write: the caller sees the aggregates whose first event's
-- channel it may use (the rule row-level security applies to the log), with their true
-- current version. security_barrier: the caller's own conditions run after that filter.
CREATE VIEW evstream.aggregates WITH (security_barrier) AS
  SELECT l.aggregate_type, l.aggregate_id, l.version, s.state, l.created_at AS updated_at,
         f.channel
    FROM (SELECT DISTINCT ON (e.aggregate_type, e.aggregate_id)
                 e.aggregate_type, e.aggregate_id, e.version, e.created_at
            FROM evstream.events e
           ORDER BY e.aggregate_type, e.aggregate_id, e.version DESC) l
    JOIN evstream.events f
      ON f.aggregate_type = l.aggregate_type AND f.aggregate_id = l.aggregate_id AND f.version = 1
    LEFT JOIN evstream.aggregate_states s
      ON s.aggregate_type = l.aggregate_type AND s.aggregate_id = l.aggregate_id
   WHERE evstream.channel_allowed(f.channel);
COMMENT ON VIEW evstream.aggregates IS
  'One row per aggregate of the log: current version, last event time, state, first channel.';
ALTER TABLE evstream.consumer_checkpoints ENABLE ROW LEVEL SECURITY;
CREATE POLICY consumer_checkpoints_read ON evstream.consumer_checkpoints FOR SELECT
  USING (evstream._may_use_consumer(owner_role));
ALTER TABLE evstream.consumer_failures ENABLE ROW LEVEL SECURITY;
CREATE POLICY consumer_failures_read ON evstream.consumer_failures FOR SELECT
  USING (evstream._may_use_consumer(owner_role));

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
ALTER TABLE evstream.erasures ENABLE ROW LEVEL SECURITY;
CREATE POLICY erasures_read ON evstream.erasures FOR SELECT
  USING (NOT EXISTS (SELECT 1 FROM unnest(channels) AS c(name)
                      WHERE NOT evstream.channel_allowed(c.name)));

-- erase_aggregate: the owner deletes from the log and evstream's tables; the projected row is
-- deleted with the caller's rights (its triggers never run as the owner).
CREATE FUNCTION evstream.erase_aggregate(aggregate_type text, aggregate_id text) RETURNS bigint
  LANGUAGE c VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
  AS 'MODULE_PATHNAME', 'evstream_erase_aggregate';

-- Privileges: only the owner writes evstream's tables (through the functions above); every other
-- role gets EXECUTE on the API and SELECT under row-level security, nothing else.
REVOKE ALL ON ALL TABLES IN SCHEMA evstream FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA evstream FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA evstream FROM PUBLIC;
GRANT USAGE ON SCHEMA evstream TO evstream_reader, evstream_writer, evstream_admin, evstream_service;

-- Readers: the log, aggregates, their consumers' state and erasures (RLS), the catalog.
GRANT SELECT ON evstream.events, evstream.aggregates, evstream.aggregate_states, evstream.consumer_checkpoints,
                evstream.consumer_failures, evstream.erasures,
                evstream.event_types, evstream.projections, evstream.transitions
  TO evstream_reader;
GRANT EXECUTE ON FUNCTION evstream.read_after(bigint, integer, text[]),
                          evstream.stream(text, text, integer),
                          evstream.state_at(text, text, integer, timestamptz),
                          evstream.channel_allowed(text),
                          evstream._caller(),
                          evstream._may_use_consumer(oid),
                          evstream.consume(text, integer, integer, integer),
                          evstream.ack(text, bigint, integer),
                          evstream.fail(text, bigint, text, integer),
                          evstream.events_by_correlation(uuid),
                          evstream.doorbell_rings(),
                          evstream._read_horizon(bigint),
                          evstream.log_tail(),
                          evstream._held_back(),
                          evstream._horizon_holders(),
                          evstream.horizon()
  TO evstream_reader;

-- Writers: everything readers have, plus appending (to the channels the channel rule allows,
-- as the identity the identity rule gives).
GRANT evstream_reader TO evstream_writer;
GRANT EXECUTE ON FUNCTION evstream.post_event(text, text, text, text, jsonb, jsonb, text, integer,
                                              uuid, uuid, jsonb, text),
                          evstream.post_events(jsonb),
                          evstream._creator(text)
  TO evstream_writer;

-- Admins: the catalog, rebuild, erasure, channel grants; they see every channel.
GRANT evstream_writer TO evstream_admin;
GRANT SELECT ON evstream.channel_grants TO evstream_admin;
GRANT EXECUTE ON FUNCTION evstream.register_event_type(text, jsonb, text, jsonb),
                          evstream.project_into(text, regclass, name, name),
                          evstream.remove_projection(text),
                          evstream.allow_transition(text, text, text, text),
                          evstream.rebuild(text),
                          evstream.erase_aggregate(text, text),
                          evstream.grant_channels(regrole, text[]),
                          evstream.revoke_channels(regrole, text[])
  TO evstream_admin;
-- The triggers' functions run for whoever changes the tables (only the owner can).
GRANT EXECUTE ON FUNCTION evstream._refuse_change(), evstream._catalog_changed() TO PUBLIC;
