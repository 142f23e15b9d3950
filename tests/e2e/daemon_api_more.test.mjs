// The rest of the events HTTP API (issue 7): one event by id, the event-type catalog, stats and
// consumers over HTTP, each filtered by the caller's claims. Real daemon, real cluster.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { pgClient, request, startDaemon, stopDaemon, token, uniq, waitFor } from './lib/daemon.mjs';

let d;
let db;
before(async () => {
  db = pgClient();
  await db.connect();
  // No periodic fold: what lands in the stats summary here was folded by a request.
  d = await startDaemon({ args: ['--stats-fold-ms', '0'] });
});
after(async () => {
  await stopDaemon(d);
  await db.end();
});

const auth = (claims) => ({ Authorization: `Bearer ${token(claims)}`, 'Content-Type': 'application/json' });
const get = (claims, path) => request(d, path, { headers: auth(claims) });
const post = (claims, path, body) => request(d, path, { method: 'POST', headers: auth(claims), body });
const append = async (channel, type = 'thing', id = 't1', eventType = 'thing.happened') =>
  (await db.query('SELECT id, position FROM evstream.post_event($1, $2, $3, $4)', [channel, type, id, eventType])).rows[0];

describe('GET /api/events/{eventId}', () => {
  test('returns the event to allowed tokens, 404 otherwise, 400 for a non-UUID', async () => {
    const p = uniq('p');
    const ev = await append(`project:${p}`);
    const r = await get({ projects: [p] }, `/api/events/${ev.id}`);
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json.eventId, ev.id);
    assert.equal(r.json.position, Number(ev.position));
    assert.equal((await get({ projects: ['other'] }, `/api/events/${ev.id}`)).status, 404);
    assert.equal((await get({ projects: [p] }, `/api/events/${crypto.randomUUID()}`)).status, 404);
    assert.equal((await get({ projects: [p] }, '/api/events/nope')).status, 400);
    assert.equal((await request(d, `/api/events/${ev.id}`)).status, 401);
  });
});

describe('GET /api/event-types and /api/stats', () => {
  test('the catalog lists registered types with schema and example', async () => {
    const type = uniq('cat.');
    await db.query(`SELECT evstream.register_event_type($1, '{"type": "object"}', 'a test type', '{"a": 1}')`, [type]);
    const r = await get({ projects: ['x'] }, '/api/event-types');
    assert.equal(r.status, 200, r.body);
    const t = r.json.eventTypes.find((x) => x.eventType === type);
    assert.deepEqual([t.schema, t.description, t.example], [{ type: 'object' }, 'a test type', { a: 1 }]);
  });

  test('stats count only the channels the token allows', async () => {
    const p = uniq('p');
    const q = uniq('q');
    const type = uniq('st.');
    await append(`project:${p}`, 's', 's1', type);
    await append(`project:${p}`, 's', 's1', type);
    await append(`project:${q}`, 's', 's2', type);
    const r = await get({ projects: [p] }, '/api/stats');
    assert.equal(r.status, 200, r.body);
    const row = r.json.eventTypes.find((x) => x.eventType === type);
    assert.equal(row.events, 2);
    assert.ok(row.firstAt <= row.lastAt);
    const both = await get({ projects: [p, q] }, '/api/stats');
    assert.equal(both.json.eventTypes.find((x) => x.eventType === type).events, 3);
    assert.equal((await get({ projects: [p] }, `/api/stats?channel=project:${q}`)).status, 403);
  });

  // Issue 11 item 5: the answer comes from the summary (evstream.channel_stats), equals a GROUP BY
  // over the log, never counts an uncommitted event, and stays right after an erasure.
  test('stats are read from the summary and equal a GROUP BY over the log, across a held transaction and an erasure', async () => {
    const fresh = await startDaemon({ args: ['--stats-cache-ms', '0', '--stats-fold-ms', '0'] });
    const holder = pgClient();
    await holder.connect();
    try {
      const p = uniq('p');
      const q = uniq('q');
      const [t1, t2] = [uniq('su.a'), uniq('su.b')];  // t1 sorts first
      const [s1, s2, s3, s4] = [uniq('s'), uniq('s'), uniq('s'), uniq('s')];
      await append(`project:${p}`, 'su', s1, t1);
      await append(`project:${p}`, 'su', s1, t1);
      await append(`project:${p}`, 'su', s2, t2);
      await append(`project:${q}`, 'su', s3, t1);
      const claims = { projects: [p] };
      // What the log says, per event type, for project:p (epoch milliseconds).
      const grouped = async () => (await db.query(
        `SELECT event_type AS "eventType", count(*)::int AS events,
                floor(extract(epoch FROM min(created_at)) * 1000)::float8 AS first,
                floor(extract(epoch FROM max(created_at)) * 1000)::float8 AS last
           FROM evstream.events WHERE channel = $1 GROUP BY 1 ORDER BY 1`, [`project:${p}`])).rows;
      const answered = async () => {
        const r = await request(fresh, '/api/stats', { headers: auth(claims) });
        assert.equal(r.status, 200, r.body);
        assert.deepEqual(r.json.channels, [`project:${p}`]);
        const rows = r.json.eventTypes.map((x) => ({
          eventType: x.eventType, events: x.events,
          first: Date.parse(x.firstAt), last: Date.parse(x.lastAt),
        }));
        assert.equal(r.json.total, rows.reduce((n, x) => n + x.events, 0));
        return rows;
      };
      const sameAsLog = (rows, expected, what) => {
        assert.deepEqual(rows.map((x) => [x.eventType, x.events]), expected.map((x) => [x.eventType, x.events]), what);
        for (const [i, x] of rows.entries()) {
          assert.ok(Math.abs(x.first - expected[i].first) <= 1, `${what}: firstAt of ${x.eventType}`);
          assert.ok(Math.abs(x.last - expected[i].last) <= 1, `${what}: lastAt of ${x.eventType}`);
        }
      };

      // An appending transaction stays open: its event is neither counted nor lost.
      await holder.query('BEGIN');
      await holder.query("SELECT evstream.post_event($1, 'su', $2, $3)", [`project:${p}`, s4, t2]);
      sameAsLog(await answered(), await grouped(), 'with a transaction open');
      assert.deepEqual((await answered()).map((x) => x.events), [2, 1]);
      await holder.query('COMMIT');
      const afterCommit = await answered();
      assert.deepEqual(afterCommit.map((x) => x.events), [2, 2], 'the held event counts once it commits');
      sameAsLog(afterCommit, await grouped(), 'after the commit');

      // The answer came from the summary: the daemon's call folded project:p's events into it.
      const { rows: summary } = await db.query(
        `SELECT event_type, events::int FROM evstream.event_stats WHERE channel = $1 ORDER BY 1`, [`project:${p}`]);
      assert.deepEqual(summary.map((x) => [x.event_type, x.events]), [[t1, 2], [t2, 2]]);

      // Erasing s1 (both t1 events) removes the type; erasing s2 moves t2's firstAt.
      await db.query("SELECT evstream.erase_aggregate('su', $1)", [s1]);
      await db.query("SELECT evstream.erase_aggregate('su', $1)", [s2]);
      const afterErase = await answered();
      assert.deepEqual(afterErase.map((x) => [x.eventType, x.events]), [[t2, 1]]);
      sameAsLog(afterErase, await grouped(), 'after the erasures');
      assert.equal((await request(fresh, `/api/stats?channel=project:${q}`, { headers: auth(claims) })).status, 403);
    } finally {
      await holder.end();
      await stopDaemon(fresh);
    }
  });

  test('--stats-fold-ms folds new events into the summary with no stats request', async () => {
    const folder = await startDaemon({ args: ['--stats-fold-ms', '20'] });
    try {
      const p = uniq('p');
      const type = uniq('sf.');
      await append(`project:${p}`, 'sf', uniq('s'), type);
      await append(`project:${p}`, 'sf', uniq('s'), type);
      // A fold may run between the two appends (the summary then holds 1 for a while): wait for
      // the fold that has seen both, then check it counted each exactly once.
      const folded = await waitFor(async () => {
        const row = (await db.query(
          'SELECT events::int FROM evstream.event_stats WHERE channel = $1 AND event_type = $2',
          [`project:${p}`, type])).rows[0];
        return row && row.events >= 2 ? row : null;
      }, { what: 'the daemon folding both events into evstream.event_stats' });
      assert.equal(folded.events, 2);
    } finally {
      await stopDaemon(folder);
    }
  });
});

describe('consumers over HTTP', () => {
  test('claim / ack / fail need roles: ["worker"]; events filtered by claims; ack advances', async () => {
    const p = uniq('p');
    const name = uniq('c');
    const worker = { sub: 'w', projects: [p], roles: ['worker'] };
    assert.equal((await post({ projects: [p] }, `/api/consumers/${name}/claim`, {})).status, 403);
    const before = (await db.query('SELECT count(*)::int AS n FROM evstream.events')).rows[0].n;
    assert.ok(before >= 0);
    const first = await post(worker, `/api/consumers/${name}/claim`, { max_count: 1000 });
    assert.equal(first.status, 200, first.body);
    // start at the end of the log: ack everything claimed so far, page by page
    let next = first.json.next;
    while (next !== null) {
      assert.equal((await post(worker, `/api/consumers/${name}/ack`, { position: next })).status, 200);
      next = (await post(worker, `/api/consumers/${name}/claim`, { max_count: 1000 })).json.next;
    }
    const e1 = await append(`project:${p}`, 'job', 'j1', 'job.created');
    const hidden = await append('project:not-mine', 'job', 'j2', 'job.created');
    const e3 = await append(`project:${p}`, 'job', 'j3', 'job.created');
    const batch = await post(worker, `/api/consumers/${name}/claim`, { max_count: 10 });
    assert.equal(batch.status, 200);
    assert.deepEqual(batch.json.events.map((e) => e.eventId), [e1.id, e3.id], 'not-mine filtered out');
    assert.equal(batch.json.next, Number(e3.position));
    assert.ok(Number(hidden.position) > 0);
    const again = await post(worker, `/api/consumers/${name}/claim`, { max_count: 10 });
    assert.deepEqual(again.json.events.map((e) => e.eventId), [e1.id, e3.id], 'claim does not advance');
    const f = await post(worker, `/api/consumers/${name}/fail`, { position: Number(e1.position), error: 'boom' });
    assert.equal(f.status, 200, f.body);
    const failures = await db.query('SELECT error FROM evstream.consumer_failures WHERE consumer = $1', [name]);
    assert.deepEqual(failures.rows.map((x) => x.error), ['boom']);
    assert.equal((await post(worker, `/api/consumers/${name}/ack`, { position: Number(e3.position) })).status, 200);
    const empty = await post(worker, `/api/consumers/${name}/claim`, {});
    assert.deepEqual(empty.json, { events: [], next: null });
    assert.equal((await post(worker, `/api/consumers/${name}/ack`, {})).status, 400);
    assert.equal((await post(worker, `/api/consumers/${name}/fail`, { position: 1 })).status, 400);
    assert.equal((await post(worker, `/api/consumers/${name}/nope`, {})).status, 404);
  });
});
