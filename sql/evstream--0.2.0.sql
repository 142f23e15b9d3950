-- evstream: event sourcing inside PostgreSQL.
-- Hand-edited sources in sql/parts/, joined in name order by the build into evstream--<version>.sql.
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
  -- The delivery order: the writing transaction's order key, taken at its first append (see
  -- evstream.horizon()). Readers read (order_key, position) below the horizon.
  order_key       bigint      NOT NULL,
  PRIMARY KEY (id),
  CONSTRAINT events_channel_check
    CHECK (channel ~ '^(project|user|channel):[A-Za-z0-9_.:@+=-]+$'),
  CONSTRAINT events_version_check CHECK (version > 0),
  CONSTRAINT events_data_object CHECK (jsonb_typeof(data) = 'object'),
  CONSTRAINT events_metadata_object CHECK (jsonb_typeof(metadata) = 'object')
);
ALTER SEQUENCE evstream.events_position_seq OWNED BY evstream.events.position;
CREATE UNIQUE INDEX events_position_key ON evstream.events (position);
-- Gap-free reading walks (order_key, position).
CREATE INDEX events_order_idx ON evstream.events (order_key, position);
-- Order keys are reserved from this sequence in blocks of 1024 (block b: keys b*1024 ..
-- b*1024+1023): a key is never handed out twice, nor below one handed out, across restarts.
CREATE SEQUENCE evstream.order_key_blocks AS bigint;
CREATE UNIQUE INDEX events_aggregate_version_key
  ON evstream.events (aggregate_type, aggregate_id, version);
CREATE UNIQUE INDEX events_idempotency_key
  ON evstream.events (channel, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX events_correlation_idx ON evstream.events (correlation_id)
  WHERE correlation_id IS NOT NULL;

COMMENT ON TABLE evstream.events IS
  'The immutable event log. Append with evstream.post_event / post_events; never updated or deleted.';

-- One row per aggregate: appends to one aggregate serialise on this row.
-- channel: the channel of the aggregate's first event; row-level security shows an aggregate
-- to the callers that may see that channel.
CREATE TABLE evstream.aggregates (
  aggregate_type text        NOT NULL,
  aggregate_id   text        NOT NULL,
  version        integer     NOT NULL,
  state          text,
  updated_at     timestamptz NOT NULL DEFAULT now(),
  channel        text        NOT NULL,
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
-- Appending. Only evstream's own functions write the log: they run SECURITY DEFINER with a fixed
-- search_path and check the caller themselves (channel rule, identity rule, see security).
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION evstream.post_event(
  channel text, aggregate_type text, aggregate_id text, event_type text,
  data jsonb DEFAULT '{}', metadata jsonb DEFAULT '{}',
  idempotency_key text DEFAULT NULL, expected_version integer DEFAULT NULL,
  correlation_id uuid DEFAULT NULL, causation_id uuid DEFAULT NULL,
  display jsonb DEFAULT NULL, created_by text DEFAULT NULL
) RETURNS evstream.events
  LANGUAGE c VOLATILE PARALLEL UNSAFE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
  AS 'MODULE_PATHNAME', 'evstream_post_event';

CREATE FUNCTION evstream.post_events(events jsonb) RETURNS SETOF evstream.events
  LANGUAGE c VOLATILE PARALLEL UNSAFE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
  AS 'MODULE_PATHNAME', 'evstream_post_events';

-- ---------------------------------------------------------------------------------------------
-- Reading
-- ---------------------------------------------------------------------------------------------
-- Every reader of the global order (read_after, consume, evstreamd's feed, replays and
-- GET /api/events) reads below one horizon, computed by the extension (horizon.cpp):
-- horizon = min(next order key, smallest order key of an open appending transaction of this
-- database). Only transactions that have appended hold it back. VOLATILE: each call computes
-- the horizon, then reads with a snapshot taken after it.
CREATE FUNCTION evstream.read_after(after_position bigint DEFAULT 0, max_count integer DEFAULT 1000,
                                    channels text[] DEFAULT NULL)
  RETURNS SETOF evstream.events
  LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'evstream_read_after';

-- The horizon for a read after order key after_key, for SQL readers: read below it in a later
-- statement (consume does).
CREATE FUNCTION evstream._read_horizon(after_key bigint DEFAULT 0) RETURNS bigint
  LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'evstream_read_horizon';

-- The last readable event (no row while none is): where a live reader that wants only new
-- events starts.
CREATE FUNCTION evstream.log_tail(OUT "position" bigint, OUT order_key bigint)
  RETURNS SETOF record
  LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'evstream_log_tail';

-- Whether committed events wait at or above the horizon (an appending transaction is open).
CREATE FUNCTION evstream._held_back() RETURNS boolean
  LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'evstream_held_back';

CREATE FUNCTION evstream._horizon_holders(OUT horizon bigint, OUT next_key bigint, OUT pid integer,
                                          OUT order_key bigint, OUT since timestamptz)
  RETURNS SETOF record
  LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'evstream_horizon_holders';

-- What holds delivery back, in this database: the horizon, the next key, and the open
-- appending transaction with the smallest key (its backend's pid, state and open time from
-- pg_stat_activity, how long it has held the horizon), nulls when none is open; held_back:
-- committed events waiting at or above the horizon.
CREATE FUNCTION evstream.horizon(OUT horizon bigint, OUT next_key bigint, OUT open_appenders integer,
                                 OUT held_back bigint, OUT pid integer, OUT database name,
                                 OUT state text, OUT xact_start timestamptz, OUT held_for interval)
  LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
  BEGIN ATOMIC
    SELECT h.horizon, h.next_key,
           (SELECT count(*)::integer FROM evstream._horizon_holders() x WHERE x.pid IS NOT NULL),
           (SELECT count(*) FROM evstream.events e WHERE e.order_key >= h.horizon),
           h.pid, a.datname, a.state, a.xact_start, clock_timestamp() - h.since
      FROM evstream._horizon_holders() h
      LEFT JOIN pg_stat_activity a ON a.pid = h.pid
     ORDER BY h.order_key NULLS LAST LIMIT 1;
  END;

CREATE FUNCTION evstream.stream(aggregate_type text, aggregate_id text, after_version integer DEFAULT 0)
  RETURNS SETOF evstream.events
  LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'evstream_stream';

-- Doorbell notifications sent by this database's worker since it started (monitoring, tests).
CREATE FUNCTION evstream.doorbell_rings() RETURNS bigint
  LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'evstream_doorbell_rings';

-- History: runs as the caller, row-level security limits it to its channels. (Stats: see the
-- stats part.)
CREATE FUNCTION evstream.events_by_correlation(correlation_id uuid)
  RETURNS SETOF evstream.events
  LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
  BEGIN ATOMIC
    SELECT e.* FROM evstream.events e
     WHERE e.correlation_id = events_by_correlation.correlation_id OR e.id = events_by_correlation.correlation_id
     ORDER BY e.position;
  END;

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
  LANGUAGE c VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
  AS 'MODULE_PATHNAME', 'evstream_register_event_type';

CREATE FUNCTION evstream.project_into(aggregate_type text, target regclass,
                                      key_column name DEFAULT 'id', status_column name DEFAULT 'status')
  RETURNS void
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF aggregate_type IS NULL OR target IS NULL OR key_column IS NULL OR status_column IS NULL THEN
    RAISE EXCEPTION 'aggregate_type, target, key_column and status_column must not be null'
      USING ERRCODE = '22004';
  END IF;
  -- Projections write the target with the rights of whoever appends (and rebuild/erase with
  -- the admin's): the admin registering it must be able to write it too.
  IF NOT pg_catalog.has_table_privilege(evstream._caller(), target, 'INSERT, UPDATE') THEN
    RAISE EXCEPTION 'permission denied: the caller cannot insert into and update %', target
      USING ERRCODE = '42501';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = target AND a.attname = key_column
                   AND a.attnum > 0 AND NOT a.attisdropped) THEN
    RAISE EXCEPTION 'key column "%" does not exist in %', key_column, target
      USING ERRCODE = '42703';
  END IF;
  IF NOT EXISTS (
      SELECT 1 FROM pg_catalog.pg_index i JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
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

-- remove_projection(aggregate_type): stop projecting an aggregate type (the target table stays).
CREATE FUNCTION evstream.remove_projection(aggregate_type text) RETURNS boolean
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  DELETE FROM evstream.projections p WHERE p.aggregate_type = remove_projection.aggregate_type;
  RETURN FOUND;
END
$$;

CREATE FUNCTION evstream.allow_transition(aggregate_type text, from_state text, event_type text,
                                          to_state text)
  RETURNS void
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
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
  LANGUAGE c VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
  AS 'MODULE_PATHNAME', 'evstream_rebuild';

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
--
-- Ownership: a consumer belongs to the role that first consumed it (owner_role). Only roles with
-- that role's privileges (and admins) may consume, ack or fail it and see its checkpoints and
-- failures. A consumer receives only events of the channels its caller may see (the channel
-- rule of evstream.channel_allowed); its checkpoint moves past the others.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE evstream.consumer_checkpoints (
  consumer   text        NOT NULL,
  member     integer     NOT NULL,
  size       integer     NOT NULL DEFAULT 1,
  position   bigint      NOT NULL DEFAULT 0,
  updated_at timestamptz NOT NULL DEFAULT now(),
  owner_role oid         NOT NULL,
  order_key  bigint      NOT NULL DEFAULT 0,  -- with position: the last event acked
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
  failed_at timestamptz NOT NULL DEFAULT now(),
  owner_role oid        NOT NULL
);
CREATE INDEX consumer_failures_consumer_idx ON evstream.consumer_failures (consumer, position);

CREATE FUNCTION evstream.consume(consumer text, max_count integer DEFAULT 100, member integer DEFAULT 0,
                                 size integer DEFAULT 1)
  RETURNS SETOF evstream.events
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  c evstream.consumer_checkpoints;
  owner oid;
  horizon bigint;
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
  SELECT k.owner_role INTO owner FROM evstream.consumer_checkpoints k
   WHERE k.consumer = consume.consumer LIMIT 1;
  IF NOT FOUND THEN
    -- First use of this name: the caller owns it (one owner even when members start at once).
    PERFORM pg_advisory_xact_lock(hashtextextended(consume.consumer, 1772));
    SELECT k.owner_role INTO owner FROM evstream.consumer_checkpoints k
     WHERE k.consumer = consume.consumer LIMIT 1;
    owner := coalesce(owner, evstream._caller());
  END IF;
  IF NOT evstream._may_use_consumer(owner) THEN
    RAISE EXCEPTION 'permission denied for consumer %', consumer USING ERRCODE = '42501',
      HINT = 'A consumer belongs to the role that first consumed it; pick another name.';
  END IF;
  INSERT INTO evstream.consumer_checkpoints (consumer, member, size, owner_role)
  VALUES (consume.consumer, consume.member, consume.size, owner) ON CONFLICT DO NOTHING;
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
  -- The one horizon (see read_after), computed before the statement that reads below it.
  horizon := evstream._read_horizon(c.order_key);
  RETURN QUERY
    SELECT e.* FROM evstream.events e
     WHERE (e.order_key, e.position) > (c.order_key, c.position)
       AND e.order_key < horizon
       AND evstream.channel_allowed(e.channel)
       AND (consume.size = 1 OR
            abs(hashtextextended(e.aggregate_type || chr(31) || e.aggregate_id, 0) % consume.size)
              = consume.member)
     ORDER BY e.order_key, e.position
     LIMIT max_count;
END
$$;

CREATE FUNCTION evstream._advance(consumer text, "position" bigint, member integer)
  RETURNS evstream.events
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  e evstream.events;
  owner oid;
BEGIN
  SELECT k.owner_role INTO owner FROM evstream.consumer_checkpoints k
   WHERE k.consumer = _advance.consumer LIMIT 1;
  IF FOUND AND NOT evstream._may_use_consumer(owner) THEN
    RAISE EXCEPTION 'permission denied for consumer %', consumer USING ERRCODE = '42501';
  END IF;
  SELECT * INTO e FROM evstream.events x WHERE x.position = _advance.position;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'position % is not in the log', position USING ERRCODE = 'EV006';
  END IF;
  UPDATE evstream.consumer_checkpoints k SET order_key = e.order_key, position = e.position,
                                             updated_at = now()
   WHERE k.consumer = _advance.consumer AND k.member = _advance.member
     AND (k.order_key, k.position) < (e.order_key, e.position);
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
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM evstream._advance(ack.consumer, ack.position, ack.member);
END
$$;

CREATE FUNCTION evstream.fail(consumer text, "position" bigint, error text, member integer DEFAULT 0)
  RETURNS void
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  e evstream.events;
BEGIN
  e := evstream._advance(consumer, position, member);
  INSERT INTO evstream.consumer_failures (consumer, member, position, event_id, error, attempts,
                                          owner_role)
  SELECT fail.consumer, fail.member, fail.position, e.id, coalesce(fail.error, 'unknown error'),
         1 + (SELECT count(*) FROM evstream.consumer_failures f
               WHERE f.consumer = fail.consumer AND f.position = fail.position),
         (SELECT k.owner_role FROM evstream.consumer_checkpoints k
           WHERE k.consumer = fail.consumer AND k.member = fail.member);
END
$$;

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
ALTER TABLE evstream.aggregates ENABLE ROW LEVEL SECURITY;
CREATE POLICY aggregates_read ON evstream.aggregates FOR SELECT
  USING (evstream.channel_allowed(channel));
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
GRANT SELECT ON evstream.events, evstream.aggregates, evstream.consumer_checkpoints,
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
-- =============================================================================================
-- Ephemeral events and presence (issues 7, 10): delivered to current subscribers, never in the log.
-- =============================================================================================
-- What evstreamd delivers travels through evstream.ephemeral_outbox, an UNLOGGED table that only
-- evstream's own functions write: publish() (events, any writer, same channel and identity rules
-- as the log), _publish_each() (evstreamd's batches, each item as publish()) and _presence_send()
-- (presence messages between daemons, evstream_daemon only). All three are C++ (publish.cpp,
-- outbox.cpp): they insert into the table and its primary key directly.
-- NOTIFY evstream_ephemeral is a doorbell only: evstreamd reads the outbox when it rings and
-- never looks at a payload, so a NOTIFY from anyone can neither forge nor break anything.
-- Rows leave at commit (nothing on rollback); daemons prune what every reader has had time to read.

-- The daemon's role: what evstreamd needs on top of a writer (read the outbox, send and prune
-- presence). Trusted like a service: it writes as the user of the token it verified.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'evstream_daemon') THEN
    BEGIN
      CREATE ROLE evstream_daemon NOLOGIN;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
      NULL;  -- created concurrently by another database's CREATE EXTENSION
    END;
  END IF;
END
$$;

-- id orders rows by nextval, not by commit: readers track gaps (see evstreamd's outbox reader).
-- kind 'event': channel/type/entity/entity_id route it, payload is the SSE frame's data object.
-- kind 'presence': payload is one message of the daemons' presence protocol.
CREATE UNLOGGED TABLE evstream.ephemeral_outbox (
  id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  kind      text   NOT NULL CHECK (kind IN ('event', 'presence')),
  channel   text,
  type      text,
  entity    text,
  entity_id text,
  payload   text   NOT NULL
);
COMMENT ON TABLE evstream.ephemeral_outbox IS
  'Ephemeral events and presence messages on their way to evstreamd; written only by evstream.publish, evstream._publish_each, evstream._publish_batch and evstream._presence_send.';

-- _ring_ephemeral(): rings evstream_ephemeral at this transaction's commit (the C++ writers mark
-- their transactions themselves; this is for SQL run by the extension's owner).
CREATE FUNCTION evstream._ring_ephemeral() RETURNS void
  LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'evstream_ring_ephemeral';
CREATE FUNCTION evstream._next_xid() RETURNS xid8
  LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'evstream_next_xid';

-- publish(): one ephemeral event for the subscribers of `channel` on every evstreamd.
-- 22004/22023 for bad input (channel not project:<id>, user:<id> or channel:<id> without '*';
-- empty or reserved types (the stream's own frames: connected, heartbeat, reset, overflow,
-- reauth, error, presence); data not an object; an event of 8000 bytes or more), 42501 when
-- channel_allowed refuses the channel or _creator the created_by (the same C++ rules, called
-- directly). The outbox row's payload is the SSE frame's data object
-- {"type","channel","entity","id","data","ephemeral":true,"ephemeralId","createdBy","timestamp"},
-- printed as json_build_object prints it. The transaction id is taken before the row id (readers
-- rely on it to know when a gap is final); the doorbell rings at commit.
CREATE FUNCTION evstream.publish(channel text, type text, data jsonb DEFAULT '{}',
                                 aggregate_type text DEFAULT NULL, aggregate_id text DEFAULT NULL,
                                 created_by text DEFAULT NULL)
  RETURNS uuid LANGUAGE c VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
  AS 'MODULE_PATHNAME', 'evstream_publish';

-- _publish_each(items): evstreamd's POST /api/publish batch, in order, each item under the claims
-- of the token it came with ({"claims", "channel", "type", "data", "entity", "id"}): for each item
-- request.jwt.claims is set for the transaction (as set_config(..., true)) and publish's checks
-- run, so the database applies its own rules to every item; the first refusal fails the batch.
-- All rows go into the outbox in one insert. Returns the ephemeralIds in item order.
CREATE FUNCTION evstream._publish_each(items jsonb) RETURNS SETOF uuid
  LANGUAGE c VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
  AS 'MODULE_PATHNAME', 'evstream_publish_each';

-- _publish_batch(items): _publish_each, returning each item's outbox row as written: its
-- ephemeralId, the row's id and its payload. evstreamd hands the rows of its own batches to its
-- own subscribers when the statement returns (after the commit) instead of reading them back;
-- every other evstreamd reads them from the outbox when the doorbell rings.
CREATE FUNCTION evstream._publish_batch(items jsonb)
  RETURNS TABLE (ephemeral_id uuid, outbox_id bigint, payload text)
  LANGUAGE c VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
  AS 'MODULE_PATHNAME', 'evstream_publish_batch';

-- _presence_send(messages): evstreamd's presence protocol messages (a JSON array of objects),
-- delivered to every evstreamd in order. evstream_daemon only: nobody else can fake presence.
CREATE FUNCTION evstream._presence_send(messages jsonb) RETURNS void
  LANGUAGE c VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
  AS 'MODULE_PATHNAME', 'evstream_presence_send';

-- _ephemeral_read(after, gaps, max_count): one reader's next rows: first one row (id NULL, kind
-- 'horizon') carrying this snapshot's xmin and the next transaction id, then the ids it still
-- waits for (`gaps`, all at or below `after`) that exist now, then up to max_count (1..10000)
-- ids above `after`, in id order (two index scans, plans kept per session). A gap whose recorded
-- next_xid is at or below a later read's horizon can no longer appear (its transaction has ended).
CREATE FUNCTION evstream._ephemeral_read(after bigint, gaps bigint[], max_count integer)
  RETURNS TABLE (id bigint, kind text, channel text, type text, entity text, entity_id text,
                 payload text, horizon xid8, next_xid xid8)
  LANGUAGE c STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
  AS 'MODULE_PATHNAME', 'evstream_ephemeral_read';

-- _ephemeral_tail(): where a (re)connecting reader starts: the highest id, the ids missing
-- among the 1000 below it (maybe still in flight), and the next transaction id.
CREATE FUNCTION evstream._ephemeral_tail(OUT last_id bigint, OUT missing bigint[], OUT next_xid xid8)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
  SELECT t.m,
         ARRAY(SELECT g FROM pg_catalog.generate_series(greatest(t.m - 1000, 0) + 1, t.m) g
                WHERE NOT EXISTS (SELECT 1 FROM evstream.ephemeral_outbox o WHERE o.id = g)),
         evstream._next_xid()
    FROM (SELECT coalesce(max(o.id), 0) AS m FROM evstream.ephemeral_outbox o) t
$$;

-- _ephemeral_prune(upto): deletes rows up to id `upto`; evstreamd passes the id below which it
-- had read everything `retention` ago. Returns the number of rows deleted.
CREATE FUNCTION evstream._ephemeral_prune(upto bigint) RETURNS bigint
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  n bigint;
BEGIN
  DELETE FROM evstream.ephemeral_outbox WHERE id <= upto;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$$;

REVOKE ALL ON evstream.ephemeral_outbox FROM PUBLIC;
REVOKE ALL ON FUNCTION evstream._ring_ephemeral(), evstream._next_xid(),
                       evstream.publish(text, text, jsonb, text, text, text),
                       evstream._publish_each(jsonb), evstream._publish_batch(jsonb),
                       evstream._presence_send(jsonb),
                       evstream._ephemeral_read(bigint, bigint[], integer),
                       evstream._ephemeral_tail(), evstream._ephemeral_prune(bigint)
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION evstream.publish(text, text, jsonb, text, text, text) TO evstream_writer;

-- evstream_daemon: a writer and a trusted service (it writes as the token's user), plus the
-- outbox and presence.
GRANT USAGE ON SCHEMA evstream TO evstream_daemon;
GRANT evstream_writer TO evstream_daemon;
GRANT evstream_service TO evstream_daemon;
GRANT EXECUTE ON FUNCTION evstream._publish_each(jsonb), evstream._publish_batch(jsonb),
                          evstream._presence_send(jsonb),
                          evstream._ephemeral_read(bigint, bigint[], integer),
                          evstream._ephemeral_tail(), evstream._ephemeral_prune(bigint)
  TO evstream_daemon;
-- ---------------------------------------------------------------------------------------------
-- Stats: per channel and event type, how many events and the first and last time, at a cost
-- that does not grow with the log. Appends do no work for it (no row updated per append: that
-- would serialise every writer on one hot row). Instead readers fold: the events below the
-- delivery horizon that no fold has counted yet are added into evstream.event_stats, and the
-- watermark evstream.event_stats_state.folded_below moves up to that horizon. Events committed
-- later never get an order key below the horizon (see evstream.horizon()), so every event is
-- counted exactly once. An answer is the summary plus the events at or past the watermark,
-- read in one statement (one snapshot): right whoever folds meanwhile, and small, because every
-- answer folds first (amortised O(1) per event).
-- ---------------------------------------------------------------------------------------------
CREATE TABLE evstream.event_stats (
  channel    text        NOT NULL,
  event_type text        NOT NULL,
  events     bigint      NOT NULL,
  first_at   timestamptz NOT NULL,
  last_at    timestamptz NOT NULL,
  PRIMARY KEY (channel, event_type)
);
COMMENT ON TABLE evstream.event_stats IS
  'Events per channel and event type with order_key below evstream.event_stats_state.folded_below. Written only by evstream._stats_fold, rebuild_stats and erasures.';

-- One row: every event with order_key < folded_below is counted in event_stats, none above.
CREATE TABLE evstream.event_stats_state (
  one          boolean     PRIMARY KEY DEFAULT true CHECK (one),
  folded_below bigint      NOT NULL DEFAULT 0,
  folded_at    timestamptz
);
INSERT INTO evstream.event_stats_state DEFAULT VALUES;

ALTER TABLE evstream.event_stats ENABLE ROW LEVEL SECURITY;
CREATE POLICY event_stats_read ON evstream.event_stats FOR SELECT
  USING (evstream.channel_allowed(channel));

-- _stats_fold(): adds the events in [folded_below, horizon) into event_stats and moves the
-- watermark to the horizon (to a lower order key when more than 1 000 000 events wait); returns the number of (channel, event type) groups touched. Holds the
-- watermark row until the caller's transaction ends; a second folder meanwhile skips (SKIP LOCKED)
-- rather than waits. Does nothing in a read-only transaction (a standby) or under REPEATABLE
-- READ / SERIALIZABLE (the watermark row may have moved since the snapshot): readers then count
-- the tail past the watermark themselves.
CREATE FUNCTION evstream._stats_fold() RETURNS bigint
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  below bigint;
  horizon bigint;
  upper bigint;
  n bigint;
BEGIN
  IF current_setting('transaction_read_only')::boolean
     OR current_setting('transaction_isolation') IN ('repeatable read', 'serializable') THEN
    RETURN 0;
  END IF;
  SELECT s.folded_below INTO below FROM evstream.event_stats_state s FOR UPDATE SKIP LOCKED;
  IF NOT FOUND THEN
    RETURN 0;
  END IF;
  -- The one horizon (see read_after), computed before the statement that reads below it.
  horizon := evstream._read_horizon(below);
  IF horizon <= below THEN
    RETURN 0;
  END IF;
  -- At most ~1 000 000 events per fold, so that one fold fits a statement timeout however far
  -- behind the summary is (the next fold takes the rest; the tail covers them meanwhile). The
  -- bound is an order key: a transaction's events are folded together.
  EXECUTE 'SELECT e.order_key FROM evstream.events e WHERE e.order_key >= $1 AND e.order_key < $2
            ORDER BY e.order_key OFFSET 1000000 LIMIT 1'
    INTO upper USING below, horizon;
  IF upper IS NOT NULL AND upper > below THEN
    horizon := upper;
  END IF;
  -- EXECUTE: planned with the bounds known, so a short range is read through events_order_idx.
  EXECUTE
    'INSERT INTO evstream.event_stats AS s (channel, event_type, events, first_at, last_at)
     SELECT e.channel, e.event_type, count(*), min(e.created_at), max(e.created_at)
       FROM evstream.events e
      WHERE e.order_key >= $1 AND e.order_key < $2
      GROUP BY e.channel, e.event_type
     ON CONFLICT (channel, event_type) DO UPDATE
        SET events = s.events + excluded.events,
            first_at = least(s.first_at, excluded.first_at),
            last_at = greatest(s.last_at, excluded.last_at)'
    USING below, horizon;
  GET DIAGNOSTICS n = ROW_COUNT;
  UPDATE evstream.event_stats_state s SET folded_below = horizon, folded_at = now();
  RETURN n;
END
$$;

-- channel_stats(channels): per channel and event type, the events the caller may see (row-level
-- security on the summary and the log), of the given channels (NULL: all). Folds first. Its cost
-- grows with the number of (channel, event type) groups and the events appended since the last
-- fold, not with the log.
CREATE FUNCTION evstream.channel_stats(channels text[] DEFAULT NULL)
  RETURNS TABLE (channel text, event_type text, events bigint, first_at timestamptz, last_at timestamptz)
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  below bigint;
BEGIN
  PERFORM evstream._stats_fold();
  SELECT w.folded_below INTO below FROM evstream.event_stats_state w;
  -- One statement reads the summary and the tail past the watermark of the same snapshot (the
  -- subquery: a fold may have committed since `below` was read; the watermark only grows).
  -- `below`, known when EXECUTE plans, lets the planner read the tail through events_order_idx.
  RETURN QUERY EXECUTE
    'SELECT x.channel, x.event_type, sum(x.events)::bigint, min(x.first_at), max(x.last_at)
       FROM (SELECT s.channel, s.event_type, s.events, s.first_at, s.last_at
               FROM evstream.event_stats s
              WHERE $2::text[] IS NULL OR s.channel = ANY ($2::text[])
             UNION ALL
             SELECT e.channel, e.event_type, count(*), min(e.created_at), max(e.created_at)
               FROM evstream.events e
              WHERE e.order_key >= $1
                AND e.order_key >= (SELECT w.folded_below FROM evstream.event_stats_state w)
                AND ($2::text[] IS NULL OR e.channel = ANY ($2::text[]))
              GROUP BY e.channel, e.event_type) x
      GROUP BY x.channel, x.event_type
      ORDER BY x.channel, x.event_type'
    USING coalesce(below, 0), channels;
END
$$;

-- stats(): per event type over every channel the caller may see (what channel_stats sums).
CREATE FUNCTION evstream.stats()
  RETURNS TABLE (event_type text, events bigint, first_at timestamptz, last_at timestamptz)
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RETURN QUERY
    SELECT c.event_type, sum(c.events)::bigint, min(c.first_at), max(c.last_at)
      FROM evstream.channel_stats(NULL) c
     GROUP BY c.event_type ORDER BY c.event_type;
END
$$;

-- Erasure: events deleted from the log (erase_aggregate, the only way) leave the summary with
-- them. Waits for the watermark row (a fold in progress finishes first; none starts until this
-- transaction ends), subtracts the deleted events below the watermark, and recounts a group's
-- first and last time from the log only when a deleted event held one of them.
CREATE FUNCTION evstream._stats_erased() RETURNS trigger
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  below bigint;
  g record;
BEGIN
  SELECT s.folded_below INTO below FROM evstream.event_stats_state s FOR UPDATE;
  FOR g IN SELECT o.channel, o.event_type, count(*) AS n, min(o.created_at) AS first_at,
                  max(o.created_at) AS last_at
             FROM gone o WHERE o.order_key < below
            GROUP BY o.channel, o.event_type LOOP
    UPDATE evstream.event_stats s SET events = s.events - g.n
     WHERE s.channel = g.channel AND s.event_type = g.event_type;
    DELETE FROM evstream.event_stats s
     WHERE s.channel = g.channel AND s.event_type = g.event_type AND s.events <= 0;
    UPDATE evstream.event_stats s
       SET (first_at, last_at) = (SELECT min(e.created_at), max(e.created_at) FROM evstream.events e
                                   WHERE e.channel = g.channel AND e.event_type = g.event_type
                                     AND e.order_key < below)
     WHERE s.channel = g.channel AND s.event_type = g.event_type
       AND (s.first_at >= g.first_at OR s.last_at <= g.last_at);
  END LOOP;
  RETURN NULL;
END
$$;
CREATE TRIGGER events_erased_stats AFTER DELETE ON evstream.events
  REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION evstream._stats_erased();
ALTER TABLE evstream.events ENABLE ALWAYS TRIGGER events_erased_stats;

-- rebuild_stats(): recounts the summary from the log below the watermark (to check or repair
-- it), then folds; returns the number of groups. Waits for a fold in progress. The watermark
-- never moves down (channel_stats relies on it).
CREATE FUNCTION evstream.rebuild_stats() RETURNS bigint
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  below bigint;
  n bigint;
BEGIN
  IF NOT pg_has_role(evstream._caller(), 'evstream_admin', 'USAGE') THEN
    RAISE EXCEPTION 'permission denied for function rebuild_stats' USING ERRCODE = '42501',
      HINT = 'Only members of evstream_admin rebuild the stats.';
  END IF;
  SELECT s.folded_below INTO below FROM evstream.event_stats_state s FOR UPDATE;
  DELETE FROM evstream.event_stats;
  INSERT INTO evstream.event_stats (channel, event_type, events, first_at, last_at)
  SELECT e.channel, e.event_type, count(*), min(e.created_at), max(e.created_at)
    FROM evstream.events e WHERE e.order_key < below
   GROUP BY e.channel, e.event_type;
  -- SKIP LOCKED never skips a row this transaction holds: the fold runs under this lock.
  PERFORM evstream._stats_fold();
  SELECT count(*) INTO n FROM evstream.event_stats;
  RETURN n;
END
$$;

-- Privileges: the summary is read under row-level security, written only by the functions above.
REVOKE ALL ON evstream.event_stats, evstream.event_stats_state FROM PUBLIC;
REVOKE ALL ON FUNCTION evstream._stats_fold(), evstream.channel_stats(text[]), evstream.stats(),
                       evstream._stats_erased(), evstream.rebuild_stats() FROM PUBLIC;
GRANT SELECT ON evstream.event_stats, evstream.event_stats_state TO evstream_reader;
GRANT EXECUTE ON FUNCTION evstream._stats_fold(), evstream.channel_stats(text[]), evstream.stats()
  TO evstream_reader;
GRANT EXECUTE ON FUNCTION evstream.rebuild_stats() TO evstream_admin;
-- The trigger's function runs for whoever deletes from the log (only the owner can).
GRANT EXECUTE ON FUNCTION evstream._stats_erased() TO PUBLIC;
