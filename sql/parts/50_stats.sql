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
