-- The baseline a team would write by hand: post_event in PL/pgSQL with an idempotency lookup,
-- a version bump on a per-aggregate row, the insert, and a NOTIFY inside the transaction.
-- Same table shape and indexes as evstream.events.
DROP TABLE IF EXISTS bench_pl_events, bench_pl_aggregates CASCADE;
CREATE TABLE bench_pl_events (LIKE evstream.events INCLUDING DEFAULTS INCLUDING INDEXES INCLUDING CONSTRAINTS);
-- order_key: what the xmin-rule version never had; a constant keeps the row the same shape.
ALTER TABLE bench_pl_events ALTER COLUMN order_key SET DEFAULT 1;
-- The per-aggregate row a hand-written store keeps (evstream's own until 0.2.0).
CREATE TABLE bench_pl_aggregates (
  aggregate_type text NOT NULL, aggregate_id text NOT NULL, version integer NOT NULL, state text,
  updated_at timestamptz NOT NULL DEFAULT now(), channel text NOT NULL,
  PRIMARY KEY (aggregate_type, aggregate_id));

CREATE OR REPLACE FUNCTION bench_pl_post_event(
  p_channel text, p_aggregate_type text, p_aggregate_id text, p_event_type text,
  p_data jsonb DEFAULT '{}', p_idempotency_key text DEFAULT NULL, p_expected_version int DEFAULT NULL)
RETURNS bench_pl_events LANGUAGE plpgsql AS $$
DECLARE
  existing bench_pl_events;
  v int;
  result bench_pl_events;
BEGIN
  IF p_idempotency_key IS NOT NULL THEN
    SELECT * INTO existing FROM bench_pl_events
     WHERE channel = p_channel AND idempotency_key = p_idempotency_key;
    IF FOUND THEN RETURN existing; END IF;
  END IF;
  INSERT INTO bench_pl_aggregates AS a (aggregate_type, aggregate_id, version, channel)
  VALUES (p_aggregate_type, p_aggregate_id, 1, p_channel)
  ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE SET version = a.version + 1, updated_at = now()
  RETURNING a.version INTO v;
  IF p_expected_version IS NOT NULL AND v <> p_expected_version + 1 THEN
    RAISE EXCEPTION 'expected version % but aggregate is at %', p_expected_version, v - 1;
  END IF;
  INSERT INTO bench_pl_events (channel, aggregate_type, aggregate_id, version, event_type, data,
                               idempotency_key)
  VALUES (p_channel, p_aggregate_type, p_aggregate_id, v, p_event_type, p_data, p_idempotency_key)
  RETURNING * INTO result;
  PERFORM pg_notify('evstream', '');
  RETURN result;
END
$$;
