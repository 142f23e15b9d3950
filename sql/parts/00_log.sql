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

-- History and stats. Both run as the caller: row-level security limits them to its channels.
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

