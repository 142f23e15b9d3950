-- =============================================================================================
-- Ephemeral events and presence (issues 7, 10): delivered to current subscribers, never in the log.
-- =============================================================================================
-- What evstreamd delivers travels through evstream.ephemeral_outbox, an UNLOGGED table that only
-- evstream's own functions write: publish() (events, any writer, same channel and identity rules
-- as the log) and _presence_send() (presence messages between daemons, evstream_daemon only).
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
  'Ephemeral events and presence messages on their way to evstreamd; written only by evstream.publish and evstream._presence_send.';

CREATE FUNCTION evstream._ring_ephemeral() RETURNS void
  LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'evstream_ring_ephemeral';
CREATE FUNCTION evstream._next_xid() RETURNS xid8
  LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'evstream_next_xid';

-- publish(): one ephemeral event for the subscribers of `channel` on every evstreamd.
-- 22004/22023 for bad input (reserved types, data not an object, 8000 bytes or more),
-- 42501 when channel_allowed refuses the channel or _creator the created_by.
CREATE FUNCTION evstream.publish(channel text, type text, data jsonb DEFAULT '{}',
                                 aggregate_type text DEFAULT NULL, aggregate_id text DEFAULT NULL,
                                 created_by text DEFAULT NULL)
  RETURNS uuid LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  eid     uuid := pg_catalog.gen_random_uuid();
  creator text;
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
  IF type IN ('connected', 'heartbeat', 'reset', 'overflow', 'reauth', 'error', 'presence') THEN
    RAISE EXCEPTION 'type is reserved for the stream''s own frames: %', type USING ERRCODE = '22023';
  END IF;
  IF data IS NULL OR pg_catalog.jsonb_typeof(data) <> 'object' THEN
    RAISE EXCEPTION 'data must be a JSON object' USING ERRCODE = '22023';
  END IF;
  -- The log's rules, for the caller (the role outside this function).
  IF NOT evstream.channel_allowed(channel) THEN
    RAISE EXCEPTION 'channel not allowed by the claims: %', channel USING ERRCODE = '42501',
      HINT = 'request.jwt.claims allows user:<sub>, project:<p> for each of projects, and each entry of channels.';
  END IF;
  creator := evstream._creator(created_by);
  payload := pg_catalog.json_build_object(
    'type', type, 'channel', channel, 'entity', aggregate_type, 'id', aggregate_id,
    'data', data::json, 'ephemeral', true, 'ephemeralId', eid, 'createdBy', creator,
    'timestamp', pg_catalog.to_char(pg_catalog.clock_timestamp() AT TIME ZONE 'UTC',
                                    'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))::text;
  IF pg_catalog.octet_length(payload) >= 8000 THEN
    RAISE EXCEPTION 'ephemeral event is too large: % bytes (limit 7999)', pg_catalog.octet_length(payload)
      USING ERRCODE = '22023',
            HINT = 'An ephemeral event (envelope and data) must be shorter than 8000 bytes; store big payloads with post_event.';
  END IF;
  -- The transaction id before the row id: readers rely on it to know when a gap is final.
  PERFORM pg_catalog.pg_current_xact_id();
  INSERT INTO evstream.ephemeral_outbox (kind, channel, type, entity, entity_id, payload)
    VALUES ('event', channel, type, aggregate_type, aggregate_id, payload);
  PERFORM evstream._ring_ephemeral();
  RETURN eid;
END
$$;

-- _publish_each(items): evstreamd's POST /api/publish batch, one publish() per item in order,
-- each under the claims of the token it came with ({"claims", "channel", "type", "data",
-- "entity", "id"}): the database applies its own rules to every item. Runs as the caller.
CREATE FUNCTION evstream._publish_each(items jsonb) RETURNS SETOF uuid
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  item jsonb;
BEGIN
  IF items IS NULL OR pg_catalog.jsonb_typeof(items) <> 'array' THEN
    RAISE EXCEPTION 'items must be a JSON array' USING ERRCODE = '22023';
  END IF;
  FOR item IN SELECT e FROM pg_catalog.jsonb_array_elements(items) WITH ORDINALITY AS t(e, n) ORDER BY n LOOP
    PERFORM pg_catalog.set_config('request.jwt.claims', coalesce(item ->> 'claims', ''), true);
    RETURN NEXT evstream.publish(item ->> 'channel', item ->> 'type', item -> 'data',
                                 item ->> 'entity', item ->> 'id');
  END LOOP;
END
$$;

-- _presence_send(messages): evstreamd's presence protocol messages (a JSON array of objects),
-- delivered to every evstreamd in order. evstream_daemon only: nobody else can fake presence.
CREATE FUNCTION evstream._presence_send(messages jsonb) RETURNS void
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF messages IS NULL OR pg_catalog.jsonb_typeof(messages) <> 'array' THEN
    RAISE EXCEPTION 'messages must be a JSON array' USING ERRCODE = '22023';
  END IF;
  IF EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(messages) m
              WHERE pg_catalog.jsonb_typeof(m) <> 'object') THEN
    RAISE EXCEPTION 'every presence message must be a JSON object' USING ERRCODE = '22023';
  END IF;
  PERFORM pg_catalog.pg_current_xact_id();
  INSERT INTO evstream.ephemeral_outbox (kind, payload)
    SELECT 'presence', m::text FROM pg_catalog.jsonb_array_elements(messages) WITH ORDINALITY AS t(m, n)
     ORDER BY n;
  PERFORM evstream._ring_ephemeral();
END
$$;

-- _ephemeral_read(after, gaps, max_count): one reader's next rows: the ids it still waits for
-- (`gaps`, all at or below `after`) that exist now, then up to max_count ids above `after`, in id order, after one first row (id NULL, kind 'horizon')
-- carrying this snapshot's xmin and the next transaction id. A gap whose recorded next_xid is
-- at or below a later read's horizon can no longer appear (its transaction has ended).
CREATE FUNCTION evstream._ephemeral_read(after bigint, gaps bigint[], max_count integer)
  RETURNS TABLE (id bigint, kind text, channel text, type text, entity text, entity_id text,
                 payload text, horizon xid8, next_xid xid8)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
  (SELECT NULL::bigint, 'horizon', NULL, NULL, NULL, NULL, NULL,
          pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot()), evstream._next_xid())
  UNION ALL
  (SELECT o.id, o.kind, o.channel, o.type, o.entity, o.entity_id, o.payload, NULL, NULL
     FROM evstream.ephemeral_outbox o
    WHERE o.id = ANY (gaps) AND o.id <= after
    ORDER BY o.id)
  UNION ALL  -- two index scans: one OR would walk the whole index under ORDER BY ... LIMIT
  (SELECT o.id, o.kind, o.channel, o.type, o.entity, o.entity_id, o.payload, NULL, NULL
     FROM evstream.ephemeral_outbox o
    WHERE o.id > after
    ORDER BY o.id
    LIMIT greatest(1, least(max_count, 10000)))
$$;

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
                       evstream._publish_each(jsonb), evstream._presence_send(jsonb),
                       evstream._ephemeral_read(bigint, bigint[], integer),
                       evstream._ephemeral_tail(), evstream._ephemeral_prune(bigint)
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION evstream.publish(text, text, jsonb, text, text, text) TO evstream_writer;

-- evstream_daemon: a writer and a trusted service (it writes as the token's user), plus the
-- outbox and presence.
GRANT USAGE ON SCHEMA evstream TO evstream_daemon;
GRANT evstream_writer TO evstream_daemon;
GRANT evstream_service TO evstream_daemon;
GRANT EXECUTE ON FUNCTION evstream._publish_each(jsonb), evstream._presence_send(jsonb),
                          evstream._ephemeral_read(bigint, bigint[], integer),
                          evstream._ephemeral_tail(), evstream._ephemeral_prune(bigint)
  TO evstream_daemon;
