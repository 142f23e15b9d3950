// Consumers under real concurrent sessions: members of a group split one stream with no loss
// and no duplicate; two workers of one member never hold the same events; and the extension's
// cluster-wide roles survive a second database's CREATE / DROP EXTENSION.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { connect, connectMany, closeAll, unique } from './support/pg.mjs';

// Commits `count` events of a fresh aggregate type over `aggregates` aggregates, in one batch.
async function seed(client, count, aggregates) {
  const type = unique('cons');
  const events = Array.from({ length: count }, (_, i) => ({
    channel: 'project:consumers', aggregate_type: type, aggregate_id: `a${i % aggregates}`,
    event_type: `${type}.happened`, data: { i },
  }));
  await client.query('SELECT count(*) FROM evstream.post_events($1)', [JSON.stringify(events)]);
  return type;
}

// One worker: consume a batch, ack its last position, commit; until consume returns nothing.
// Returns the events of `type` it received, in order.
async function work(client, consumer, member, size, type, { batch = 37, onBatch } = {}) {
  const got = [];
  for (;;) {
    await client.query('BEGIN');
    const { rows } = await client.query(
      'SELECT position, aggregate_type, aggregate_id, version FROM evstream.consume($1, $2, $3, $4)',
      [consumer, batch, member, size]);
    if (rows.length === 0) {
      await client.query('COMMIT');
      return got;
    }
    if (onBatch) await onBatch(rows);
    for (const r of rows) if (r.aggregate_type === type) got.push(r);
    await client.query('SELECT evstream.ack($1, $2, $3)', [consumer, rows.at(-1).position, member]);
    await client.query('COMMIT');
  }
}

test('two members of a group split a stream of 1000 events: no loss, no duplicate, aggregates in order', async () => {
  const [writer, m0, m1] = await connectMany(3);
  try {
    const type = await seed(writer, 1000, 40);
    const consumer = unique('split-');
    const [got0, got1] = await Promise.all([
      work(m0, consumer, 0, 2, type),
      work(m1, consumer, 1, 2, type),
    ]);
    const all = [...got0, ...got1].map((r) => r.position);
    assert.equal(all.length, 1000, 'every event delivered exactly once in total');
    assert.equal(new Set(all).size, 1000, 'no event delivered twice');
    assert.ok(got0.length > 0 && got1.length > 0, 'both members got work');
    const owner = new Map();
    for (const [m, got] of [[0, got0], [1, got1]]) {
      const last = new Map();
      for (const r of got) {
        assert.equal(owner.get(r.aggregate_id) ?? m, m, `aggregate ${r.aggregate_id} stays on one member`);
        owner.set(r.aggregate_id, m);
        assert.equal(r.version, (last.get(r.aggregate_id) ?? 0) + 1, 'an aggregate\'s events arrive in version order');
        last.set(r.aggregate_id, r.version);
      }
    }
  } finally {
    await closeAll([writer, m0, m1]);
  }
});

test('two workers of one member never get the same events (non-blocking lock on the member)', async () => {
  const [writer, w1, w2] = await connectMany(3);
  try {
    const type = await seed(writer, 1000, 25);
    const consumer = unique('workers-');

    // While w1's transaction holds a batch, w2 gets nothing; after w1 acks, w2 gets the next batch.
    await w1.query('BEGIN');
    const first = (await w1.query('SELECT position, aggregate_type FROM evstream.consume($1, 10)', [consumer])).rows;
    assert.equal(first.length, 10);
    const during = (await w2.query('SELECT position FROM evstream.consume($1, 10)', [consumer])).rows;
    assert.equal(during.length, 0, 'the second worker gets nothing while the first holds the member');
    await w1.query('SELECT evstream.ack($1, $2)', [consumer, first.at(-1).position]);
    await w1.query('COMMIT');
    await w2.query('BEGIN');
    const after = (await w2.query('SELECT position, aggregate_type FROM evstream.consume($1, 10)', [consumer])).rows;
    assert.equal(after.length, 10);
    assert.ok(!after.some((r) => first.some((f) => f.position === r.position)), 'the next batch is disjoint');
    await w2.query('SELECT evstream.ack($1, $2)', [consumer, after.at(-1).position]);
    await w2.query('COMMIT');

    // Both workers loop on the rest at once: together they see everything after the first batch once.
    const [a, b] = await Promise.all([
      work(w1, consumer, 0, 1, type, { batch: 20 }),
      work(w2, consumer, 0, 1, type, { batch: 20 }),
    ]);
    const rest = [...a, ...b].map((r) => r.position);
    assert.equal(new Set(rest).size, rest.length, 'no event went to both workers');
    const held = [...first, ...after].filter((r) => r.aggregate_type === type).length;
    assert.equal(rest.length + held, 1000, 'no event of the stream was lost');
  } finally {
    await closeAll([writer, w1, w2]);
  }
});

test('roles are cluster-wide: a second database creates and drops the extension without harm', async () => {
  const admin = await connect();
  const db = unique('evstream_second_');
  try {
    await admin.query(`CREATE DATABASE ${db}`);
    const second = new pg.Client({ database: db });
    await second.connect();
    try {
      await second.query('CREATE EXTENSION evstream');
      const roles = (await second.query(
        "SELECT count(*)::int AS n FROM pg_roles WHERE rolname IN ('evstream_reader', 'evstream_writer', 'evstream_admin')")).rows[0].n;
      assert.equal(roles, 3, 'the roles exist and CREATE EXTENSION succeeded next to them');
      await second.query('DROP EXTENSION evstream');
    } finally {
      await second.end();
    }
    // The first database still works for its roles.
    const role = unique('e2e_writer_');
    await admin.query(`CREATE ROLE ${role} IN ROLE evstream_writer`);
    try {
      await admin.query('BEGIN');
      await admin.query(`SET LOCAL ROLE ${role}`);
      await admin.query(`SET LOCAL request.jwt.claims = '{"sub": "roles", "projects": ["roles"]}'`);
      const { rows } = await admin.query(
        "SELECT version FROM evstream.post_event('project:roles', 'roles', $1, 'roles.checked')", [role]);
      assert.equal(rows[0].version, 1, 'a writer in the first database still posts');
      await admin.query('ROLLBACK');
    } finally {
      await admin.query(`DROP ROLE ${role}`);
    }
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
    await admin.end();
  }
});

// Not a consumer flow, but it needs two sessions: each backend caches compiled schemas and
// projection/state-machine configuration, and a catalog change in one session must reach the
// caches of the others at their next transaction.
test('catalog changes in one session reach the cached schemas and projections of another', async () => {
  const [a, b] = await connectMany(2);
  const type = unique('cache');
  const table = `${type}_rows`;
  try {
    // Session a caches "unregistered, no projection" for the type.
    await a.query("SELECT evstream.post_event('project:cache', $1, 'x1', $2, '{\"n\": -1}')", [type, `${type}.set`]);
    await b.query(`CREATE TABLE ${table} (id text PRIMARY KEY, n integer)`);
    await b.query('SELECT evstream.register_event_type($1, $2)',
      [`${type}.set`, JSON.stringify({ properties: { n: { type: 'integer', minimum: 0 } } })]);
    await b.query('SELECT evstream.project_into($1, $2)', [type, table]);
    await assert.rejects(
      a.query("SELECT evstream.post_event('project:cache', $1, 'x2', $2, '{\"n\": -1}')", [type, `${type}.set`]),
      (e) => e.code === 'EV003' && e.message === 'data.n: -1 is less than minimum 0',
      'the schema registered by session b applies in session a');
    await a.query("SELECT evstream.post_event('project:cache', $1, 'x3', $2, '{\"n\": 7}')", [type, `${type}.set`]);
    const { rows } = await b.query(`SELECT id, n FROM ${table}`);
    assert.deepEqual(rows, [{ id: 'x3', n: 7 }], 'the projection registered by session b is written by session a');
    await b.query('SELECT evstream.allow_transition($1, NULL, $2, $3)', [type, `${type}.opened`, 'open']);
    await assert.rejects(
      a.query("SELECT evstream.post_event('project:cache', $1, 'x4', $2, '{\"n\": 1}')", [type, `${type}.set`]),
      (e) => e.code === 'EV004', 'a state machine declared by session b applies in session a');
  } finally {
    await b.query(`DELETE FROM evstream.projections WHERE aggregate_type = $1`, [type]).catch(() => {});
    await b.query(`DELETE FROM evstream.transitions WHERE aggregate_type = $1`, [type]).catch(() => {});
    await b.query(`DELETE FROM evstream.event_types WHERE event_type = $1`, [`${type}.set`]).catch(() => {});
    await b.query(`DROP TABLE IF EXISTS ${table}`).catch(() => {});
    await closeAll([a, b]);
  }
});
