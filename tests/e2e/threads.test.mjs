// evstreamd --threads K (issue 15): K event loops share one port (SO_REUSEPORT) and one feed.
// Streams land on different loops; each event is read from the log once and reaches every stream
// exactly once, in the same order everywhere; resume, presence, ephemeral events and the
// connection limits hold across loops. (The ThreadSanitizer run of the whole e2e suite, with two
// loops, is in scripts/test: e2e-tsan.)
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  openReady, openStream, pgClient, request, startDaemon, stopDaemon, token, uniq, waitFor,
} from './lib/daemon.mjs';

const THREADS = 3;
let db;
before(async () => { db = pgClient(); await db.connect(); });
after(async () => { await db.end(); });

const metric = (body, name) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(body)[1]);
const loopConnections = (body) => [...body.matchAll(/^evstream_loop_connections\{loop="(\d+)"\} (\d+)$/gm)]
  .map((m) => Number(m[2]));

// Streams until at least two loops hold some (the kernel spreads connections by their ports; a
// few more connections settle it if the first ones happened to land on one loop).
async function spreadStreams(d, opts, n) {
  const streams = [];
  for (let round = 0; round < 10; round++) {
    for (let i = 0; i < n; i++) streams.push(await openReady(d, opts));
    const loops = loopConnections((await request(d, '/metrics')).body);
    if (loops.filter((c) => c > 0).length >= 2) return { streams, loops };
  }
  throw new Error('every connection landed on one loop');
}

// Posts `each` events from each of `sessions` concurrent SQL sessions, one transaction per
// event; returns every position.
async function postConcurrently(channel, sessions, each) {
  const clients = await Promise.all(Array.from({ length: sessions }, async () => {
    const c = pgClient();
    await c.connect();
    return c;
  }));
  try {
    const lists = await Promise.all(clients.map(async (c, k) => {
      const out = [];
      for (let i = 0; i < each; i++) {
        const r = await c.query("SELECT position FROM evstream.post_event($1, 'doc', $2, 'doc.noted', $3::jsonb)",
          [channel, `d${k}`, JSON.stringify({ k, i })]);
        out.push(Number(r.rows[0].position));
      }
      return out;
    }));
    return lists.flat();
  } finally {
    await Promise.all(clients.map((c) => c.end()));
  }
}

describe('evstreamd --threads', () => {
  test('streams on several loops: one read of the log, every event to every stream once, same order', async () => {
    const d = await startDaemon({ args: ['--threads', String(THREADS)] });
    try {
      assert.equal(d.logs.find((l) => l.msg === 'listening').threads, THREADS);
      const p = uniq('p');
      const { streams, loops } = await spreadStreams(d, { tokenValue: token({ projects: [p] }) }, 12);
      assert.equal(loops.length, THREADS, 'one gauge per loop');
      const before = await request(d, '/metrics');
      const readBefore = metric(before.body, 'evstream_events_read_total');
      const posted = await postConcurrently(`project:${p}`, 4, 50);
      const n = posted.length;
      for (const s of streams)
        await s.until((evs) => evs.filter((e) => e.event === 'doc.noted').length >= n, 60000, `${n} events`);
      const first = streams[0].positions();
      assert.equal(first.length, n);
      assert.equal(new Set(first).size, n, 'no duplicate');
      assert.deepEqual([...first].sort((x, y) => x - y), [...posted].sort((x, y) => x - y), 'nothing lost');
      for (const s of streams) assert.deepEqual(s.positions(), first, 'the same order on every loop');
      const afterBody = (await request(d, '/metrics')).body;
      assert.equal(metric(afterBody, 'evstream_events_read_total') - readBefore, n, 'each event read once, not per loop');
      assert.ok(metric(afterBody, 'evstream_events_delivered_total') >= n * streams.length);
      assert.equal(metric(afterBody, 'evstream_sse_connections'), streams.length, 'the sum over loops');
      for (const s of streams) s.close();
    } finally {
      await stopDaemon(d);
    }
  });

  test('resume by Last-Event-ID on any loop while events are being written: no loss, no duplicate', async () => {
    const d = await startDaemon({ args: ['--threads', String(THREADS)] });
    try {
      const p = uniq('p');
      const t = token({ projects: [p] });
      const early = await postConcurrently(`project:${p}`, 2, 20);
      const mark = Math.max(...early);
      const writing = postConcurrently(`project:${p}`, 3, 30);
      const resumed = [];
      for (let i = 0; i < 12; i++) resumed.push(await openReady(d, { tokenValue: t, lastEventId: mark }));
      const later = await writing;
      const all = [...early, ...later];
      // Everything after the mark in the log's order: what the log itself says.
      const expected = (await db.query(
        `SELECT position FROM evstream.read_after($1::bigint, 100000, ARRAY[$2]) ORDER BY order_key, position`,
        [mark, `project:${p}`])).rows.map((r) => Number(r.position));
      assert.ok(expected.length >= later.length);
      for (const s of resumed) {
        await s.until((evs) => evs.filter((e) => e.event === 'doc.noted').length >= expected.length, 60000, 'resumed events');
        assert.deepEqual(s.positions(), expected);
        assert.ok(s.positions().every((x) => all.includes(x)));
        s.close();
      }
    } finally {
      await stopDaemon(d);
    }
  });

  test('per-address and per-sub limits count connections of every loop', async () => {
    const d = await startDaemon({
      args: ['--threads', String(THREADS), '--max-connections-per-address', '6', '--max-connections-per-sub', '4'],
    });
    try {
      const p = uniq('p');
      const sub = token({ sub: uniq('u'), projects: [p] });
      const subs = [];
      for (let i = 0; i < 4; i++) subs.push(await openReady(d, { tokenValue: sub }));
      const fifth = await openStream(d, { tokenValue: sub }).ready;
      assert.equal(fifth.status, 429, 'per sub, whatever loop the fifth landed on');
      await waitFor(() => fifth.ended, { what: 'the refused stream closed' });
      const others = [];
      for (let i = 0; i < 2; i++) others.push(await openReady(d, { tokenValue: token({ projects: [p] }) }));
      const seventh = await openStream(d, { tokenValue: token({ projects: [p] }) }).ready;
      assert.equal(seventh.status, 429, 'per address');
      others[1].close();
      // The place freed (on whichever loop) serves the next request: the per-loop gauges add up
      // to the four sub streams, one other and this request.
      await waitFor(async () => {
        const r = await request(d, '/metrics').catch(() => ({ status: 0 }));
        return r.status === 200 && loopConnections(r.body).reduce((a, b) => a + b, 0) === 6;
      }, { what: 'the gauges of every loop add up' });
      for (const s of [...subs, others[0]]) s.close();
      // Closed connections free their places on every loop.
      await waitFor(async () => (await openStream(d, { tokenValue: sub }).ready).status === 200,
        { what: 'a place for the sub again' });
    } finally {
      await stopDaemon(d);
    }
  });

  test('a second daemon on the same port is refused (SO_REUSEPORT does not share it)', async () => {
    const d = await startDaemon({ args: ['--threads', '2'] });
    try {
      await assert.rejects(startDaemon({ args: ['--threads', '2', '--listen', `127.0.0.1:${d.port}`] }),
        (e) => e.addressInUse === true);
      const p = uniq('p');
      const s = await openReady(d, { tokenValue: token({ projects: [p] }) });
      const [pos] = await postConcurrently(`project:${p}`, 1, 1);
      await s.until(() => s.positions().includes(pos), 10000, 'the first daemon still serves');
      s.close();
    } finally {
      await stopDaemon(d);
    }
  });

  test('presence and ephemeral events reach streams on every loop', async () => {
    const d = await startDaemon({ args: ['--threads', String(THREADS), '--presence-leave-grace-ms', '50'] });
    try {
      const p = uniq('p');
      const channel = `project:${p}`;
      const users = Array.from({ length: 9 }, (_, i) => `u${i}`);
      const streams = [];
      for (const u of users)
        streams.push(await openReady(d, { tokenValue: token({ sub: u, projects: [p] }), query: `?channel=${channel}` }));
      const loops = loopConnections((await request(d, '/metrics')).body);
      assert.ok(loops.filter((c) => c > 0).length >= 2, `streams on several loops: ${loops}`);
      const auth = { Authorization: `Bearer ${token({ sub: 'u0', projects: [p] })}`, 'Content-Type': 'application/json' };
      await waitFor(async () => {
        const r = await request(d, `/api/presence?channel=${channel}`, { headers: auth });
        return r.status === 200 && r.json.count === users.length;
      }, { what: 'every user present, whichever loop asks' });
      const r = await request(d, '/api/publish', {
        method: 'POST', headers: auth, body: { channel, type: 'note.flash', data: { n: 1 } },
      });
      assert.equal(r.status, 202, r.body);
      for (const s of streams) {
        await s.until((evs) => evs.some((e) => e.event === 'note.flash'), 10000, 'the flash');
        // The last user joined after every stream was subscribed: every stream sees that join.
        await s.until((evs) => evs.some((e) => e.event === 'presence'
          && JSON.parse(e.data).data.userId === 'u8' && JSON.parse(e.data).data.action === 'join'), 10000, 'u8 joining');
      }
      streams[8].close();
      await waitFor(async () => (await request(d, `/api/presence?channel=${channel}`, { headers: auth })).json.count
        === users.length - 1, { what: 'u8 left' });
      for (const s of streams) s.close();
    } finally {
      await stopDaemon(d);
    }
  });
});
