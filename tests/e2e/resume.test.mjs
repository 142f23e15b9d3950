// Resume from the first frame (issue 11 item 2): `connected` carries an id that is safe to resume
// from, so a client that never received an event still resumes without loss; the web client
// keeps the `reset` frame's id. Real cluster, real daemon, node:http clients and web/evstream.js.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { connect } from '../../web/evstream.js';
import { openReady, pgClient, postSql, request, startDaemon, stopDaemon, token, uniq, waitFor } from './lib/daemon.mjs';

let d;
let db;

before(async () => {
  db = pgClient();
  await db.connect();
  d = await startDaemon();
});
after(async () => {
  await stopDaemon(d);
  await db.end();
});

const connectedFrame = (s) => s.events.find((e) => e.event === 'connected');
const storedTypes = (s) => s.dataEvents().map((e) => e.event);

// The web client over a fetch that the test can hold: while `gate.closed`, reconnects wait.
function gatedClient(options) {
  const gate = { closed: false, release: null, attempts: 0 };
  const fetchImpl = async (url, init) => {
    gate.attempts++;
    if (gate.closed) await new Promise((resolve) => { gate.release = resolve; });
    return fetch(url, init);
  };
  const client = connect({ url: d.url, minBackoffMs: 10, maxBackoffMs: 50, fetch: fetchImpl, ...options });
  const frames = [];
  client.subscribe('*', (e) => frames.push(e));
  return { client, gate, frames };
}

describe('resume from the first frame', () => {
  test('quiet channel: the connected id resumes every event committed while away, once and in order', async () => {
    const p = uniq('p');
    const t = token({ projects: [p] });
    // Traffic on another channel moves the log's end; ours stays quiet.
    await postSql(db, `project:${uniq('other')}`, 2);
    const first = await openReady(d, { tokenValue: t, query: `?channel=project:${p}` });
    const { id } = connectedFrame(first);
    assert.match(id ?? '', /^\d+$/, 'connected carries a position');
    first.close();

    const missed = await postSql(db, `project:${p}`, 5);
    const again = await openReady(d, { tokenValue: t, query: `?channel=project:${p}`, lastEventId: id });
    assert.equal(connectedFrame(again).id, id, 'a resumed stream starts where the client was');
    const live = await postSql(db, `project:${p}`, 2);
    await again.until((evs) => evs.some((e) => e.id === String(live[1])), 10000, 'the live events');
    assert.deepEqual(again.positions(), [...missed, ...live]);
    again.close();
  });

  test('an event held back by an older open transaction is not skipped by the connected id', async () => {
    const p = uniq('p');
    const t = token({ projects: [p] });
    const slow = new pg.Client();
    await slow.connect();
    try {
      // A transaction that takes its position now and commits later…
      await slow.query('BEGIN');
      const held = await postSql(slow, `project:${p}`, 1, { id: 'held' });
      // …a later one that commits at once (readable only once the first one ends)…
      const quick = await postSql(db, `project:${p}`, 1, { id: 'quick' });
      // …and a stream that connects while the first is still open, then leaves.
      const first = await openReady(d, { tokenValue: t, query: `?channel=project:${p}` });
      const { id } = connectedFrame(first);
      first.close();
      // Resuming from the quick event's own position would skip `held` (README: not a safe id).
      assert.notEqual(id, String(quick[0]));
      await slow.query('COMMIT');
      const again = await openReady(d, { tokenValue: t, query: `?channel=project:${p}`, lastEventId: id });
      await again.until((evs) => evs.filter((e) => e.event === 'thing.happened').length === 2, 10000, 'both events');
      assert.deepEqual(again.positions().sort((a, b) => a - b), [held[0], quick[0]].sort((a, b) => a - b));
      assert.equal(again.positions().length, 2, 'each once');
      again.close();
    } finally {
      await slow.query('ROLLBACK').catch(() => {});
      await slow.end();
    }
  });

  test('an empty log: connected carries "0" (from the start)', async () => {
    // A database of its own with nothing in it.
    const name = `evstream_resume_${uniq('')}`;
    const admin = new pg.Client({ database: 'postgres' });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    const own = new pg.Client({ database: name });
    await own.connect();
    let d2;
    try {
      await own.query('CREATE EXTENSION evstream');
      d2 = await startDaemon({ env: { PGDATABASE: name } });
      const p = uniq('p');
      const t = token({ projects: [p] });
      const s = await openReady(d2, { tokenValue: t, query: `?channel=project:${p}` });
      assert.equal(connectedFrame(s).id, '0');
      s.close();
      const missed = await postSql(own, `project:${p}`, 3);
      const again = await openReady(d2, { tokenValue: t, query: `?channel=project:${p}`, lastEventId: '0' });
      await again.until((evs) => evs.some((e) => e.id === String(missed[2])));
      assert.deepEqual(again.positions(), missed);
      again.close();
    } finally {
      await stopDaemon(d2);
      await own.end();
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    }
  });

  test('web client: keeps the connected id, and resumes after a disconnect on a quiet channel', async () => {
    const p = uniq('p');
    const { client, gate, frames } = gatedClient({ token: token({ projects: [p] }), channels: [`project:${p}`] });
    try {
      await waitFor(() => client.connectionState === 'open', { what: 'client open' });
      const connected = frames.find((f) => f.type === 'connected');
      assert.ok(connected);
      assert.match(client.lastEventId ?? '', /^\d+$/, 'the connected id is kept');
      const startId = client.lastEventId;
      // Disconnect and hold the reconnect while events are committed.
      gate.closed = true;
      const attempts = gate.attempts;
      client.controller.abort();
      await waitFor(() => gate.attempts > attempts, { what: 'reconnect attempt' });
      const missed = await postSql(db, `project:${p}`, 4);
      gate.closed = false;
      gate.release();
      await waitFor(() => frames.filter((f) => f.type === 'thing.happened').length >= 4, { what: 'missed events' });
      assert.deepEqual(frames.filter((f) => f.type === 'thing.happened').map((f) => f.position), missed);
      assert.notEqual(startId, null);
      assert.equal(frames.filter((f) => f.type === 'reset').length, 0);
    } finally {
      client.close();
    }
  });

  test('web client: keeps the reset frame id and resumes from it without loss', async () => {
    const p = uniq('p');
    const { client, gate, frames } = gatedClient({
      token: token({ projects: [p] }), channels: [`project:${p}`], lastEventId: '999999999',
    });
    try {
      await waitFor(() => frames.some((f) => f.type === 'reset'), { what: 'reset' });
      const reset = frames.find((f) => f.type === 'reset');
      assert.equal(reset.lastEventId, '999999999');
      assert.equal(client.lastEventId, String(reset.position), 'the reset id is kept, not forgotten');
      gate.closed = true;
      const attempts = gate.attempts;
      client.controller.abort();
      await waitFor(() => gate.attempts > attempts, { what: 'reconnect attempt' });
      const missed = await postSql(db, `project:${p}`, 3);
      gate.closed = false;
      gate.release();
      await waitFor(() => frames.filter((f) => f.type === 'thing.happened').length >= 3, { what: 'missed events' });
      assert.deepEqual(frames.filter((f) => f.type === 'thing.happened').map((f) => f.position), missed);
      assert.equal(frames.filter((f) => f.type === 'reset').length, 1, 'the resume is not reset again');
    } finally {
      client.close();
    }
  });

  test('GET /api/events on an empty channel answers next: 0, a safe id', async () => {
    const p = uniq('p');
    const t = token({ projects: [p] });
    const h = await request(d, `/api/events?channel=project:${p}`, { headers: { Authorization: `Bearer ${t}` } });
    assert.equal(h.status, 200);
    assert.equal(h.json.next, 0);
    const missed = await postSql(db, `project:${p}`, 2);
    const s = await openReady(d, { tokenValue: t, query: `?channel=project:${p}`, lastEventId: String(h.json.next) });
    await s.until((evs) => evs.some((e) => e.id === String(missed[1])));
    assert.deepEqual(s.positions(), missed);
    assert.deepEqual(storedTypes(s), ['thing.happened', 'thing.happened']);
    s.close();
  });
});
