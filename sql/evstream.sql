-- evstream: event sourcing inside PostgreSQL.
-- Hand-edited source; the build copies it to evstream--<version>.sql.
\echo Use "CREATE EXTENSION evstream" to load this file. \quit

-- Refuse to install unless the library is preloaded: the doorbell worker and the position lock
-- live in shared memory.
CREATE FUNCTION evstream._require_preload() RETURNS void
  LANGUAGE c AS 'MODULE_PATHNAME', 'evstream_require_preload';
SELECT evstream._require_preload();

-- ---------------------------------------------------------------------------------------------
-- The log
-- ---------------------------------------------------------------------------------------------
CREATE SEQUENCE evstream.events_position_seq AS bigint;

CREATE TABLE evstream.events (
  position        bigint      NOT NULL DEFAULT nextval('evstream.events_position_seq'),
  id              uuid        NOT NULL DEFAULT gen_random_uuid(),
  tx              xid8        NOT NULL DEFAULT pg_current_xact_id(),
  channel         text        NOT NULL,
  aggregate_type  text        NOT NULL,
  aggregate_id    text        NOT NULL,
  version         integer     NOT NULL,
  event_type      text        NOT NULL,
  data            jsonb       NOT NULL DEFAULT '{}',
  metadata        jsonb       NOT NULL DEFAULT '{}',
  display         jsonb,
  created_by      text        NOT NULL DEFAULT 'system',
  created_at      timestamptz NOT NULL DEFAULT now(),
  correlation_id  uuid,
  causation_id    uuid,
  idempotency_key text,
  PRIMARY KEY (id),
  CONSTRAINT events_channel_check
    CHECK (channel ~ '^(project|user|channel):[A-Za-z0-9_.:@+=-]+$'),
  CONSTRAINT events_version_check CHECK (version > 0),
  CONSTRAINT events_data_object CHECK (jsonb_typeof(data) = 'object'),
  CONSTRAINT events_metadata_object CHECK (jsonb_typeof(metadata) = 'object')
);
ALTER SEQUENCE evstream.events_position_seq OWNED BY evstream.events.position;
CREATE UNIQUE INDEX events_position_key ON evstream.events (position);
-- Gap-free reading walks (tx, position).
CREATE INDEX events_tx_position_idx ON evstream.events (tx, position);
CREATE UNIQUE INDEX events_aggregate_version_key
  ON evstream.events (aggregate_type, aggregate_id, version);
CREATE UNIQUE INDEX events_idempotency_key
  ON evstream.events (channel, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX events_correlation_idx ON evstream.events (correlation_id)
  WHERE correlation_id IS NOT NULL;

COMMENT ON TABLE evstream.events IS
  'The immutable event log. Append with evstream.post_event / post_events; never updated or deleted.';

-- One row per aggregate: appends to one aggregate serialise on this row.
CREATE TABLE evstream.aggregates (
  aggregate_type text        NOT NULL,
  aggregate_id   text        NOT NULL,
  version        integer     NOT NULL,
  state          text,
  updated_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (aggregate_type, aggregate_id)
);

-- ---------------------------------------------------------------------------------------------
-- Immutability: no UPDATE, DELETE or TRUNCATE, for anyone (ENABLE ALWAYS also holds under
-- session_replication_role = replica).
-- ---------------------------------------------------------------------------------------------
-- In C: the one bypass (evstream.erase_aggregate) is a flag inside the backend that no SQL can set.
CREATE FUNCTION evstream._refuse_change() RETURNS trigger
  LANGUAGE c AS 'MODULE_PATHNAME', 'evstream_refuse_change';
CREATE TRIGGER events_immutable_rows BEFORE UPDATE OR DELETE ON evstream.events
  FOR EACH ROW EXECUTE FUNCTION evstream._refuse_change();
CREATE TRIGGER events_immutable_truncate BEFORE TRUNCATE ON evstream.events
  FOR EACH STATEMENT EXECUTE FUNCTION evstream._refuse_change();
ALTER TABLE evstream.events ENABLE ALWAYS TRIGGER events_immutable_rows;
ALTER TABLE evstream.events ENABLE ALWAYS TRIGGER events_immutable_truncate;

-- ---------------------------------------------------------------------------------------------
-- Appending
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION evstream.post_event(
  channel text, aggregate_type text, aggregate_id text, event_type text,
  data jsonb DEFAULT '{}', metadata jsonb DEFAULT '{}',
  idempotency_key text DEFAULT NULL, expected_version integer DEFAULT NULL,
  correlation_id uuid DEFAULT NULL, causation_id uuid DEFAULT NULL,
  display jsonb DEFAULT NULL, created_by text DEFAULT NULL
) RETURNS evstream.events
  LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'evstream_post_event';

CREATE FUNCTION evstream.post_events(events jsonb) RETURNS SETOF evstream.events
  LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'evstream_post_events';

-- ---------------------------------------------------------------------------------------------
-- Reading
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION evstream.read_after(after_position bigint DEFAULT 0, max_count integer DEFAULT 1000,
                                    channels text[] DEFAULT NULL)
  RETURNS SETOF evstream.events
  LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'evstream_read_after';

CREATE FUNCTION evstream.stream(aggregate_type text, aggregate_id text, after_version integer DEFAULT 0)
  RETURNS SETOF evstream.events
  LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'evstream_stream';

-- Doorbell notifications sent by this database's worker since it started (monitoring, tests).
CREATE FUNCTION evstream.doorbell_rings() RETURNS bigint
  LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'evstream_doorbell_rings';

-- =============================================================================================
-- State from events (issue 3): catalog, projections, state machine, consumers, security.
-- =============================================================================================

-- ---------------------------------------------------------------------------------------------
-- Event-type catalog
-- ---------------------------------------------------------------------------------------------
CREATE TABLE evstream.event_types (
  event_type    text        PRIMARY KEY,
  schema        jsonb,
  description   text,
  example       jsonb,
  registered_at timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE evstream.event_types IS
  'Registered event types; post_event validates data against schema. Write with evstream.register_event_type.';

-- Projections: one target table per aggregate type.
CREATE TABLE evstream.projections (
  aggregate_type text        PRIMARY KEY,
  target         regclass    NOT NULL,
  key_column     name        NOT NULL,
  status_column  name        NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now()
);

-- The state machine: from_state NULL = the aggregate does not exist yet.
CREATE TABLE evstream.transitions (
  aggregate_type text NOT NULL,
  from_state     text,
  event_type     text NOT NULL,
  to_state       text NOT NULL,
  CONSTRAINT transitions_key UNIQUE NULLS NOT DISTINCT (aggregate_type, from_state, event_type)
);

-- Any change to the catalog drops every backend's cached schemas and configurations.
CREATE FUNCTION evstream._catalog_changed() RETURNS trigger
  LANGUAGE c AS 'MODULE_PATHNAME', 'evstream_catalog_changed';
CREATE TRIGGER event_types_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
  ON evstream.event_types FOR EACH STATEMENT EXECUTE FUNCTION evstream._catalog_changed();
CREATE TRIGGER projections_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
  ON evstream.projections FOR EACH STATEMENT EXECUTE FUNCTION evstream._catalog_changed();
CREATE TRIGGER transitions_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
  ON evstream.transitions FOR EACH STATEMENT EXECUTE FUNCTION evstream._catalog_changed();

SELECT pg_catalog.pg_extension_config_dump('evstream.event_types', '');
SELECT pg_catalog.pg_extension_config_dump('evstream.projections', '');
SELECT pg_catalog.pg_extension_config_dump('evstream.transitions', '');

CREATE FUNCTION evstream.register_event_type(event_type text, schema jsonb DEFAULT NULL,
                                             description text DEFAULT NULL, example jsonb DEFAULT NULL)
  RETURNS void
  LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'evstream_register_event_type';

CREATE FUNCTION evstream.project_into(aggregate_type text, target regclass,
                                      key_column name DEFAULT 'id', status_column name DEFAULT 'status')
  RETURNS void
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF aggregate_type IS NULL OR target IS NULL OR key_column IS NULL OR status_column IS NULL THEN
    RAISE EXCEPTION 'aggregate_type, target, key_column and status_column must not be null'
      USING ERRCODE = '22004';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = target AND a.attname = key_column
                   AND a.attnum > 0 AND NOT a.attisdropped) THEN
    RAISE EXCEPTION 'key column "%" does not exist in %', key_column, target
      USING ERRCODE = '42703';
  END IF;
  IF NOT EXISTS (
      SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
       WHERE i.indrelid = target AND i.indisunique AND i.indnkeyatts = 1 AND i.indpred IS NULL
         AND i.indexprs IS NULL AND a.attname = key_column) THEN
    RAISE EXCEPTION 'key column "%" of % has no unique index', key_column, target
      USING ERRCODE = '42P10',
            HINT = 'Projections upsert by the key column: make it the primary key or add a unique index.';
  END IF;
  INSERT INTO evstream.projections AS p (aggregate_type, target, key_column, status_column)
  VALUES (project_into.aggregate_type, target, key_column, status_column)
  ON CONFLICT ON CONSTRAINT projections_pkey DO UPDATE
    SET target = EXCLUDED.target, key_column = EXCLUDED.key_column,
        status_column = EXCLUDED.status_column, created_at = now();
END
$$;

CREATE FUNCTION evstream.allow_transition(aggregate_type text, from_state text, event_type text,
                                          to_state text)
  RETURNS void
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF aggregate_type IS NULL OR event_type IS NULL OR to_state IS NULL THEN
    RAISE EXCEPTION 'aggregate_type, event_type and to_state must not be null'
      USING ERRCODE = '22004',
            HINT = 'from_state may be NULL: the event then creates the aggregate.';
  END IF;
  INSERT INTO evstream.transitions AS t (aggregate_type, from_state, event_type, to_state)
  VALUES (allow_transition.aggregate_type, allow_transition.from_state, allow_transition.event_type,
          allow_transition.to_state)
  ON CONFLICT ON CONSTRAINT transitions_key DO UPDATE SET to_state = EXCLUDED.to_state;
END
$$;

CREATE FUNCTION evstream.rebuild(aggregate_type text) RETURNS bigint
  LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'evstream_rebuild';

CREATE FUNCTION evstream.state_at(aggregate_type text, aggregate_id text,
                                  at_version integer DEFAULT NULL, at_time timestamptz DEFAULT NULL)
  RETURNS jsonb
  LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'evstream_state_at';

-- ---------------------------------------------------------------------------------------------
-- Consumers: checkpoints per (consumer, member), failures users can query.
-- Two workers of one member never get the same events: consume() first takes a non-blocking
-- transaction-level advisory lock on (consumer, member) (pg_try_advisory_xact_lock), then locks
-- the checkpoint row FOR UPDATE SKIP LOCKED; when either is held by another transaction it
-- returns no rows at once. Both are held until the worker's transaction ends, so call consume
-- and ack/fail in one transaction: BEGIN; consume; process; ack; COMMIT.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE evstream.consumer_checkpoints (
  consumer   text        NOT NULL,
  member     integer     NOT NULL,
  size       integer     NOT NULL DEFAULT 1,
  tx         xid8        NOT NULL DEFAULT '0',
  position   bigint      NOT NULL DEFAULT 0,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer, member),
  CONSTRAINT consumer_member_check CHECK (member >= 0 AND size >= 1 AND member < size)
);

CREATE TABLE evstream.consumer_failures (
  id        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  consumer  text        NOT NULL,
  member    integer     NOT NULL,
  position  bigint      NOT NULL,
  event_id  uuid,
  error     text        NOT NULL,
  attempts  integer     NOT NULL,
  failed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX consumer_failures_consumer_idx ON evstream.consumer_failures (consumer, position);

CREATE FUNCTION evstream.consume(consumer text, max_count integer DEFAULT 100, member integer DEFAULT 0,
                                 size integer DEFAULT 1)
  RETURNS SETOF evstream.events
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  c evstream.consumer_checkpoints;
BEGIN
  IF consumer IS NULL OR consumer = '' THEN
    RAISE EXCEPTION 'consumer must not be null or empty' USING ERRCODE = '22004';
  END IF;
  IF max_count IS NULL OR max_count < 1 OR max_count > 100000 THEN
    RAISE EXCEPTION 'max_count must be between 1 and 100000' USING ERRCODE = '22023';
  END IF;
  IF size IS NULL OR size < 1 OR member IS NULL OR member < 0 OR member >= size THEN
    RAISE EXCEPTION 'member must be between 0 and size - 1 (got member %, size %)', member, size
      USING ERRCODE = '22023';
  END IF;
  -- The advisory lock also keeps a second worker off the INSERT below, which would otherwise
  -- wait for the first worker's uncommitted checkpoint row.
  IF NOT pg_try_advisory_xact_lock(hashtextextended(consumer || chr(31) || member, 1771)) THEN
    RETURN;
  END IF;
  INSERT INTO evstream.consumer_checkpoints (consumer, member, size)
  VALUES (consume.consumer, consume.member, consume.size) ON CONFLICT DO NOTHING;
  SELECT * INTO c FROM evstream.consumer_checkpoints k
   WHERE k.consumer = consume.consumer AND k.member = consume.member
   FOR UPDATE SKIP LOCKED;
  IF NOT FOUND THEN
    RETURN;  -- another worker of this member holds it
  END IF;
  IF c.size <> consume.size THEN
    RAISE EXCEPTION 'consumer % member % was created with size %, not %', consumer, member, c.size, size
      USING ERRCODE = '22023',
            HINT = 'Keep the group size fixed, or start a new consumer name.';
  END IF;
  RETURN QUERY
    SELECT e.* FROM evstream.events e
     WHERE (e.tx, e.position) > (c.tx, c.position)
       AND e.tx < pg_snapshot_xmin(pg_current_snapshot())
       AND (consume.size = 1 OR
            abs(hashtextextended(e.aggregate_type || chr(31) || e.aggregate_id, 0) % consume.size)
              = consume.member)
     ORDER BY e.tx, e.position
     LIMIT max_count;
END
$$;

CREATE FUNCTION evstream._advance(consumer text, "position" bigint, member integer)
  RETURNS evstream.events
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  e evstream.events;
BEGIN
  SELECT * INTO e FROM evstream.events x WHERE x.position = _advance.position;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'position % is not in the log', position USING ERRCODE = 'EV006';
  END IF;
  UPDATE evstream.consumer_checkpoints k SET tx = e.tx, position = e.position, updated_at = now()
   WHERE k.consumer = _advance.consumer AND k.member = _advance.member
     AND (k.tx, k.position) < (e.tx, e.position);
  IF NOT FOUND AND NOT EXISTS (SELECT 1 FROM evstream.consumer_checkpoints k
                                WHERE k.consumer = _advance.consumer AND k.member = _advance.member) THEN
    RAISE EXCEPTION 'consumer % member % has never consumed', consumer, member
      USING ERRCODE = '22023', HINT = 'Call evstream.consume first.';
  END IF;
  RETURN e;
END
$$;

CREATE FUNCTION evstream.ack(consumer text, "position" bigint, member integer DEFAULT 0)
  RETURNS void
  LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
  BEGIN ATOMIC
    SELECT evstream._advance(ack.consumer, ack.position, ack.member);
  END;

CREATE FUNCTION evstream.fail(consumer text, "position" bigint, error text, member integer DEFAULT 0)
  RETURNS void
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  e evstream.events;
BEGIN
  e := evstream._advance(consumer, position, member);
  INSERT INTO evstream.consumer_failures (consumer, member, position, event_id, error, attempts)
  SELECT fail.consumer, fail.member, fail.position, e.id, coalesce(fail.error, 'unknown error'),
         1 + (SELECT count(*) FROM evstream.consumer_failures f
               WHERE f.consumer = fail.consumer AND f.position = fail.position);
END
$$;

-- History and stats.
CREATE FUNCTION evstream.stats()
  RETURNS TABLE (event_type text, events bigint, first_at timestamptz, last_at timestamptz)
  LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
  BEGIN ATOMIC
    SELECT e.event_type, count(*), min(e.created_at), max(e.created_at)
      FROM evstream.events e GROUP BY e.event_type ORDER BY e.event_type;
  END;

CREATE FUNCTION evstream.events_by_correlation(correlation_id uuid)
  RETURNS SETOF evstream.events
  LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
  BEGIN ATOMIC
    SELECT e.* FROM evstream.events e
     WHERE e.correlation_id = events_by_correlation.correlation_id OR e.id = events_by_correlation.correlation_id
     ORDER BY e.position;
  END;

-- ---------------------------------------------------------------------------------------------
-- Security: roles, row-level security from JWT claims, erasure.
-- Roles are cluster-wide: created when missing (a second database's CREATE EXTENSION finds them)
-- and never dropped by DROP EXTENSION (another database may still use them).
-- ---------------------------------------------------------------------------------------------
DO $$
DECLARE
  r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['evstream_reader', 'evstream_writer', 'evstream_admin'] LOOP
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
                          evstream.post_events(jsonb)
  TO evstream_writer;

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

-- =============================================================================================
-- Ephemeral events (issue 7): delivered to current subscribers, never stored.
-- =============================================================================================
-- publish() sends one NOTIFY on channel evstream_ephemeral whose payload is the SSE frame's data
-- object; every evstreamd LISTENs and fans it out (no id: line, at most once, no replay).
-- NOTIFY is transactional: the event leaves at commit, and not at all on rollback.
-- NOTIFY payloads must be shorter than 8000 bytes: larger events fail with 22023.
-- With request.jwt.claims set, the claims must allow the channel (42501 otherwise).
CREATE FUNCTION evstream.publish(channel text, type text, data jsonb DEFAULT '{}',
                                 aggregate_type text DEFAULT NULL, aggregate_id text DEFAULT NULL,
                                 created_by text DEFAULT NULL)
  RETURNS uuid LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  claims  text := nullif(current_setting('request.jwt.claims', true), '');
  sub     text;
  eid     uuid := gen_random_uuid();
  payload text;
BEGIN
  IF channel IS NULL THEN
    RAISE EXCEPTION 'channel must not be null' USING ERRCODE = '22004';
  END IF;
  IF channel !~ '^(project|user|channel):[^*]+$' THEN
    RAISE EXCEPTION 'channel must be project:<id>, user:<id> or channel:<id>, got "%"', channel
      USING ERRCODE = '22023';
  END IF;
  IF type IS NULL OR type = '' THEN
    RAISE EXCEPTION 'type must not be empty' USING ERRCODE = '22023';
  END IF;
  IF type IN ('connected', 'heartbeat', 'reset', 'overflow', 'error', 'presence') THEN
    RAISE EXCEPTION 'type is reserved for the stream''s own frames: %', type USING ERRCODE = '22023';
  END IF;
  IF data IS NULL OR jsonb_typeof(data) <> 'object' THEN
    RAISE EXCEPTION 'data must be a JSON object' USING ERRCODE = '22023';
  END IF;
  IF claims IS NOT NULL AND NOT evstream.channel_allowed(channel) THEN
    RAISE EXCEPTION 'channel not allowed by the claims: %', channel USING ERRCODE = '42501';
  END IF;
  IF created_by IS NULL THEN
    sub := claims::jsonb ->> 'sub';
    created_by := CASE WHEN sub IS NOT NULL AND sub <> '' THEN 'user:' || sub ELSE 'system' END;
  END IF;
  payload := json_build_object(
    'type', type, 'channel', channel, 'entity', aggregate_type, 'id', aggregate_id,
    'data', data::json, 'ephemeral', true, 'ephemeralId', eid, 'createdBy', created_by,
    'timestamp', to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))::text;
  IF octet_length(payload) >= 8000 THEN
    RAISE EXCEPTION 'ephemeral event is too large: % bytes (limit 7999)', octet_length(payload)
      USING ERRCODE = '22023',
            HINT = 'NOTIFY payloads must be shorter than 8000 bytes; store big payloads with post_event';
  END IF;
  PERFORM pg_notify('evstream_ephemeral', payload);
  RETURN eid;
END
$$;
REVOKE ALL ON FUNCTION evstream.publish(text, text, jsonb, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION evstream.publish(text, text, jsonb, text, text, text) TO evstream_writer;
