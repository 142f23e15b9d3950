// Hostile roles against a real daemon (issue 10 items 1-3): sessions logged in as a LOGIN-only
// role, a reader, a writer whose claims cover one project and an admin that is not superuser
// attack the log at the same time while a subscriber listens. Every attack fails with an
// SQLSTATE, nothing reaches the subscriber, the log is unchanged, delivery is not held back, and
// evstreamd stays up. evstreamd runs as a LOGIN member of evstream_daemon (the hardened set-up):
// it reads and writes the log for its users without being an admin. The pgTAP twin (tests/pgtap/hostile_roles.sql) covers every attack in one
// session; this one proves it with real, concurrent logins.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { openReady, pgClient, request, startDaemon, stopDaemon, token, uniq, waitFor } from './lib/daemon.mjs';

let d;
let db;
const roles = {};

before(async () => {
  db = pgClient();
  await db.connect();
  const tag = uniq('hr');
  roles.daemon = `${tag}_daemon`;
  await db.query(`CREATE ROLE ${roles.daemon} LOGIN IN ROLE evstream_daemon`);
  d = await startDaemon({ env: { PGUSER: roles.daemon } });
  roles.login = `${tag}_login`;
  roles.reader = `${tag}_reader`;
  roles.writer = `${tag}_writer`;
  roles.admin = `${tag}_admin`;
  await db.query(`CREATE ROLE ${roles.login} LOGIN`);
  await db.query(`CREATE ROLE ${roles.reader} LOGIN IN ROLE evstream_reader`);
  await db.query(`CREATE ROLE ${roles.writer} LOGIN IN ROLE evstream_writer`);
  await db.query(`CREATE ROLE ${roles.admin} LOGIN IN ROLE evstream_admin`);
});

after(async () => {
  await stopDaemon(d);
  for (const r of Object.values(roles)) await db.query(`DROP ROLE IF EXISTS ${r}`).catch(() => {});
  await db.end();
});

async function loginAs(user, claims) {
  const c = new pg.Client({ user });
  await c.connect();
  if (claims) await c.query(`SELECT set_config('request.jwt.claims', $1, false)`, [JSON.stringify(claims)]);
  return c;
}

// The SQLSTATE of a statement that must fail ('ok' when it did not).
async function attempt(client, sql, params = []) {
  try {
    await client.query(sql, params);
    return 'ok';
  } catch (e) {
    return e.code;
  }
}

test('every role\'s attacks fail with an SQLSTATE; the subscriber gets only the legitimate event; evstreamd stays up', async () => {
  const p = uniq('p');
  const other = uniq('q');
  const channel = `project:${p}`;
  const sub = await openReady(d, { query: `?channel=${channel}`, tokenValue: token({ sub: 'watcher', projects: [p] }) });
  assert.equal(sub.status, 200);
  // The owner's consumer, which the reader will try to move.
  await db.query("SELECT evstream.post_event($1, 'hr', 'seed', 'hr.seeded')", [`project:${other}`]);
  const consumer = uniq('hr_consumer_');
  await db.query('SELECT count(*) FROM evstream.consume($1)', [consumer]);
  const before = (await db.query(
    `SELECT (SELECT count(*)::int FROM evstream.events) AS events,
            (SELECT md5(string_agg(a::text, ',' ORDER BY aggregate_type, aggregate_id)) FROM evstream.aggregates a) AS aggregates,
            (SELECT md5(string_agg(k::text, ',' ORDER BY consumer, member)) FROM evstream.consumer_checkpoints k) AS checkpoints`)).rows[0];

  const login = await loginAs(roles.login);
  const reader = await loginAs(roles.reader, { sub: 'rita', projects: [p] });
  const writer = await loginAs(roles.writer, { sub: 'u1', projects: [p] });
  const admin = await loginAs(roles.admin);
  try {
    const insert = `INSERT INTO evstream.events (channel, aggregate_type, aggregate_id, version, event_type, tx, created_by)
                    VALUES ($1, 'hr', 'x', 1, 'hr.forged', $2::xid8, 'user:bob')`;
    // All sessions attack at once (each session runs its own attacks one after another).
    const inOrder = async (client, attacks) => {
      const out = [];
      for (const [sql, params] of attacks) out.push(await attempt(client, sql, params));
      return out;
    };
    const results = await Promise.all([
      inOrder(login, [
        ['SELECT count(*) FROM evstream.events'],
        ["SELECT evstream.post_event($1, 'hr', 'x', 'hr.forged')", [channel]],
      ]),
      inOrder(reader, [
        [insert, [channel, '3']],
        ['UPDATE evstream.consumer_checkpoints SET position = 0'],
        ['SELECT evstream.ack($1, 1)', [consumer]],
        ['SELECT count(*) FROM evstream.consume($1)', [consumer]],
      ]),
      inOrder(writer, [
        [insert, [channel, '3']],
        [insert, [channel, '9223372036854775807']],
        ["UPDATE evstream.aggregates SET version = 1000000, state = 'x'"],  // a view over the log: 55000
        ["UPDATE evstream.aggregate_states SET state = 'x'"],
        ["SELECT evstream.post_event($1, 'hr', 'x', 'hr.forged', created_by => 'user:bob')", [channel]],
        ["SELECT evstream.post_event($1, 'hr', 'x', 'hr.forged')", [`project:${other}`]],
        ["SELECT evstream.grant_channels($1, '{project:*}')", [roles.writer]],
      ]),
      inOrder(admin, [
        [insert, [channel, '3']],
        ['TRUNCATE evstream.events'],
        ["UPDATE evstream.transitions SET to_state = 'x'"],
      ]),
    ]);
    assert.deepEqual(results, [
      ['42501', '42501'],
      ['42501', '42501', '42501', '42501'],
      ['42501', '42501', '55000', '42501', '42501', 'EV005', '42501'],
      ['42501', '42501', '42501'],
    ]);
    // The log and evstream's state are unchanged.
    const now = (await db.query(
      `SELECT (SELECT count(*)::int FROM evstream.events) AS events,
              (SELECT md5(string_agg(a::text, ',' ORDER BY aggregate_type, aggregate_id)) FROM evstream.aggregates a) AS aggregates,
              (SELECT md5(string_agg(k::text, ',' ORDER BY consumer, member)) FROM evstream.consumer_checkpoints k) AS checkpoints`)).rows[0];
    assert.deepEqual(now, before);
    // A legitimate append from the same writer is delivered at once: nothing was held back.
    const legit = (await writer.query("SELECT position, created_by FROM evstream.post_event($1, 'hr', 'ok', 'hr.posted')", [channel])).rows[0];
    assert.equal(legit.created_by, 'user:u1');
    // And one through the hardened daemon's HTTP API, as the token's user.
    const viaHttp = await request(d, '/api/events', {
      method: 'POST',
      headers: { Authorization: `Bearer ${token({ sub: 'hana', projects: [p] })}`, 'Content-Type': 'application/json' },
      body: { channel, aggregate_type: 'hr', aggregate_id: 'ok2', event_type: 'hr.posted' },
    });
    assert.equal(viaHttp.status, 201, viaHttp.body);
    assert.equal(viaHttp.json.createdBy, 'user:hana');
    await sub.until((evs) => evs.some((e) => e.id === String(viaHttp.json.position)), 10000, 'the legitimate events');
    assert.deepEqual(sub.positions(), [Number(legit.position), viaHttp.json.position],
      'the subscriber received the legitimate events only');
    // The reader sees its project only.
    const seen = (await reader.query('SELECT DISTINCT channel FROM evstream.events')).rows.map((r) => r.channel);
    assert.deepEqual(seen, [channel]);
  } finally {
    sub.close();
    for (const c of [login, reader, writer, admin]) await c.end().catch(() => {});
  }
  assert.equal(d.exited, null, 'evstreamd is still running');
  assert.equal((await request(d, '/healthz')).status, 200);
});

test('a reader\'s consumer receives only its channels; other roles\' consumers stay invisible and unmovable', async () => {
  const p = uniq('p');
  const q = uniq('q');
  const mine = [];
  for (let i = 0; i < 3; i++) {
    mine.push(Number((await db.query("SELECT position FROM evstream.post_event($1, 'hr', 'c', 'hr.posted')", [`project:${p}`])).rows[0].position));
    await db.query("SELECT evstream.post_event($1, 'hr', 'c', 'hr.posted')", [`project:${q}`]);
  }
  const ownerConsumer = uniq('hr_owner_');
  await db.query('SELECT count(*) FROM evstream.consume($1)', [ownerConsumer]);
  const reader = await loginAs(roles.reader, { sub: 'rita', projects: [p] });
  const other = await loginAs(roles.writer, { sub: 'u1', projects: [p, q] });
  try {
    const consumer = uniq('hr_reader_');
    const got = (await reader.query('SELECT channel, position FROM evstream.consume($1, 1000)', [consumer])).rows;
    assert.deepEqual(got.map((r) => Number(r.position)), mine, 'only the events of its project, in order');
    await reader.query('SELECT evstream.ack($1, $2)', [consumer, mine[2]]);
    const visible = (await reader.query('SELECT consumer FROM evstream.consumer_checkpoints')).rows.map((r) => r.consumer);
    assert.deepEqual(visible, [consumer], 'it sees its own checkpoint only');
    // Another role (even one that may see more channels) cannot use the reader's consumer.
    assert.equal(await attempt(other, 'SELECT count(*) FROM evstream.consume($1)', [consumer]), '42501');
    assert.equal(await attempt(other, 'SELECT evstream.ack($1, $2)', [consumer, mine[2]]), '42501');
    assert.equal(await attempt(reader, 'SELECT evstream.fail($1, $2, $3)', [ownerConsumer, mine[0], 'x']), '42501');
  } finally {
    await reader.end();
    await other.end();
  }
});
