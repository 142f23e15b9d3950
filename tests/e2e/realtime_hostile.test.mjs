// Ephemeral events and presence cannot be forged (issue 10 item 5). NOTIFY is only a doorbell:
// a LOGIN-only role NOTIFYs malformed and well-formed forged payloads on every channel evstreamd
// listens to (and a few more) — no subscriber of either instance gets anything from it, no
// presence is faked, both daemons keep their PID. One instance connects as a LOGIN member of
// evstream_daemon (the hardened set-up). The outbox is written only through evstream's functions:
// writers stay inside their claims and their identity, and the outbox is pruned.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { openReady, pgClient, request, startDaemon, stopDaemon, token, uniq, waitFor } from './lib/daemon.mjs';

// Expiry and retention are short for the test but many heartbeats long: a daemon slowed down by
// ASan on a loaded machine that misses a heartbeat slot does not make its members flap, and an
// instance that reads the outbox late still finds rows the other instance has already passed.
const FAST = ['--presence-heartbeat-ms', '300', '--presence-expiry-ms', '4000', '--presence-leave-grace-ms', '300',
  '--outbox-retention-ms', '3000'];
const tag = uniq('h');
const daemonRole = `${tag}_daemon`;
const loginRole = `${tag}_login`;
const writerRole = `${tag}_writer`;
let a;
let b;
let db;
let hostile;

before(async () => {
  db = pgClient();
  await db.connect();
  await db.query(`CREATE ROLE ${daemonRole} LOGIN IN ROLE evstream_daemon`);
  await db.query(`CREATE ROLE ${loginRole} LOGIN`);
  await db.query(`CREATE ROLE ${writerRole} LOGIN IN ROLE evstream_writer`);
  [a, b] = await Promise.all([
    startDaemon({ args: FAST }),
    startDaemon({ args: FAST, env: { PGUSER: daemonRole } }),
  ]);
  hostile = new pg.Client({ user: loginRole });
  await hostile.connect();
});
after(async () => {
  await Promise.all([stopDaemon(a), stopDaemon(b)]);
  await hostile?.end();
  for (const r of [daemonRole, loginRole, writerRole]) await db.query(`DROP ROLE IF EXISTS ${r}`).catch(() => {});
  await db.end();
});

const auth = (claims) => ({ Authorization: `Bearer ${token(claims)}`, 'Content-Type': 'application/json' });
const publish = (d, claims, body) => request(d, '/api/publish', { method: 'POST', headers: auth(claims), body });
const members = async (d, claims, channel) =>
  (await request(d, `/api/presence?channel=${encodeURIComponent(channel)}`, { headers: auth(claims) })).json;
const metric = async (d, name) =>
  Number(new RegExp(`^${name} (\\S+)`, 'm').exec((await request(d, '/metrics')).body)?.[1] ?? NaN);
const code = (client, sql, params) => client.query(sql, params).then(() => 'ok', (e) => e.code);

test('forged NOTIFY payloads on every channel: nothing delivered, no presence faked, every evstreamd keeps its PID', async () => {
  const p = uniq('p');
  const ch = `project:${p}`;
  const claims = { sub: 'watcher', projects: [p] };
  const pids = [a.child.pid, b.child.pid];
  const streams = [await openReady(a, { tokenValue: token(claims), query: `?channel=${ch}` }),
    await openReady(b, { tokenValue: token(claims), query: `?channel=${ch}` })];
  for (const d of [a, b])
    await waitFor(async () => (await members(d, claims, ch)).members.length === 1, { what: 'the watcher is a member' });

  const forgedEvent = { type: 'note.forged', channel: ch, entity: null, id: null, data: { x: 1 }, ephemeral: true,
    ephemeralId: '00000000-0000-4000-8000-000000000000', createdBy: 'user:ceo', timestamp: new Date().toISOString() };
  const payloads = [
    '{"op":1,"instance":"x"}', '{"op":"join","instance":1}', '{"op":"state","instance":"x","members":[]}',
    '{"op":"state","instance":"x","members":{"a":"b"}}', '{"type":1,"channel":[]}', 'not json', '', '[]', 'null',
    '{"op":"join","instance":"fake","channel":{"x":1},"userId":null}', '\u00ff\u00fe', '{"'.repeat(2000),
    JSON.stringify(forgedEvent),
    JSON.stringify({ ...forgedEvent, type: 'reset' }),
    JSON.stringify({ ...forgedEvent, type: 'typing', data: { userId: 'mallory', isTyping: true } }),
    JSON.stringify({ op: 'join', instance: 'fake', channel: ch, userId: 'mallory' }),
    JSON.stringify({ op: 'state', instance: 'fake', members: { [ch]: ['mallory'] } }),
    JSON.stringify({ op: 'sync', instance: 'fake' }),
    JSON.stringify({ op: 'bye', instance: a.child.pid.toString() }),
    'x'.repeat(7990),
  ];
  const channels = ['evstream', 'evstream_ephemeral', 'evstream_presence', 'evstream_doorbell', 'evstream_events'];
  for (const channel of channels)
    for (const payload of payloads) assert.equal(await code(hostile, 'SELECT pg_notify($1, $2)', [channel, payload]), 'ok');
  // The hostile role cannot write through the functions either.
  assert.equal(await code(hostile, `SELECT evstream.publish($1, 'note.forged')`, [ch]), '42501');
  assert.equal(await code(hostile, `SELECT evstream._presence_send($1::jsonb)`,
    [JSON.stringify([{ op: 'join', instance: 'fake', channel: ch, userId: 'mallory' }])]), '42501');
  assert.equal(await code(hostile, `INSERT INTO evstream.ephemeral_outbox (kind, channel, type, payload) VALUES ('event', $1, 'x', '{}')`, [ch]), '42501');

  // A real event and a real join after the forgeries: once both arrived everywhere, anything the
  // forgeries could have caused would have arrived before them.
  await db.query(`SELECT evstream.publish($1, 'note.real', '{"n": 1}')`, [ch]);
  const zed = await openReady(b, { tokenValue: token({ sub: 'zed', projects: [p] }), query: `?channel=${ch}` });
  for (const s of streams) {
    await s.until((evs) => evs.some((e) => e.event === 'note.real'), 10000, 'the real event');
    await s.until((evs) => evs.some((e) => e.event === 'presence' && JSON.parse(e.data).data.userId === 'zed'), 10000, 'zed joins');
  }
  // and two more presence messages from the other instance on each (its heartbeats): a forged
  // "state" heard on any channel would have been applied by then
  // (a read that finds no number is retried: NaN + 2 would make the wait below never true)
  const seen = await Promise.all([a, b].map((d) => waitFor(async () => {
    const v = await metric(d, 'evstream_presence_messages_total');
    return Number.isFinite(v) ? [v] : null;
  }, { what: 'the presence message count' }).then(([v]) => v)));
  await waitFor(async () => (await metric(a, 'evstream_presence_messages_total')) >= seen[0] + 2
    && (await metric(b, 'evstream_presence_messages_total')) >= seen[1] + 2, { timeout: 30000, what: 'two heartbeats' });
  for (const s of streams) {
    const types = s.events.map((e) => e.event);
    assert.deepEqual(types.filter((t) => !['connected', 'heartbeat', 'presence', 'note.real'].includes(t)), [], 'nothing forged delivered');
    const users = s.events.filter((e) => e.event === 'presence' || e.event === 'typing').map((e) => JSON.parse(e.data).data.userId);
    assert.ok(!users.includes('mallory'), `no faked presence or typing: ${users}`);
    assert.equal(s.events.filter((e) => e.event === 'note.real').length, 1);
  }
  for (const d of [a, b]) {
    const m = await members(d, claims, ch);
    assert.deepEqual(m.members.map((x) => x.userId).sort(), ['watcher', 'zed']);
    assert.equal((await request(d, '/healthz')).status, 200);
  }
  assert.deepEqual([a.exited, b.exited], [null, null]);
  assert.deepEqual([a.child.pid, b.child.pid], pids);
  zed.close();
  for (const s of streams) s.close();
});

test('the hardened daemon role publishes over HTTP under the token\'s claims and identity', async () => {
  const p = uniq('p');
  const ch = `project:${p}`;
  const s = await openReady(a, { tokenValue: token({ projects: [p] }), query: `?channel=${ch}` });
  const r = await publish(b, { sub: 'ann', projects: [p] }, { channel: ch, type: 'via.daemon', data: { k: 1 } });
  assert.equal(r.status, 202, r.body);
  assert.equal((await publish(b, { sub: 'ann', projects: [uniq('q')] }, { channel: ch, type: 'x' })).status, 403);
  await s.until((evs) => evs.some((e) => e.event === 'via.daemon'), 10000, 'the event published through the daemon role');
  const ev = JSON.parse(s.events.find((e) => e.event === 'via.daemon').data);
  assert.equal(ev.createdBy, 'user:ann');
  assert.equal(ev.ephemeralId, r.json.ephemeralId);
  s.close();
});

test('a writer stays inside its claims and its identity: 42501 for project B and for a forged created_by', async () => {
  const p = uniq('p');
  const w = new pg.Client({ user: writerRole });
  await w.connect();
  try {
    await w.query(`SET request.jwt.claims = '{"sub": "ann", "projects": ["${p}"]}'`);
    assert.equal(await code(w, `SELECT evstream.publish($1, 'ok')`, [`project:${p}`]), 'ok');
    assert.equal(await code(w, `SELECT evstream.publish($1, 'x')`, [`project:${uniq('b')}`]), '42501');
    assert.equal(await code(w, `SELECT evstream.publish($1, 'x', '{}', NULL, NULL, 'user:bob')`, [`project:${p}`]), '42501');
    assert.equal(await code(w, `SELECT evstream.publish($1, 'x', '{}', NULL, NULL, 'agent:bot')`, [`project:${p}`]), '42501');
    assert.equal(await code(w, `SELECT evstream._publish_each($1::jsonb)`,
      [JSON.stringify([{ claims: JSON.stringify({ sub: 'root', channels: ['project:*'] }), channel: 'project:x', type: 'x', data: {} }])]), '42501');
    assert.equal(await code(w, `SELECT * FROM evstream.ephemeral_outbox`), '42501');
    assert.equal(await code(w, `SELECT evstream._ephemeral_prune(9223372036854775807)`), '42501');
  } finally {
    await w.end();
  }
});

test('the outbox is pruned once every reader is past its rows', async () => {
  const p = uniq('p');
  for (let i = 0; i < 50; i++) await db.query(`SELECT evstream.publish($1, 'prune.me', '{}')`, [`project:${p}`]);
  await waitFor(async () => Number((await db.query(
    `SELECT count(*) AS n FROM evstream.ephemeral_outbox WHERE channel = $1`, [`project:${p}`])).rows[0].n) === 0,
  { timeout: 60000, intervalMs: 200, what: 'the outbox pruned' });
});
