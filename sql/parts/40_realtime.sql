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
