// Ephemeral events, presence and typing (issue 7) across TWO evstreamd instances on one database:
// evstream.publish / POST /api/publish reach subscribers of both, frames carry no id: line and
// are never replayed; presence join/leave seen from both, a killed instance's members leave
// within the expiry; typing indicators expire on the server. Real cluster, real daemons.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { openReady, pgClient, request, startDaemon, stopDaemon, token, uniq, waitFor } from './lib/daemon.mjs';

// The expiry is many heartbeats long (4 s for 300 ms): a daemon slowed down by ASan on a loaded
// machine can miss a heartbeat slot or two without its members flapping (leave + join again).
const EXPIRY_MS = 4000;
const TYPING_TTL_MS = 800;
const FAST = ['--log-level', process.env.RT_LOG ?? 'info', '--presence-heartbeat-ms', '300', '--presence-expiry-ms', String(EXPIRY_MS),
  '--typing-ttl-ms', String(TYPING_TTL_MS), '--presence-leave-grace-ms', '600'];
let a;
let b;
let db;

before(async () => {
  db = pgClient();
  await db.connect();
  [a, b] = await Promise.all([startDaemon({ args: FAST }), startDaemon({ args: FAST })]);
});
after(async () => {
  await Promise.all([stopDaemon(a), stopDaemon(b)]);
  await db.end();
});

const auth = (claims) => ({ Authorization: `Bearer ${token(claims)}`, 'Content-Type': 'application/json' });
const publish = (d, claims, body) => request(d, '/api/publish', { method: 'POST', headers: auth(claims), body });
const parsed = (s, type) => s.events.filter((e) => e.event === type).map((e) => JSON.parse(e.data));
const members = async (d, claims, channel) =>
  (await request(d, `/api/presence?channel=${encodeURIComponent(channel)}`, { headers: auth(claims) })).json;

describe('ephemeral events', () => {
  test('published on either instance reaches subscribers of both, without id:', async () => {
    const p = uniq('p');
    const claims = { sub: 'pub', projects: [p] };
    const sa = await openReady(a, { tokenValue: token(claims), query: `?channel=project:${p}` });
    const sb = await openReady(b, { tokenValue: token(claims), query: `?channel=project:${p}` });
    const r = await publish(a, claims, { channel: `project:${p}`, type: 'note.flash', data: { n: 1 } });
    assert.equal(r.status, 202, r.body);
    assert.equal(r.json.published, true);
    const r2 = await publish(b, claims, { channel: `project:${p}`, type: 'note.flash', data: { n: 2 }, entity: 'note', id: 'n1' });
    assert.equal(r2.status, 202, r2.body);
    for (const s of [sa, sb]) {
      await s.until((evs) => evs.filter((e) => e.event === 'note.flash').length === 2, 10000, 'two flashes');
      const frames = s.events.filter((e) => e.event === 'note.flash');
      assert.deepEqual(frames.map((f) => f.id), [undefined, undefined], 'ephemeral frames carry no id');
      const [one, two] = frames.map((f) => JSON.parse(f.data));
      assert.equal(one.data.n, 1);
      assert.equal(one.ephemeral, true);
      assert.equal(one.createdBy, 'user:pub');
      assert.equal(one.channel, `project:${p}`);
      assert.equal(two.data.n, 2);
      assert.equal(two.entity, 'note');
      assert.equal(two.id, 'n1');
    }
    sa.close();
    sb.close();
  });

  test('no replay: a stream resumed with Last-Event-ID gets stored events only', async () => {
    const p = uniq('p');
    const claims = { sub: 'rp', projects: [p] };
    const [pos] = (await db.query(`SELECT position FROM evstream.post_event($1, 'doc', 'd1', 'doc.created')`,
      [`project:${p}`])).rows.map((x) => Number(x.position));
    // A witness on b proves b has already fanned the ephemeral event out before the resumed
    // stream connects, so the resumed stream could only get it by a replay (there is none).
    const witness = await openReady(b, { tokenValue: token(claims), query: `?channel=project:${p}` });
    await publish(a, claims, { channel: `project:${p}`, type: 'flash', data: {} });
    await witness.until((evs) => evs.some((e) => e.event === 'flash'), 10000, 'the flash on b');
    witness.close();
    await db.query(`SELECT evstream.post_event($1, 'doc', 'd1', 'doc.renamed')`, [`project:${p}`]);
    const s = await openReady(b, { tokenValue: token(claims), query: `?channel=project:${p}`, lastEventId: pos });
    await s.until((evs) => evs.some((e) => e.event === 'doc.renamed'), 10000, 'replayed event');
    assert.equal(s.events.filter((e) => e.event === 'flash').length, 0);
    s.close();
  });

  test('other channels and forbidden channels: not delivered, 403', async () => {
    const p = uniq('p');
    const q = uniq('q');
    const s = await openReady(a, { tokenValue: token({ projects: [p] }), query: `?channel=project:${p}` });
    const r = await publish(b, { projects: [q] }, { channel: `project:${p}`, type: 'x', data: {} });
    assert.equal(r.status, 403);
    assert.equal((await publish(b, { projects: [q] }, { channel: `project:${q}`, type: 'x' })).status, 202);
    for (const type of ['reset', 'presence', 'connected'])
      assert.equal((await publish(b, { projects: [p] }, { channel: `project:${p}`, type, data: {} })).status, 400, type);
    // even a raw NOTIFY with a reserved type is not fanned out
    await db.query(`SELECT pg_notify('evstream_ephemeral', $1)`, [JSON.stringify({ type: 'reset', channel: `project:${p}`, data: {} })]);
    assert.equal((await publish(b, { projects: [p] }, { channel: `project:${p}`, type: 'mine' })).status, 202);
    await s.until((evs) => evs.some((e) => e.event === 'mine'), 10000, 'own channel event');
    assert.equal(s.events.filter((e) => e.event === 'x' || e.event === 'reset').length, 0);
    s.close();
  });

  test('size limit: 413 over HTTP (NOTIFY payload < 8000 bytes)', async () => {
    const p = uniq('p');
    const r = await publish(a, { projects: [p] }, { channel: `project:${p}`, type: 'big', data: { x: 'a'.repeat(7900) } });
    assert.equal(r.status, 413);
    assert.equal(r.json.error, 'payload_too_large');
    // escaping counts: 1400 control characters are 8400 bytes of payload
    assert.equal((await publish(a, { projects: [p] }, { channel: `project:${p}`, type: 'big', data: { x: '\u0001'.repeat(1400) } })).status, 413);
    assert.equal((await publish(a, { projects: [p] }, { channel: `project:${p}`, type: 'ok', data: { x: 'a'.repeat(6000) } })).status, 202);
  });

  test('token chunks of one stream arrive in order (coalesced or not) with the full text', async () => {
    const p = uniq('p');
    const claims = { sub: 'ai', projects: [p] };
    const s = await openReady(b, { tokenValue: token(claims), query: `?channel=project:${p}` });
    const words = Array.from({ length: 60 }, (_, i) => `w${i} `);
    // Fired concurrently from one client: the HTTP requests still arrive in order per connection
    // only if sent in order, so send them one after another without waiting for the answers.
    const results = [];
    for (const [i, w] of words.entries())
      results.push(publish(a, claims, { channel: `project:${p}`, type: 'ai_chat_chunk', data: { streamId: 's1', text: w, done: i === words.length - 1 } }));
    const answers = await Promise.all(results);
    assert.ok(answers.every((x) => x.status === 202), JSON.stringify(answers.map((x) => x.status)));
    // Requests on separate connections may reach the daemon in any order (with --threads, on
    // different loops too), so the `done` chunk may come before others: wait for every word. The
    // coalescer keeps arrival order, so compare as multisets and check that merging lost nothing.
    const wordsIn = (evs) => evs.filter((e) => e.event === 'ai_chat_chunk')
      .map((e) => JSON.parse(e.data).data.text).join('').split(' ').filter(Boolean).length;
    await s.until((evs) => wordsIn(evs) >= words.length, 10000, 'every chunk');
    const chunks = parsed(s, 'ai_chat_chunk');
    const text = chunks.map((c) => c.data.text).join('');
    assert.equal(text.split(' ').filter(Boolean).sort().join(' '), words.map((w) => w.trim()).sort().join(' '));
    assert.ok(chunks.length <= words.length);
    s.close();
  });
});

describe('presence and typing', () => {
  test('join/leave seen from both instances; two tabs are one member', async () => {
    const p = uniq('p');
    const ch = `project:${p}`;
    const watcher = { sub: 'watcher', projects: [p] };
    const ann = { sub: 'ann', projects: [p] };
    const wa = await openReady(a, { tokenValue: token(watcher), query: `?channel=${ch}` });
    const wb = await openReady(b, { tokenValue: token(watcher), query: `?channel=${ch}` });
    const tab1 = await openReady(a, { tokenValue: token(ann), query: `?channel=${ch}` });
    const tab2 = await openReady(b, { tokenValue: token(ann), query: `?channel=${ch}` });
    const joins = (s) => parsed(s, 'presence').filter((x) => x.data.userId === 'ann' && x.data.action === 'join');
    const leaves = (s) => parsed(s, 'presence').filter((x) => x.data.userId === 'ann' && x.data.action === 'leave');
    for (const s of [wa, wb]) await s.until(() => joins(s).length >= 1, 10000, 'ann joins');
    for (const d of [a, b])
      await waitFor(async () => (await members(d, watcher, ch)).members.map((m) => m.userId).sort().join() === 'ann,watcher',
        { what: 'members ann,watcher' });
    tab1.close();
    // ann still has a tab (on b): no leave anywhere, still a member everywhere
    await waitFor(async () => (await members(a, watcher, ch)).count === 2, { what: 'ann still member' });
    tab2.close();
    for (const s of [wa, wb]) await s.until(() => leaves(s).length === 1, 10000, 'ann leaves');
    for (const s of [wa, wb]) assert.equal(joins(s).length, 1, `one join for two tabs: ${JSON.stringify(parsed(s, 'presence').map((x) => [x.data.action, x.data.userId, x.timestamp]))}`);
    for (const d of [a, b])
      await waitFor(async () => (await members(d, watcher, ch)).count === 1, { what: 'only watcher left' });
    assert.equal((await request(a, `/api/presence?channel=project:other`, { headers: auth(watcher) })).status, 403);
    wa.close();
    wb.close();
  });

  test('typing through the ephemeral path: userId from the token, expires on the server', async () => {
    const p = uniq('p');
    const ch = `project:${p}`;
    const bob = { sub: 'bob', projects: [p] };
    const s = await openReady(b, { tokenValue: token({ sub: 'w', projects: [p] }), query: `?channel=${ch}` });
    const r = await publish(a, bob, { channel: ch, type: 'typing', data: { isTyping: true, userId: 'mallory' } });
    assert.equal(r.status, 202, r.body);
    await s.until(() => parsed(s, 'typing').some((t) => t.data.isTyping === true), 10000, 'typing true');
    assert.equal(parsed(s, 'typing')[0].data.userId, 'bob', 'the server sets userId');
    const on = parsed(s, 'typing').find((t) => t.data.isTyping === true);
    await s.until(() => parsed(s, 'typing').some((t) => t.data.isTyping === false && t.data.expired), 20000, 'typing expiry');
    // Not before the ttl, on the servers' clocks (the frames' timestamps: the indicator's publish
    // and the expiry), not the time this client happened to read the first frame.
    const off = parsed(s, 'typing').find((t) => t.data.isTyping === false && t.data.expired);
    const gap = Date.parse(off.timestamp) - Date.parse(on.timestamp);
    assert.ok(gap >= TYPING_TTL_MS - 50, `expired ${gap} ms after the indicator, ttl ${TYPING_TTL_MS} ms`);
    assert.equal((await publish(a, bob, { channel: ch, type: 'typing', data: {} })).status, 400);
    s.close();
  });

  test('a killed instance\'s members leave within the expiry', async () => {
    const c = await startDaemon({ args: FAST });
    const p = uniq('p');
    const ch = `project:${p}`;
    const w = await openReady(a, { tokenValue: token({ sub: 'w', projects: [p] }), query: `?channel=${ch}` });
    const carl = await openReady(c, { tokenValue: token({ sub: 'carl', projects: [p] }), query: `?channel=${ch}` });
    const carlEvents = (action) => parsed(w, 'presence').filter((x) => x.data.userId === 'carl' && x.data.action === action);
    await w.until(() => carlEvents('join').length === 1, 10000, 'carl joins');
    c.child.kill('SIGKILL');
    await c.exitPromise;
    // c never says goodbye: only the expiry can make carl leave. The bounds are the expiry plus a
    // wide margin for a slow machine (a daemon that does not expire instances still fails).
    await w.until(() => carlEvents('leave').length === 1, EXPIRY_MS + 20000, 'carl leaves after expiry');
    // b expires c on its own clock
    await waitFor(async () => (await members(b, { sub: 'w', projects: [p] }, ch)).members.map((m) => m.userId).join() === 'w',
      { timeout: EXPIRY_MS + 20000, what: 'carl gone from b too' });
    carl.close();
    w.close();
  });
});
