// Browser security and fair limits (issue 11 items 3 and 5), against a real daemon with real
// clients: the cookie's CSRF rule, CORS with `*`, JSON-only bodies, access_token for the stream
// only; connections per address and per token sub (429), the unread-bytes budget (503), the
// slow-header cut (408), a pool flood from one token while another token's POST is answered,
// the statement timeout. Every hostile test ends with the same daemon process still serving.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import {
  openReady, openStream, pgClient, postSql, request, startDaemon, stopDaemon, token, uniq, waitFor,
} from './lib/daemon.mjs';

let db;
before(async () => { db = pgClient(); await db.connect(); });
after(async () => { await db.end(); });

const metric = (body, name) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(body)[1]);

// The daemon survived: the process we started is still running and still answers.
async function assertSameDaemon(d, pid) {
  assert.equal(d.exited, null, `evstreamd exited: ${JSON.stringify(d.exited)}`);
  assert.equal(d.child.pid, pid);
  process.kill(pid, 0);
  assert.equal((await request(d, '/healthz')).status, 200);
}

// A raw TCP client: everything it receives, and whether the server closed it.
function raw(d) {
  const c = { data: '', closed: false };
  c.sock = net.connect(d.port, '127.0.0.1');
  c.sock.setEncoding('utf8');
  c.sock.on('data', (x) => { c.data += x; });
  c.sock.on('close', () => { c.closed = true; });
  c.sock.on('error', () => { c.closed = true; });
  c.connected = new Promise((r) => c.sock.once('connect', r));
  c.write = (s) => { if (!c.closed) c.sock.write(s); };
  return c;
}

const event = (channel) => ({ channel, aggregate_type: 'doc', aggregate_id: uniq('d'), event_type: 'doc.created', data: {} });

describe('browser security: cookies, CSRF, CORS, bodies', () => {
  let d, pid;
  before(async () => {
    d = await startDaemon({ args: ['--cors-origin', 'http://app.example'] });
    pid = d.child.pid;
  });
  after(async () => { await stopDaemon(d); });

  const count = async (channel) =>
    Number((await db.query('SELECT count(*) AS n FROM evstream.events WHERE channel = $1', [channel])).rows[0].n);

  test('a cross-origin text/plain POST with the cookie is refused and stores nothing', async () => {
    const p = uniq('p');
    const t = token({ sub: 'u1', projects: [p] });
    const r = await request(d, '/api/events', {
      method: 'POST',
      headers: { Cookie: `evstream_token=${t}`, Origin: 'http://evil.example', 'Content-Type': 'text/plain' },
      body: JSON.stringify(event(`project:${p}`)),
    });
    assert.equal(r.status, 403);
    assert.equal(r.json.error, 'csrf');
    assert.equal(r.headers['access-control-allow-origin'], undefined);
    // A form-like JSON POST (no CSRF header) from the right origin is refused as well.
    const form = await request(d, '/api/events', {
      method: 'POST',
      headers: { Cookie: `evstream_token=${t}`, Origin: 'http://app.example', 'Content-Type': 'application/json' },
      body: event(`project:${p}`),
    });
    assert.equal(form.status, 403);
    assert.match(form.json.message, /X-Evstream-CSRF/);
    // The header but a foreign or missing Origin.
    for (const origin of ['http://evil.example', undefined]) {
      const h = { Cookie: `evstream_token=${t}`, 'X-Evstream-CSRF': '1', 'Content-Type': 'application/json' };
      if (origin) h.Origin = origin;
      const r2 = await request(d, '/api/events', { method: 'POST', headers: h, body: event(`project:${p}`) });
      assert.equal(r2.status, 403, `origin ${origin}`);
    }
    assert.equal(await count(`project:${p}`), 0);
    await assertSameDaemon(d, pid);
  });

  test('cookie + X-Evstream-CSRF + an allowed Origin writes; the cookie reads without them', async () => {
    const p = uniq('p');
    const t = token({ sub: 'u2', projects: [p] });
    for (const origin of ['http://app.example', `http://127.0.0.1:${d.port}`]) {
      const r = await request(d, '/api/events', {
        method: 'POST',
        headers: { Cookie: `evstream_token=${t}`, 'X-Evstream-CSRF': '1', Origin: origin, 'Content-Type': 'application/json' },
        body: event(`project:${p}`),
      });
      assert.equal(r.status, 201, `${origin}: ${r.body}`);
    }
    const history = await request(d, `/api/events?channel=project:${p}`, { headers: { Cookie: `evstream_token=${t}` } });
    assert.equal(history.status, 200);
    assert.equal(history.json.events.length, 2);
    const s = await openReady(d, { query: `?channel=project:${p}`, headers: { Cookie: `evstream_token=${t}` } });
    assert.equal(s.status, 200);
    s.close();
    await assertSameDaemon(d, pid);
  });

  test('?access_token= opens the stream only', async () => {
    const p = uniq('p');
    const t = token({ sub: 'u3', projects: [p] });
    const post = await request(d, `/api/events?access_token=${t}`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: event(`project:${p}`),
    });
    assert.equal(post.status, 401);
    assert.match(post.json.message, /access_token/);
    assert.equal((await request(d, `/api/events?channel=project:${p}&access_token=${t}`)).status, 401);
    const s = await openReady(d, { query: `?channel=project:${p}&access_token=${t}` });
    assert.equal(s.status, 200);
    s.close();
    assert.equal(await count(`project:${p}`), 0);
    await assertSameDaemon(d, pid);
  });

  test('POST bodies must be application/json: 415 with a JSON error', async () => {
    const p = uniq('p');
    const auth = { Authorization: `Bearer ${token({ sub: 'u4', projects: [p] })}` };
    for (const ct of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', undefined]) {
      const headers = { ...auth };
      if (ct) headers['Content-Type'] = ct;
      const r = await request(d, '/api/events', { method: 'POST', headers, body: JSON.stringify(event(`project:${p}`)) });
      assert.equal(r.status, 415, `${ct}`);
      assert.equal(r.json.error, 'unsupported_media_type');
    }
    const ok = await request(d, '/api/events', {
      method: 'POST', headers: { ...auth, 'Content-Type': 'application/json; charset=utf-8' }, body: event(`project:${p}`),
    });
    assert.equal(ok.status, 201);
    assert.equal(await count(`project:${p}`), 1, 'only the JSON body was stored');
    await assertSameDaemon(d, pid);
  });

  test("--cors-origin '*' answers * and never echoes the Origin nor allows credentials", async () => {
    const star = await startDaemon({ args: ['--cors-origin', '*'] });
    const starPid = star.child.pid;
    try {
      for (const [method, path, extra] of [['GET', '/healthz', {}],
        ['OPTIONS', '/api/events', { 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'x-evstream-csrf' }]]) {
        const r = await request(star, path, { method, headers: { Origin: 'http://evil.example', ...extra } });
        assert.equal(r.headers['access-control-allow-origin'], '*', `${method} ${path}`);
        assert.equal(r.headers['access-control-allow-credentials'], undefined);
        assert.ok(!JSON.stringify(r.headers).includes('evil.example'));
      }
      const s = await openReady(star, { tokenValue: token({ sub: 'u5' }), headers: { Origin: 'http://evil.example' } });
      assert.equal(s.headers['access-control-allow-origin'], '*');
      assert.equal(s.headers['access-control-allow-credentials'], undefined);
      s.close();
      await assertSameDaemon(star, starPid);
    } finally {
      await stopDaemon(star);
    }
  });
});

describe('fair limits', () => {
  test('connections per address: 429 with Retry-After past the limit, served again once one closes', async () => {
    const d = await startDaemon({ args: ['--max-connections-per-address', '4'] });
    const pid = d.child.pid;
    try {
      const t = token({ sub: 'a1' });
      const held = [];
      for (let i = 0; i < 4; i++) held.push(await openReady(d, { tokenValue: t }));
      const r = await request(d, '/healthz');
      assert.equal(r.status, 429);
      assert.equal(r.json.error, 'too_many_connections');
      assert.ok(Number(r.headers['retry-after']) >= 1);
      held.pop().close();
      await waitFor(async () => (await request(d, '/healthz')).status === 200, { what: 'served again' });
      for (const s of held) s.close();
      await waitFor(async () => metric((await request(d, '/metrics')).body, 'evstream_http_connections') <= 1,
        { what: 'streams closed' });
      await assertSameDaemon(d, pid);
    } finally {
      await stopDaemon(d);
    }
  });

  test('connections per token sub: 429 with Retry-After for that sub, others still served', async () => {
    const d = await startDaemon({ args: ['--max-connections-per-sub', '2'] });
    const pid = d.child.pid;
    try {
      const alice = token({ sub: 'alice' });
      const held = [await openReady(d, { tokenValue: alice }), await openReady(d, { tokenValue: alice })];
      const third = await openStream(d, { tokenValue: alice }).ready;
      assert.equal(third.status, 429);
      assert.ok(Number(third.headers['retry-after']) >= 1);
      assert.equal(JSON.parse(third.body).error, 'too_many_connections');
      const bob = await openReady(d, { tokenValue: token({ sub: 'bob' }) });
      assert.equal(bob.status, 200);
      bob.close();
      held[0].close();
      await waitFor(async () => (await openStream(d, { tokenValue: alice }).ready.then((s) => { s.close(); return s.status; })) === 200,
        { what: 'alice served again' });
      held[1].close();
      await assertSameDaemon(d, pid);
    } finally {
      await stopDaemon(d);
    }
  });

  test('a slow-header client is cut by the header timeout while others are served', async () => {
    const d = await startDaemon({ args: ['--header-timeout-ms', '600'] });
    const pid = d.child.pid;
    try {
      const slow = raw(d);
      await slow.connected;
      slow.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
      const drip = setInterval(() => slow.write('X-Slow: 1\r\n'), 50);
      try {
        // Served meanwhile, several times, while the slow client is still connected.
        for (let i = 0; i < 5; i++) assert.equal((await request(d, '/healthz')).status, 200);
        await waitFor(() => slow.closed, { timeout: 30000, what: 'slow client cut' });
      } finally {
        clearInterval(drip);
      }
      assert.match(slow.data, /^HTTP\/1\.1 408 /);
      assert.ok(metric((await request(d, '/metrics')).body, 'evstream_request_timeouts_total') >= 1);
      await assertSameDaemon(d, pid);
    } finally {
      await stopDaemon(d);
    }
  });

  test('a slow-body client is cut by the body timeout with 408 and nothing is stored', async () => {
    const d = await startDaemon({ args: ['--body-timeout-ms', '600'] });
    const pid = d.child.pid;
    try {
      const p = uniq('p');
      const body = JSON.stringify(event(`project:${p}`));
      const slow = raw(d);
      await slow.connected;
      slow.write(`POST /api/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token({ sub: 'slow', projects: [p] })}\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
      // One byte every 50 ms: the whole body would take far longer than the body timeout.
      let sent = 0;
      const drip = setInterval(() => { if (sent < body.length - 1) slow.write(body[sent++]); }, 50);
      try {
        for (let i = 0; i < 5; i++) assert.equal((await request(d, '/healthz')).status, 200);
        await waitFor(() => slow.closed, { timeout: 30000, what: 'slow body cut' });
      } finally {
        clearInterval(drip);
      }
      assert.match(slow.data, /^HTTP\/1\.1 408 /);
      assert.match(slow.data, /"error":"request_timeout"/);
      assert.match(slow.data, /body did not arrive in time/);
      const { rows } = await db.query('SELECT count(*)::int AS n FROM evstream.events WHERE channel = $1', [`project:${p}`]);
      assert.equal(rows[0].n, 0, 'the cut request stored nothing');
      await assertSameDaemon(d, pid);
    } finally {
      await stopDaemon(d);
    }
  });

  test('the unread-bytes budget: a request that would pass it gets 503 with Retry-After', async () => {
    const d = await startDaemon({ args: ['--max-pending-bytes', '8192'] });
    const pid = d.child.pid;
    const t = token({ sub: 'b1' });
    const head = `POST /api/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${t}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n`;
    try {
      const holders = [raw(d), raw(d)];
      for (const h of holders) {
        await h.connected;
        h.write(head + 'x'.repeat(3000));
      }
      await waitFor(async () => metric((await request(d, '/metrics')).body, 'evstream_pending_bytes') >= 6000,
        { what: 'two partial requests held' });
      const third = raw(d);
      await third.connected;
      third.write(head + 'x'.repeat(3000));
      await waitFor(() => third.data.includes('\r\n\r\n'), { what: '503 answer' });
      assert.match(third.data, /^HTTP\/1\.1 503 /);
      assert.match(third.data, /\r\nRetry-After: \d+\r\n/i);
      assert.match(third.data, /"error":"busy"/);
      // Small requests still fit; the partial ones are not harmed.
      assert.equal((await request(d, '/healthz')).status, 200);
      assert.equal(holders.some((h) => h.closed), false);
      for (const h of [...holders, third]) h.sock.destroy();
      await waitFor(async () => metric((await request(d, '/metrics')).body, 'evstream_pending_bytes') === 0,
        { what: 'budget released' });
      assert.ok(metric((await request(d, '/metrics')).body, 'evstream_shed_total') >= 1);
      await assertSameDaemon(d, pid);
    } finally {
      await stopDaemon(d);
    }
  });

  test("a pool flood from one token: another token's POST is answered before the flood drains; the flood gets 503 past its bound", { timeout: 60000 }, async () => {
    const FLOOD = 300;
    const d = await startDaemon({
      // (no stats folding: its timer's pool job would be a third party in the queue counts below)
      args: ['--db-pool', '2', '--db-queue-per-client', '100', '--max-connections-per-address', '2000',
        '--max-connections-per-sub', '2000', '--stats-fold-ms', '0'],
    });
    const pid = d.child.pid;
    const p = uniq('p');
    const agent = new http.Agent({ keepAlive: true, maxSockets: 400 });
    const post = (tok) => new Promise((resolve) => {
      const req = http.request(`${d.url}/api/events`, {
        method: 'POST', agent, headers: { Authorization: `Bearer ${tok}`, 'Content-Type': 'application/json' },
      }, (res) => {
        let body = '';
        res.on('data', (c) => { body += c; });
        res.on('end', () => resolve({ status: res.statusCode, retryAfter: res.headers['retry-after'], body }));
      });
      req.on('error', (e) => resolve({ status: 0, error: e.message }));
      req.end(JSON.stringify(event(`project:${p}`)));
    });
    // The flood is held, not raced: another session holds a SHARE lock on the events table, so the
    // pool's two connections block on the flood's first two INSERTs and nothing can drain until
    // the lock goes. The queue then fills to exactly its per-client bound, the rest of the flood
    // is refused, the other token's POST queues behind it, and only then is the lock released.
    const QUEUE = 100;
    const queued = async () => metric((await request(d, '/metrics')).body, 'evstream_db_queued');
    const locker = pgClient();
    await locker.connect();
    let locked = false;
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE evstream.events IN SHARE MODE');
      locked = true;
      const flooder = token({ sub: 'flood', projects: [p] });
      let stored = 0;  // the flood's writes answered 201 so far
      let refused = 0;
      const flood = Array.from({ length: FLOOD }, () => post(flooder).then((r) => {
        if (r.status === 201) stored++;
        if (r.status === 503) refused++;
        return r;
      }));
      await waitFor(async () => refused === FLOOD - 2 - QUEUE && (await queued()) === QUEUE,
        { timeout: 60000, interval: 50, what: `the flood: 2 blocked, ${QUEUE} queued, the rest refused` });
      assert.equal(stored, 0, 'nothing of the flood could be stored while the lock is held');
      const otherAnswer = post(token({ sub: 'other', projects: [p] }));
      await waitFor(async () => (await queued()) === QUEUE + 1, { timeout: 30000, interval: 20, what: 'the other token queued behind the flood' });
      await locker.query('ROLLBACK');
      locked = false;
      const other = await otherAnswer;
      const storedWhenAnswered = stored;
      assert.equal(other.status, 201, other.body);
      const results = await Promise.all(flood);
      const ok = results.filter((r) => r.status === 201).length;
      const busy = results.filter((r) => r.status === 503);
      // Fair turns: the other token did not wait for the flood's queued writes (first come, first
      // served would have answered it after all of them).
      assert.ok(storedWhenAnswered < ok, `answered while the flood was still queued (${storedWhenAnswered}/${ok} stored)`);
      assert.ok(busy.length > 0, 'the flood passed its queue bound');
      for (const b of busy) assert.ok(Number(b.retryAfter) >= 1);
      assert.equal(ok + busy.length, FLOOD, JSON.stringify(results.find((r) => r.status !== 201 && r.status !== 503)));
      await assertSameDaemon(d, pid);
    } finally {
      if (locked) await locker.query('ROLLBACK').catch(() => {});
      await locker.end();
      agent.destroy();
      await stopDaemon(d);
    }
  });

  test('replays with a pattern grant read in bounded batches and never take the pool from writes', { timeout: 120000 }, async () => {
    const N = 2000;
    const STREAMS = 12;
    const BATCH = 50;
    const d = await startDaemon({ args: ['--db-pool', '2', '--batch-size', String(BATCH)] });
    const pid = d.child.pid;
    const team = uniq('team');
    const channel = `channel:${team}-red`;
    try {
      // A known position to resume from, then a log of N events behind it.
      const [start] = await postSql(db, channel, 1);
      const { rows } = await db.query(
        "SELECT e.position FROM generate_series(1, $2::int) i, LATERAL evstream.post_event($1, 'doc', 'd' || i, 'doc.created', jsonb_build_object('i', i)) e ORDER BY e.position",
        [channel, N]);
      const expected = rows.map((r) => Number(r.position));
      const readsBefore = metric((await request(d, '/metrics')).body, 'evstream_replay_reads_total');
      const replayer = token({ sub: 'replayer', channels: [`channel:${team}-*`] });
      const streams = await Promise.all(Array.from({ length: STREAMS }, () =>
        openReady(d, { tokenValue: replayer, query: `?channel=channel:${team}-*`, lastEventId: start })));
      const complete = (st) => st.positions().length >= N;
      // Another token's write while every stream replays: answered on the connection replays
      // never take (they run on at most --db-pool - 1 connections).
      const p = uniq('p');
      const w = await request(d, '/api/events', {
        method: 'POST',
        headers: { Authorization: `Bearer ${token({ sub: 'writer', projects: [p] })}`, 'Content-Type': 'application/json' },
        body: event(`project:${p}`),
      });
      const doneWhenAnswered = streams.filter(complete).length;
      assert.equal(w.status, 201, w.body);
      assert.ok(doneWhenAnswered < STREAMS, `the write was answered while replays were still reading (${doneWhenAnswered}/${STREAMS} done)`);
      for (const st of streams) await st.until(() => complete(st), 90000, 'the whole replay');
      for (const st of streams) assert.deepEqual(st.positions(), expected, 'every event once, in order');
      const reads = metric((await request(d, '/metrics')).body, 'evstream_replay_reads_total') - readsBefore;
      assert.ok(reads >= STREAMS * (N / BATCH), `${reads} replay reads: at most ${BATCH} rows each`);
      for (const st of streams) st.close();
      await assertSameDaemon(d, pid);
    } finally {
      await stopDaemon(d);
    }
  });

  test('every statement has a timeout: a POST blocked by a lock fails with 503 instead of hanging', async () => {
    const d = await startDaemon({ args: ['--statement-timeout-ms', '300'] });
    const pid = d.child.pid;
    const locker = pgClient();
    await locker.connect();
    try {
      const p = uniq('p');
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE evstream.events IN SHARE MODE');
      const started = Date.now();
      const r = await request(d, '/api/events', {
        method: 'POST',
        headers: { Authorization: `Bearer ${token({ sub: 't1', projects: [p] })}`, 'Content-Type': 'application/json' },
        body: event(`project:${p}`),
      });
      assert.equal(r.status, 503, r.body);
      assert.equal(r.json.error, 'statement_timeout');
      assert.ok(r.headers['retry-after']);
      // far below the 30 s default a statement without a timeout would wait (and the lock is never released)
      assert.ok(Date.now() - started < 20000, `answered after ${Date.now() - started} ms`);
      await locker.query('ROLLBACK');
      await assertSameDaemon(d, pid);
    } finally {
      await locker.query('ROLLBACK').catch(() => {});
      await locker.end();
      await stopDaemon(d);
    }
  });

  test('/api/stats answers from a cache per channel set for --stats-cache-ms', async () => {
    const d = await startDaemon({ args: ['--stats-cache-ms', '600000'] });
    try {
      const p = uniq('p');
      const auth = { Authorization: `Bearer ${token({ sub: 's1', projects: [p] })}` };
      await db.query("SELECT evstream.post_event($1, 'doc', 'a', 'doc.created', '{}'::jsonb)", [`project:${p}`]);
      const first = await request(d, '/api/stats', { headers: auth });
      assert.equal(first.json.total, 1);
      await db.query("SELECT evstream.post_event($1, 'doc', 'b', 'doc.created', '{}'::jsonb)", [`project:${p}`]);
      assert.equal((await request(d, '/api/stats', { headers: auth })).json.total, 1, 'cached');
      const fresh = await startDaemon({ args: ['--stats-cache-ms', '0'] });
      try {
        assert.equal((await request(fresh, '/api/stats', { headers: auth })).json.total, 2);
      } finally {
        await stopDaemon(fresh);
      }
    } finally {
      await stopDaemon(d);
    }
  });
});
