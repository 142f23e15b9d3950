-- evstream 0.2.0 -> 0.3.0: an append writes one row, the event. The per-aggregate row
-- (evstream.aggregates, version and state) is gone from the append path: appends to one
-- aggregate serialise on a transaction lock on the aggregate and take the next version from the
-- log's (aggregate_type, aggregate_id, version) index; states live in evstream.aggregate_states
-- (state machines only); evstream.aggregates is now a view over the log with the same columns
-- and the same visibility rule. Never edit this file once released.
\echo Use "ALTER EXTENSION evstream UPDATE TO '0.3.0'" to load this file. \quit

SELECT evstream._require_preload();

-- No append runs under the old rule meanwhile (0.2.0 appends write evstream.aggregates).
LOCK TABLE evstream.events, evstream.aggregates IN ACCESS EXCLUSIVE MODE;

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
INSERT INTO evstream.aggregate_states (aggregate_type, aggregate_id, state, channel, updated_at)
  SELECT a.aggregate_type, a.aggregate_id, a.state, a.channel, a.updated_at
    FROM evstream.aggregates a WHERE a.state IS NOT NULL;

DROP TABLE evstream.aggregates;

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

GRANT SELECT ON evstream.aggregates, evstream.aggregate_states TO evstream_reader;

-- post_event and post_events set their search path in C (pg_catalog, pg_temp, at the first SQL a
-- call runs) instead of a SET clause, which costs every call a GUC save, assign and restore.
ALTER FUNCTION evstream.post_event(text, text, text, text, jsonb, jsonb, text, integer, uuid, uuid, jsonb, text)
  RESET search_path;
ALTER FUNCTION evstream.post_events(jsonb) RESET search_path;

-- How this backend's appends wrote their rows so far: directly through the table and its
-- indexes, or through an SQL INSERT (while evstream.events is not as evstream made it: an added
-- trigger, constraint, index ...). Diagnostics; the counts start at 0 in each session.
CREATE FUNCTION evstream._append_paths(OUT direct bigint, OUT through_sql bigint)
  LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'evstream_append_paths';
REVOKE ALL ON FUNCTION evstream._append_paths() FROM PUBLIC;
