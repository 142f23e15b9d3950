-- evstream 0.1.0 -> 0.2.0: delivery below a horizon that only event writers hold back.
-- Events were read in (tx, position) order below the cluster's xmin; they are now read in
-- (order_key, position) order below evstream's horizon (see evstream.horizon()). Existing rows
-- get order keys in their old order (2 x the rank of their tx), consumer checkpoints keys that
-- keep them between the same events, so Last-Event-ID values and checkpoints resume exactly
-- where they were. Stats come from a summary folded below the same horizon (filled here from
-- the existing rows). Never edit this file once released.
\echo Use "ALTER EXTENSION evstream UPDATE TO '0.2.0'" to load this file. \quit

SELECT evstream._require_preload();

-- Every transaction that appended has ended (committed or not) once these locks are held: the
-- conversion sees the whole log, and nothing is appended under the old rule meanwhile.
LOCK TABLE evstream.events, evstream.consumer_checkpoints IN ACCESS EXCLUSIVE MODE;

-- The log: order_key from the old (tx, position) order.
ALTER TABLE evstream.events ADD COLUMN order_key bigint;
ALTER TABLE evstream.events DISABLE TRIGGER events_immutable_rows;
UPDATE evstream.events e SET order_key = 2 * r.n
  FROM (SELECT d.tx, dense_rank() OVER (ORDER BY d.tx) AS n
          FROM (SELECT DISTINCT x.tx FROM evstream.events x) d) r
 WHERE e.tx = r.tx;
ALTER TABLE evstream.events ENABLE ALWAYS TRIGGER events_immutable_rows;
ALTER TABLE evstream.events ALTER COLUMN order_key SET NOT NULL;
DROP INDEX evstream.events_tx_position_idx;
-- Gap-free reading walks (order_key, position).
CREATE INDEX events_order_idx ON evstream.events (order_key, position);
-- Order keys are reserved from this sequence in blocks of 1024 (block b: keys b*1024 ..
-- b*1024+1023): a key is never handed out twice, nor below one handed out, across restarts.
CREATE SEQUENCE evstream.order_key_blocks AS bigint;
SELECT pg_catalog.setval('evstream.order_key_blocks', coalesce(max(order_key), 0) / 1024 + 1)
  FROM evstream.events;
REVOKE ALL ON SEQUENCE evstream.order_key_blocks FROM PUBLIC;

-- Checkpoints: (tx, position) -> (order_key, position). A checkpoint on an event gets that
-- event's key; one whose tx has no event left (erased) gets the odd key between its neighbours.
ALTER TABLE evstream.consumer_checkpoints ADD COLUMN order_key bigint NOT NULL DEFAULT 0;
UPDATE evstream.consumer_checkpoints k SET order_key =
  CASE WHEN k.tx = '0'::xid8 THEN 0
       WHEN EXISTS (SELECT 1 FROM evstream.events e WHERE e.tx = k.tx)
         THEN 2 * (SELECT count(DISTINCT e.tx) FROM evstream.events e WHERE e.tx <= k.tx)
       ELSE 2 * (SELECT count(DISTINCT e.tx) FROM evstream.events e WHERE e.tx < k.tx) + 1
  END;
ALTER TABLE evstream.consumer_checkpoints DROP COLUMN tx;

-- Every reader of the global order (read_after, consume, evstreamd's feed, replays and
-- GET /api/events) reads below one horizon, computed by the extension (horizon.cpp):
-- horizon = min(next order key, smallest order key of an open appending transaction of this
-- database). Only transactions that have appended hold it back. VOLATILE: each call computes
-- the horizon, then reads with a snapshot taken after it.
CREATE OR REPLACE FUNCTION evstream.read_after(after_position bigint DEFAULT 0, max_count integer DEFAULT 1000,
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

CREATE OR REPLACE FUNCTION evstream.consume(consumer text, max_count integer DEFAULT 100, member integer DEFAULT 0,
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

CREATE OR REPLACE FUNCTION evstream._advance(consumer text, "position" bigint, member integer)
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

-- A BEGIN ATOMIC body keeps the columns of e.* as they were when it was created: again with
-- order_key.
CREATE OR REPLACE FUNCTION evstream.events_by_correlation(correlation_id uuid)
  RETURNS SETOF evstream.events
  LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
  BEGIN ATOMIC
    SELECT e.* FROM evstream.events e
     WHERE e.correlation_id = events_by_correlation.correlation_id OR e.id = events_by_correlation.correlation_id
     ORDER BY e.position;
  END;

-- Changed in sql/parts after 0.1.0 (folded in here): publish() also refuses type "reauth"; the
-- ephemeral outbox's writers and reader are C++ (same signatures, errors and payload text);
-- _publish_each is SECURITY DEFINER like the other writers.
CREATE OR REPLACE FUNCTION evstream.publish(channel text, type text, data jsonb DEFAULT '{}',
                                 aggregate_type text DEFAULT NULL, aggregate_id text DEFAULT NULL,
                                 created_by text DEFAULT NULL)
  RETURNS uuid LANGUAGE c VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
  AS 'MODULE_PATHNAME', 'evstream_publish';
CREATE OR REPLACE FUNCTION evstream._publish_each(items jsonb) RETURNS SETOF uuid
  LANGUAGE c VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
  AS 'MODULE_PATHNAME', 'evstream_publish_each';
CREATE OR REPLACE FUNCTION evstream._presence_send(messages jsonb) RETURNS void
  LANGUAGE c VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
  AS 'MODULE_PATHNAME', 'evstream_presence_send';
CREATE OR REPLACE FUNCTION evstream._ephemeral_read(after bigint, gaps bigint[], max_count integer)
  RETURNS TABLE (id bigint, kind text, channel text, type text, entity text, entity_id text,
                 payload text, horizon xid8, next_xid xid8)
  LANGUAGE c STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
  AS 'MODULE_PATHNAME', 'evstream_ephemeral_read';
-- _publish_batch: _publish_each returning each item's outbox row (evstreamd hands its own rows
-- to its own subscribers); evstream_daemon only.
CREATE FUNCTION evstream._publish_batch(items jsonb)
  RETURNS TABLE (ephemeral_id uuid, outbox_id bigint, payload text)
  LANGUAGE c VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
  AS 'MODULE_PATHNAME', 'evstream_publish_batch';
REVOKE ALL ON FUNCTION evstream._publish_batch(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION evstream._publish_batch(jsonb) TO evstream_daemon;
COMMENT ON TABLE evstream.ephemeral_outbox IS
  'Ephemeral events and presence messages on their way to evstreamd; written only by evstream.publish, evstream._publish_each, evstream._publish_batch and evstream._presence_send.';

REVOKE ALL ON FUNCTION evstream._read_horizon(bigint), evstream.log_tail(), evstream._held_back(),
                       evstream._horizon_holders(), evstream.horizon() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION evstream._read_horizon(bigint),
                          evstream.log_tail(),
                          evstream._held_back(),
                          evstream._horizon_holders(),
                          evstream.horizon()
  TO evstream_reader;

-- Stats from a summary (issue 11): evstream.stats() was a GROUP BY over the whole log; it now
-- reads evstream.event_stats, folded from the log below the horizon (as in sql/parts/50_stats.sql).
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
CREATE OR REPLACE FUNCTION evstream.stats()
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

-- Fill the summary from the existing rows: no appending transaction is open (the log is locked),
-- so the horizon is above every event; each fold takes at most ~1 000 000 events, so fold until
-- the watermark stops moving.
DO $$
DECLARE
  before bigint;
  after bigint;
BEGIN
  LOOP
    SELECT s.folded_below INTO before FROM evstream.event_stats_state s;
    PERFORM evstream._stats_fold();
    SELECT s.folded_below INTO after FROM evstream.event_stats_state s;
    EXIT WHEN after = before;
  END LOOP;
END
$$;
