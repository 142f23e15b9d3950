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

