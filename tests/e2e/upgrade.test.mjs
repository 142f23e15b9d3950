// ALTER EXTENSION evstream UPDATE from 0.1.0 (the frozen sql/evstream--0.1.0.sql) through 0.2.0 to
// the current version: a cursor (Last-Event-ID position) and a consumer checkpoint taken under 0.1.0 resume
// on exactly the same events (none lost, none repeated), and the upgraded schema is the schema
// of a fresh install.
//
// Events are written under 0.1.0 as 0.1.0's post_event wrote them (the installed library is the
// current one, whose post_event needs the current schema): rows inserted by the superuser with
// tx = the writing transaction, in transactions whose tx order differs from their position order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { connect, waitFor } from './support/pg.mjs';

const OLD_DB = 'evstream_upgrade_old';
const FRESH_DB = 'evstream_upgrade_fresh';

async function client(database) {
  const c = new pg.Client({ database });
  await c.connect();
  return c;
}

async function recreate(admin, name) {
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${name}`);
}

const insertOld = (c, agg, version, type) =>
  c.query(
    `INSERT INTO evstream.events (channel, aggregate_type, aggregate_id, version, event_type, data)
     VALUES ('project:up', 'doc', $1, $2, $3, '{}') RETURNING position`,
    [agg, version, type],
  ).then((r) => Number(r.rows[0].position));

// Every object of schema evstream as text: columns (in order, dropped ones left out), types,
// defaults, constraints, indexes, triggers, policies, functions (full definitions), privileges,
// comments, extension membership.
const SCHEMA_SQL = `
WITH ns AS (SELECT oid FROM pg_namespace WHERE nspname = 'evstream')
SELECT line FROM (
  SELECT 'rel ' || c.relname || ' ' || c.relkind::text || ' rls=' || c.relrowsecurity || ' force=' || c.relforcerowsecurity
         || ' acl=' || coalesce(c.relacl::text, '-') || ' comment=' || coalesce(obj_description(c.oid, 'pg_class'), '-') AS line
    FROM pg_class c WHERE c.relnamespace = (SELECT oid FROM ns)
  UNION ALL
  SELECT 'col ' || c.relname || ' #' || row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum) || ' ' || a.attname || ' '
         || format_type(a.atttypid, a.atttypmod) || ' notnull=' || a.attnotnull || ' default='
         || coalesce(pg_get_expr(d.adbin, d.adrelid), '-') || ' acl=' || coalesce(a.attacl::text, '-')
    FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
   WHERE c.relnamespace = (SELECT oid FROM ns) AND c.relkind IN ('r', 'v', 'u', 'p')
  UNION ALL
  SELECT 'con ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
    FROM pg_constraint WHERE connamespace = (SELECT oid FROM ns)
  UNION ALL
  SELECT 'idx ' || pg_get_indexdef(i.indexrelid)
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relnamespace = (SELECT oid FROM ns)
  UNION ALL
  SELECT 'trg ' || pg_get_triggerdef(t.oid) || ' enabled=' || t.tgenabled::text
    FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
   WHERE c.relnamespace = (SELECT oid FROM ns) AND NOT t.tgisinternal
  UNION ALL
  SELECT 'pol ' || tablename || ' ' || policyname || ' ' || cmd || ' ' || roles::text || ' '
         || coalesce(qual, '-') || ' ' || coalesce(with_check, '-')
    FROM pg_policies WHERE schemaname = 'evstream'
  UNION ALL
  SELECT 'fn ' || p.oid::regprocedure || ' acl=' || coalesce(p.proacl::text, '-') || E'\\n' || pg_get_functiondef(p.oid)
    FROM pg_proc p WHERE p.pronamespace = (SELECT oid FROM ns)
  UNION ALL
  SELECT 'seq ' || s.seqrelid::regclass || ' ' || format_type(s.seqtypid, NULL) || ' ' || s.seqincrement || ' '
         || s.seqmin || ' ' || s.seqmax || ' ' || s.seqcache || ' ' || s.seqcycle
    FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid WHERE c.relnamespace = (SELECT oid FROM ns)
  UNION ALL
  SELECT 'member ' || pg_describe_object(d.classid, d.objid, d.objsubid)
    FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
   WHERE e.extname = 'evstream' AND d.deptype = 'e'
  UNION ALL
  SELECT 'ext ' || extname || ' ' || extversion || ' config=' || coalesce(extconfig::regclass[]::text, '-')
    FROM pg_extension WHERE extname = 'evstream'
) x ORDER BY line`;

test('0.1.0 -> current: old cursors and checkpoints resume on the same events; schema equals a fresh install', async () => {
  const admin = await connect();
  let old, early, late, fresh;
  try {
    await admin.query('SET client_min_messages = warning');
    await recreate(admin, OLD_DB);
    await recreate(admin, FRESH_DB);
    old = await client(OLD_DB);
    await old.query("CREATE EXTENSION evstream VERSION '0.1.0'");
    assert.equal((await old.query("SELECT extversion FROM pg_extension WHERE extname = 'evstream'")).rows[0].extversion, '0.1.0');

    // Transactions whose tx order is not their position order: `early` takes its xid first and
    // appends last.
    early = await client(OLD_DB);
    late = await client(OLD_DB);
    const positions = [];
    for (let i = 1; i <= 3; i++) positions.push(await insertOld(old, 'a', i, 'doc.a'));
    await early.query('BEGIN');
    await early.query('SELECT pg_current_xact_id()');
    await late.query('BEGIN');
    positions.push(await insertOld(late, 'b', 1, 'doc.b'));
    positions.push(await insertOld(late, 'b', 2, 'doc.b'));
    await late.query('COMMIT');
    positions.push(await insertOld(early, 'c', 1, 'doc.c'));
    await early.query('COMMIT');
    for (let i = 1; i <= 2; i++) positions.push(await insertOld(old, 'd', i, 'doc.d'));
    // One more aggregate, erased after a consumer acked its event (its checkpoint then has a tx
    // with no event left).
    const erasedPos = await insertOld(old, 'e', 1, 'doc.e');
    positions.push(await insertOld(old, 'f', 1, 'doc.f'));

    const readAll = async (c, after) =>
      (await c.query('SELECT position FROM evstream.read_after($1, 100000)', [after])).rows.map((r) => Number(r.position));
    // 0.1.0's read_after, as its SQL was (the current library's read_after needs the new schema).
    const readOld = async (c, after) =>
      (await c.query(
        `SELECT e.position FROM evstream.events e
          WHERE ($1::bigint = 0 OR (e.tx, e.position) > ((SELECT a.tx FROM evstream.events a WHERE a.position = $1), $1))
            AND e.tx < pg_snapshot_xmin(pg_current_snapshot())
          ORDER BY e.tx, e.position`, [after])).rows.map((r) => Number(r.position));
    // 0.1.0 reads below the cluster-wide snapshot xmin: any transaction with an xid open anywhere
    // in the cluster (an autoanalyze, another database's session) holds events back for a moment.
    // Wait until none older than these events is open: xids only grow, so from then on every
    // 0.1.0 read below sees all ten (an expectation read once could catch such a moment).
    await waitFor(async () => (await old.query(
      'SELECT bool_and(tx < pg_snapshot_xmin(pg_current_snapshot())) AS ok FROM evstream.events')).rows[0].ok,
    { timeoutMs: 60000, intervalMs: 50, what: 'every 0.1.0 event below the snapshot horizon' });
    const orderBefore = await readOld(old, 0);
    assert.equal(orderBefore.length, 10, 'every event readable under 0.1.0');
    assert.notDeepEqual(orderBefore, [...orderBefore].sort((x, y) => x - y), 'tx order differs from position order');

    // Consumers: c_mid acked the 4th event in read order, c_none never acked, c_erased acked the
    // event that is then erased.
    const consume = async (c, name) =>
      (await c.query('SELECT position FROM evstream.consume($1, 100)', [name])).rows.map((r) => Number(r.position));
    await old.query('BEGIN');
    await consume(old, 'c_mid');
    await old.query('SELECT evstream.ack($1, $2)', ['c_mid', orderBefore[3]]);
    await old.query('COMMIT');
    await old.query('BEGIN');
    await consume(old, 'c_none');
    await old.query('COMMIT');
    await old.query('BEGIN');
    await consume(old, 'c_erased');
    await old.query('SELECT evstream.ack($1, $2)', ['c_erased', erasedPos]);
    await old.query('COMMIT');
    // Erased as 0.1.0's erase_aggregate did (the current library's needs the current schema):
    // its events deleted past the immutability trigger, an audit row in evstream.erasures.
    await old.query('BEGIN');
    await old.query('ALTER TABLE evstream.events DISABLE TRIGGER events_immutable_rows');
    await old.query(`WITH gone AS (DELETE FROM evstream.events WHERE aggregate_type = 'doc' AND aggregate_id = 'e'
                                   RETURNING id, position, channel)
                     INSERT INTO evstream.erasures (aggregate_type, aggregate_id, event_count, event_ids, positions,
                                                    channels, erased_by)
                     SELECT 'doc', 'e', count(*)::int, array_agg(id ORDER BY position),
                            array_agg(position ORDER BY position), array_agg(DISTINCT channel), current_user
                       FROM gone`);
    await old.query('ALTER TABLE evstream.events ENABLE ALWAYS TRIGGER events_immutable_rows');
    await old.query('COMMIT');

    const cursorsBefore = {};
    for (const p of await readOld(old, 0)) cursorsBefore[p] = await readOld(old, p);
    cursorsBefore[0] = await readOld(old, 0);
    const consumedBefore = {};
    for (const name of ['c_mid', 'c_none', 'c_erased']) {
      await old.query('BEGIN');
      consumedBefore[name] = await consume(old, name);
      await old.query('ROLLBACK');
    }
    assert.equal(consumedBefore.c_mid.length, 5, 'c_mid has the events after its checkpoint');

    await old.query("ALTER EXTENSION evstream UPDATE TO '0.2.0'");

    // The stats summary is filled from the existing rows: every event is below the watermark.
    const grouped = `SELECT channel, event_type, count(*)::int AS events, min(created_at) AS first_at,
                            max(created_at) AS last_at FROM evstream.events GROUP BY 1, 2 ORDER BY 1, 2`;
    const { rows: [state] } = await old.query(
      'SELECT folded_below > (SELECT max(order_key) FROM evstream.events) AS covers FROM evstream.event_stats_state');
    assert.equal(state.covers, true, 'the upgrade folded every existing event');
    assert.deepEqual(
      (await old.query('SELECT channel, event_type, events::int, first_at, last_at FROM evstream.event_stats ORDER BY 1, 2')).rows,
      (await old.query(grouped)).rows, 'the summary equals a GROUP BY over the upgraded log');
    assert.deepEqual((await old.query("SELECT event_type, events::int FROM evstream.stats()")).rows,
      [['doc.a', 3], ['doc.b', 2], ['doc.c', 1], ['doc.d', 2], ['doc.f', 1]].map(([event_type, events]) => ({ event_type, events })),
      'stats() after the upgrade (the erased aggregate left no trace)');

    // 0.2.0 -> 0.3.0: the per-aggregate rows (as 0.2.0's post_event left them) become
    // evstream.aggregate_states (states only); evstream.aggregates, now a view over the log,
    // shows the same versions, states and channels.
    await old.query(`INSERT INTO evstream.aggregates (aggregate_type, aggregate_id, version, state, channel)
                     VALUES ('doc', 'a', 3, 'open', 'project:up'), ('doc', 'b', 2, NULL, 'project:up'),
                            ('doc', 'c', 1, NULL, 'project:up'), ('doc', 'd', 2, 'closed', 'project:up'),
                            ('doc', 'f', 1, NULL, 'project:up')`);
    const aggregatesSql = 'SELECT aggregate_type, aggregate_id, version, state, channel FROM evstream.aggregates ORDER BY 1, 2';
    const aggregatesBefore = (await old.query(aggregatesSql)).rows;
    await old.query('ALTER EXTENSION evstream UPDATE');
    assert.equal((await old.query("SELECT extversion FROM pg_extension WHERE extname = 'evstream'")).rows[0].extversion, '0.3.0');
    assert.deepEqual((await old.query(aggregatesSql)).rows, aggregatesBefore, 'evstream.aggregates reads the same after 0.3.0');
    assert.deepEqual(
      (await old.query('SELECT aggregate_id, state, channel FROM evstream.aggregate_states ORDER BY 1')).rows,
      [{ aggregate_id: 'a', state: 'open', channel: 'project:up' }, { aggregate_id: 'd', state: 'closed', channel: 'project:up' }],
      'the states moved to evstream.aggregate_states');

    for (const [after, expected] of Object.entries(cursorsBefore))
      assert.deepEqual(await readAll(old, Number(after)), expected, `read_after(${after}) resumes on the same events`);
    for (const name of Object.keys(consumedBefore)) {
      await old.query('BEGIN');
      assert.deepEqual(await consume(old, name), consumedBefore[name], `consumer ${name} resumes on the same events`);
      await old.query('ROLLBACK');
    }
    // New events sort after every converted one, for old cursors and checkpoints alike.
    const { rows: [added] } = await old.query(
      "SELECT position FROM evstream.post_event('project:up', 'doc', 'g', 'doc.g')");
    const last = cursorsBefore[0][cursorsBefore[0].length - 1];
    assert.deepEqual(await readAll(old, last), [Number(added.position)]);
    await old.query('BEGIN');
    assert.deepEqual(await consume(old, 'c_mid'), [...consumedBefore.c_mid, Number(added.position)]);
    await old.query('ROLLBACK');

    fresh = await client(FRESH_DB);
    await fresh.query('CREATE EXTENSION evstream');
    const upgraded = (await old.query(SCHEMA_SQL)).rows.map((r) => r.line);
    const installed = (await fresh.query(SCHEMA_SQL)).rows.map((r) => r.line);
    assert.ok(installed.length > 100, 'the schema query lists the extension');
    const missing = installed.filter((l) => !upgraded.includes(l));
    const extra = upgraded.filter((l) => !installed.includes(l));
    assert.deepEqual({ missing, extra }, { missing: [], extra: [] }, 'upgraded schema equals a fresh install');
  } finally {
    for (const c of [old, early, late, fresh]) await c?.end().catch(() => {});
    await admin.query(`DROP DATABASE IF EXISTS ${OLD_DB} WITH (FORCE)`).catch(() => {});
    await admin.query(`DROP DATABASE IF EXISTS ${FRESH_DB} WITH (FORCE)`).catch(() => {});
    await admin.end();
  }
});
