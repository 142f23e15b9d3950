-- evstream 0.1.0 -> 0.2.0: delivery below a horizon that only event writers hold back.
-- Events were read in (tx, position) order below the cluster's xmin; they are now read in
-- (order_key, position) order below evstream's horizon (see evstream.horizon()). Existing rows
-- get order keys in their old order (2 x the rank of their tx), consumer checkpoints keys that
-- keep them between the same events, so Last-Event-ID values and checkpoints resume exactly
-- where they were. Never edit this file once released.
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
