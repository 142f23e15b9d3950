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

-- The state of aggregates whose type has a state machine, as of their last event (written by
-- appends, replays and rebuild; erased with the aggregate). channel: the channel of the
-- aggregate's first event (row-level security). An aggregate's version is not stored anywhere
-- but the log: appends to one aggregate serialise on a transaction lock on the aggregate and
-- take the next version from events_aggregate_version_key (see evstream.aggregates).
CREATE TABLE evstream.aggregate_states (
  aggregate_type text        NOT NULL,
  aggregate_id   text        NOT NULL,
  state          text        NOT NULL,
  channel        text        NOT NULL,
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
-- Appending. Only evstream's own functions write the log: they run SECURITY DEFINER with a fixed
-- search_path and check the caller themselves (channel rule, identity rule, see security).
-- post_event and post_events set it in C (pg/search_path.hpp: pg_catalog, pg_temp, at the first
-- SQL a call runs) instead of a SET clause, which costs every call a GUC save, assign, restore.
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION evstream.post_event(
  channel text, aggregate_type text, aggregate_id text, event_type text,
  data jsonb DEFAULT '{}', metadata jsonb DEFAULT '{}',
  idempotency_key text DEFAULT NULL, expected_version integer DEFAULT NULL,
  correlation_id uuid DEFAULT NULL, causation_id uuid DEFAULT NULL,
  display jsonb DEFAULT NULL, created_by text DEFAULT NULL
) RETURNS evstream.events
  LANGUAGE c VOLATILE PARALLEL UNSAFE SECURITY DEFINER
  AS 'MODULE_PATHNAME', 'evstream_post_event';

CREATE FUNCTION evstream.post_events(events jsonb) RETURNS SETOF evstream.events
  LANGUAGE c VOLATILE PARALLEL UNSAFE SECURITY DEFINER
  AS 'MODULE_PATHNAME', 'evstream_post_events';

-- How this backend's appends wrote their rows so far: directly through the table and its
-- indexes, or through an SQL INSERT (while evstream.events is not as evstream made it: an added
-- trigger, constraint, index ...). Diagnostics; the counts start at 0 in each session.
CREATE FUNCTION evstream._append_paths(OUT direct bigint, OUT through_sql bigint)
  LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'evstream_append_paths';

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

