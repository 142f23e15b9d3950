-- =============================================================================================
-- Ephemeral events (issue 7): delivered to current subscribers, never stored.
-- =============================================================================================
-- publish() sends one NOTIFY on channel evstream_ephemeral whose payload is the SSE frame's data
-- object; every evstreamd LISTENs and fans it out (no id: line, at most once, no replay).
-- NOTIFY is transactional: the event leaves at commit, and not at all on rollback.
-- NOTIFY payloads must be shorter than 8000 bytes: larger events fail with 22023.
-- With request.jwt.claims set, the claims must allow the channel (42501 otherwise).
CREATE FUNCTION evstream.publish(channel text, type text, data jsonb DEFAULT '{}',
                                 aggregate_type text DEFAULT NULL, aggregate_id text DEFAULT NULL,
                                 created_by text DEFAULT NULL)
  RETURNS uuid LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  claims  text := nullif(current_setting('request.jwt.claims', true), '');
  sub     text;
  eid     uuid := gen_random_uuid();
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
  IF type IN ('connected', 'heartbeat', 'reset', 'overflow', 'error', 'presence') THEN
    RAISE EXCEPTION 'type is reserved for the stream''s own frames: %', type USING ERRCODE = '22023';
  END IF;
  IF data IS NULL OR jsonb_typeof(data) <> 'object' THEN
    RAISE EXCEPTION 'data must be a JSON object' USING ERRCODE = '22023';
  END IF;
  IF claims IS NOT NULL AND NOT evstream.channel_allowed(channel) THEN
    RAISE EXCEPTION 'channel not allowed by the claims: %', channel USING ERRCODE = '42501';
  END IF;
  IF created_by IS NULL THEN
    sub := claims::jsonb ->> 'sub';
    created_by := CASE WHEN sub IS NOT NULL AND sub <> '' THEN 'user:' || sub ELSE 'system' END;
  END IF;
  payload := json_build_object(
    'type', type, 'channel', channel, 'entity', aggregate_type, 'id', aggregate_id,
    'data', data::json, 'ephemeral', true, 'ephemeralId', eid, 'createdBy', created_by,
    'timestamp', to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))::text;
  IF octet_length(payload) >= 8000 THEN
    RAISE EXCEPTION 'ephemeral event is too large: % bytes (limit 7999)', octet_length(payload)
      USING ERRCODE = '22023',
            HINT = 'NOTIFY payloads must be shorter than 8000 bytes; store big payloads with post_event';
  END IF;
  PERFORM pg_notify('evstream_ephemeral', payload);
  RETURN eid;
END
$$;
REVOKE ALL ON FUNCTION evstream.publish(text, text, jsonb, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION evstream.publish(text, text, jsonb, text, text, text) TO evstream_writer;
