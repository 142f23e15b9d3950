-- =============================================================================================
-- State from events (issue 3): catalog, projections, state machine, consumers, security.
-- =============================================================================================

-- ---------------------------------------------------------------------------------------------
-- Event-type catalog
-- ---------------------------------------------------------------------------------------------
CREATE TABLE evstream.event_types (
  event_type    text        PRIMARY KEY,
  schema        jsonb,
  description   text,
  example       jsonb,
  registered_at timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE evstream.event_types IS
  'Registered event types; post_event validates data against schema. Write with evstream.register_event_type.';

-- Projections: one target table per aggregate type.
CREATE TABLE evstream.projections (
  aggregate_type text        PRIMARY KEY,
  target         regclass    NOT NULL,
  key_column     name        NOT NULL,
  status_column  name        NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now()
);

-- The state machine: from_state NULL = the aggregate does not exist yet.
CREATE TABLE evstream.transitions (
  aggregate_type text NOT NULL,
  from_state     text,
  event_type     text NOT NULL,
  to_state       text NOT NULL,
  CONSTRAINT transitions_key UNIQUE NULLS NOT DISTINCT (aggregate_type, from_state, event_type)
);

-- Any change to the catalog drops every backend's cached schemas and configurations.
CREATE FUNCTION evstream._catalog_changed() RETURNS trigger
  LANGUAGE c AS 'MODULE_PATHNAME', 'evstream_catalog_changed';
CREATE TRIGGER event_types_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
  ON evstream.event_types FOR EACH STATEMENT EXECUTE FUNCTION evstream._catalog_changed();
CREATE TRIGGER projections_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
  ON evstream.projections FOR EACH STATEMENT EXECUTE FUNCTION evstream._catalog_changed();
CREATE TRIGGER transitions_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
  ON evstream.transitions FOR EACH STATEMENT EXECUTE FUNCTION evstream._catalog_changed();

SELECT pg_catalog.pg_extension_config_dump('evstream.event_types', '');
SELECT pg_catalog.pg_extension_config_dump('evstream.projections', '');
SELECT pg_catalog.pg_extension_config_dump('evstream.transitions', '');

CREATE FUNCTION evstream.register_event_type(event_type text, schema jsonb DEFAULT NULL,
                                             description text DEFAULT NULL, example jsonb DEFAULT NULL)
  RETURNS void
  LANGUAGE c VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
  AS 'MODULE_PATHNAME', 'evstream_register_event_type';

CREATE FUNCTION evstream.project_into(aggregate_type text, target regclass,
                                      key_column name DEFAULT 'id', status_column name DEFAULT 'status')
  RETURNS void
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF aggregate_type IS NULL OR target IS NULL OR key_column IS NULL OR status_column IS NULL THEN
    RAISE EXCEPTION 'aggregate_type, target, key_column and status_column must not be null'
      USING ERRCODE = '22004';
  END IF;
  -- Projections write the target with the rights of whoever appends (and rebuild/erase with
  -- the admin's): the admin registering it must be able to write it too.
  IF NOT pg_catalog.has_table_privilege(evstream._caller(), target, 'INSERT, UPDATE') THEN
    RAISE EXCEPTION 'permission denied: the caller cannot insert into and update %', target
      USING ERRCODE = '42501';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = target AND a.attname = key_column
                   AND a.attnum > 0 AND NOT a.attisdropped) THEN
    RAISE EXCEPTION 'key column "%" does not exist in %', key_column, target
      USING ERRCODE = '42703';
  END IF;
  IF NOT EXISTS (
      SELECT 1 FROM pg_catalog.pg_index i JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
       WHERE i.indrelid = target AND i.indisunique AND i.indnkeyatts = 1 AND i.indpred IS NULL
         AND i.indexprs IS NULL AND a.attname = key_column) THEN
    RAISE EXCEPTION 'key column "%" of % has no unique index', key_column, target
      USING ERRCODE = '42P10',
            HINT = 'Projections upsert by the key column: make it the primary key or add a unique index.';
  END IF;
  INSERT INTO evstream.projections AS p (aggregate_type, target, key_column, status_column)
  VALUES (project_into.aggregate_type, target, key_column, status_column)
  ON CONFLICT ON CONSTRAINT projections_pkey DO UPDATE
    SET target = EXCLUDED.target, key_column = EXCLUDED.key_column,
        status_column = EXCLUDED.status_column, created_at = now();
END
$$;

-- remove_projection(aggregate_type): stop projecting an aggregate type (the target table stays).
CREATE FUNCTION evstream.remove_projection(aggregate_type text) RETURNS boolean
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  DELETE FROM evstream.projections p WHERE p.aggregate_type = remove_projection.aggregate_type;
  RETURN FOUND;
END
$$;

CREATE FUNCTION evstream.allow_transition(aggregate_type text, from_state text, event_type text,
                                          to_state text)
  RETURNS void
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF aggregate_type IS NULL OR event_type IS NULL OR to_state IS NULL THEN
    RAISE EXCEPTION 'aggregate_type, event_type and to_state must not be null'
      USING ERRCODE = '22004',
            HINT = 'from_state may be NULL: the event then creates the aggregate.';
  END IF;
  INSERT INTO evstream.transitions AS t (aggregate_type, from_state, event_type, to_state)
  VALUES (allow_transition.aggregate_type, allow_transition.from_state, allow_transition.event_type,
          allow_transition.to_state)
  ON CONFLICT ON CONSTRAINT transitions_key DO UPDATE SET to_state = EXCLUDED.to_state;
END
$$;

CREATE FUNCTION evstream.rebuild(aggregate_type text) RETURNS bigint
  LANGUAGE c VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
  AS 'MODULE_PATHNAME', 'evstream_rebuild';

CREATE FUNCTION evstream.state_at(aggregate_type text, aggregate_id text,
                                  at_version integer DEFAULT NULL, at_time timestamptz DEFAULT NULL)
  RETURNS jsonb
  LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'evstream_state_at';

