// The event log under real concurrent sessions: idempotency races, per-aggregate versions,
// consecutive batch positions, gap-free reading with a held-open writer, and the doorbell.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, connectMany, closeAll, unique, waitFor, post } from './support/pg.mjs';

test('idempotency race: sessions racing with one key end with one event, all get it', async () => {
  const clients = await connectMany(8);
  try {
    const key = unique('race-');
    const id = unique('agg-');
    // Each session: BEGIN, append with the key, COMMIT — all at once.
    const rows = await Promise.all(
      clients.map(async (c) => {
        await c.query('BEGIN');
        const row = await post(c, 'project:race', 'order', id, 'order.placed', { data: { n: 1 }, idempotency_key: key });
        await c.query('COMMIT');
        return row;
      }),
    );
    const ids = new Set(rows.map((r) => r.id));
    assert.equal(ids.size, 1, 'every session got the same event id');
    const { rows: stored } = await clients[0].query(
      'SELECT id FROM evstream.events WHERE channel = $1 AND idempotency_key = $2', ['project:race', key]);
    assert.equal(stored.length, 1, 'exactly one event in the log');
    assert.equal(stored[0].id, rows[0].id);
  } finally {
    await closeAll(clients);
  }
});

test('idempotency: a session waiting on an open original gets the original after commit', async () => {
  const [a, b, observer] = await connectMany(3);
  try {
    const key = unique('wait-');
    const id = unique('agg-');
    await a.query('BEGIN');
    const original = await post(a, 'project:race', 'order', id, 'order.placed', { idempotency_key: key });
    const { rows: [{ pid: bPid }] } = await b.query('SELECT pg_backend_pid() AS pid');
    let bDone = false;
    const bCall = post(b, 'project:race', 'order', id, 'order.placed', { idempotency_key: key }).finally(() => {
      bDone = true;
    });
    bCall.catch(() => {});  // awaited below; a failure before that must not surface as unhandled
    // b (this backend, not any other session of the cluster) must block on the key while a's
    // transaction is open. Watched from a third session outside any transaction: inside one
    // (a's), pg_stat_activity is a snapshot taken at its first read and never shows b's wait
    // when b's query arrives after that read (which made this test fail under load).
    await waitFor(async () => {
      if (bDone) return true;  // b did not wait: the assertion below says so
      const { rows } = await observer.query(
        "SELECT wait_event_type = 'Lock' AND query LIKE '%post_event%' AS waiting FROM pg_stat_activity WHERE pid = $1",
        [bPid]);
      return rows[0]?.waiting === true;
    }, { what: 'the second session to wait on the key lock' });
    assert.equal(bDone, false);
    await a.query('COMMIT');
    const replay = await bCall;
    assert.equal(replay.id, original.id);
    assert.equal(replay.position, original.position);
  } finally {
    await closeAll([a, b, observer]);
  }
});

test('concurrent appends to one aggregate get versions 1..n with no gap or duplicate', async () => {
  const clients = await connectMany(8);
  try {
    const id = unique('counter-');
    const perClient = 25;
    await Promise.all(
      clients.map(async (c) => {
        for (let i = 0; i < perClient; i++) await post(c, 'project:ver', 'counter', id, 'counter.bumped');
      }),
    );
    const { rows } = await clients[0].query(
      "SELECT version FROM evstream.events WHERE aggregate_type = 'counter' AND aggregate_id = $1 ORDER BY version", [id]);
    assert.deepEqual(rows.map((r) => r.version), Array.from({ length: 8 * perClient }, (_, i) => i + 1));
  } finally {
    await closeAll(clients);
  }
});

test('expected_version race: exactly one of the racing creators wins, the others get EV001', async () => {
  const clients = await connectMany(6);
  try {
    const id = unique('once-');
    const results = await Promise.allSettled(
      clients.map((c) => post(c, 'project:ver', 'cart', id, 'cart.created', { expected_version: 0 })),
    );
    const won = results.filter((r) => r.status === 'fulfilled');
    const lost = results.filter((r) => r.status === 'rejected');
    assert.equal(won.length, 1);
    assert.equal(lost.length, 5);
    for (const l of lost) {
      assert.equal(l.reason.code, 'EV001');
      assert.match(l.reason.message, new RegExp(`expected version 0 but aggregate cart/${id} is at version 1`));
    }
  } finally {
    await closeAll(clients);
  }
});

test('batch positions stay consecutive while other sessions append', async () => {
  const clients = await connectMany(6);
  try {
    const tag = unique('batch-');
    const singles = clients.slice(0, 4).map(async (c, k) => {
      for (let i = 0; i < 40; i++) await post(c, 'project:batch', 'single', `${tag}-${k}`, 'single.added');
    });
    const batches = clients.slice(4).map(async (c, k) => {
      const out = [];
      for (let i = 0; i < 10; i++) {
        const events = Array.from({ length: 20 }, (_, j) => ({
          channel: 'project:batch', aggregate_type: 'bulk', aggregate_id: `${tag}-${k}-${i}`,
          event_type: 'bulk.added', data: { j },
        }));
        const { rows } = await c.query('SELECT position FROM evstream.post_events($1)', [JSON.stringify(events)]);
        out.push(rows.map((r) => Number(r.position)));
      }
      return out;
    });
    await Promise.all(singles);
    for (const out of await Promise.all(batches)) {
      for (const positions of out) {
        for (let i = 1; i < positions.length; i++) assert.equal(positions[i], positions[0] + i);
      }
    }
  } finally {
    await closeAll(clients);
  }
});

// Reads everything after `cursor` on `channel`, advancing the cursor like a real consumer.
async function drain(reader, channel, cursor, seen) {
  for (;;) {
    const { rows } = await reader.query(
      'SELECT position, tx::text AS tx FROM evstream.read_after($1, 1000, $2)', [cursor.position, [channel]]);
    if (rows.length === 0) return;
    for (const r of rows) {
      seen.push(r);
      cursor.position = r.position;
    }
  }
}

test('gap-free reading: an event held by an open transaction is delivered after it commits, nothing skipped', async () => {
  const [slow, fast, reader] = await connectMany(3);
  try {
    const channel = `project:${unique('gap')}`;
    const seen = [];
    const cursor = { position: 0 };
    await post(fast, channel, 'doc', 'before', 'doc.created');
    await drain(reader, channel, cursor, seen);
    assert.equal(seen.length, 1);

    await slow.query('BEGIN');
    const held = await post(slow, channel, 'doc', 'held', 'doc.created'); // smaller position
    const later = [];
    for (let i = 0; i < 3; i++) later.push(await post(fast, channel, 'doc', `later-${i}`, 'doc.created'));
    assert.ok(Number(held.position) < Number(later[0].position), 'the held event has the smaller position');

    // Committed events after the open transaction are held back, so the reader cannot skip it.
    await drain(reader, channel, cursor, seen);
    assert.equal(seen.length, 1, 'nothing newer than the open transaction is returned yet');

    await slow.query('COMMIT');
    await drain(reader, channel, cursor, seen);
    assert.deepEqual(
      seen.map((r) => r.position),
      ['before', held, ...later].map((e) => (typeof e === 'string' ? seen[0].position : String(e.position))),
      'the held event comes first, then the later ones, each once');
  } finally {
    await closeAll([slow, fast, reader]);
  }
});

test('gap-free reading under random concurrent writers: a polling reader sees every event exactly once, in (order_key, position) order', async () => {
  const writers = await connectMany(12);
  const reader = await connect();
  try {
    const channel = `project:${unique('soak')}`;
    const seen = [];
    const cursor = { position: 0 };
    let writing = true;
    const readerLoop = (async () => {
      while (writing) await drain(reader, channel, cursor, seen);
    })();
    let written = 0;
    await Promise.all(
      writers.map(async (w, k) => {
        for (let i = 0; i < 30; i++) {
          await w.query('BEGIN');
          const n = 1 + ((k + i) % 3);
          for (let j = 0; j < n; j++) await post(w, channel, 'doc', `w${k}`, 'doc.touched');
          written += n;
          // Hold some transactions open across other writers' commits.
          if ((k + i) % 4 === 0) await w.query('SELECT pg_sleep(0.01)');
          await w.query('COMMIT');
        }
      }),
    );
    writing = false;
    await readerLoop;
    await drain(reader, channel, cursor, seen);
    const { rows: truth } = await reader.query(
      'SELECT position FROM evstream.events WHERE channel = $1 ORDER BY order_key, position', [channel]);
    assert.equal(truth.length, written);
    assert.deepEqual(seen.map((r) => r.position), truth.map((r) => r.position));
  } finally {
    await closeAll([...writers, reader]);
  }
});

test('doorbell: one NOTIFY evstream per committing transaction, none for a rolled-back one', async () => {
  const [listener, writer] = await connectMany(2);
  try {
    // The worker exits once idle with nothing pending: then no earlier ring is still in flight.
    const workerGone = async () => (await writer.query(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'evstream doorbell'")).rows[0].n === 0;
    await waitFor(workerGone, { what: 'an idle doorbell worker to exit' });
    const notes = [];
    listener.on('notification', (n) => notes.push(n));
    await listener.query('LISTEN evstream');
    const ringsBefore = Number((await writer.query('SELECT evstream.doorbell_rings() AS n')).rows[0].n);

    await writer.query('BEGIN');
    await post(writer, 'project:bell', 'doc', unique('rb-'), 'doc.created');
    await writer.query('ROLLBACK');

    const channel = `project:${unique('bell')}`;
    const events = Array.from({ length: 25 }, (_, j) => ({
      channel, aggregate_type: 'doc', aggregate_id: `d${j}`, event_type: 'doc.created',
    }));
    await writer.query('BEGIN');
    await writer.query('SELECT * FROM evstream.post_events($1)', [JSON.stringify(events)]);
    await post(writer, channel, 'doc', 'single', 'doc.created');
    await writer.query('COMMIT');

    await waitFor(() => notes.length >= 1, { what: 'the doorbell' });
    assert.equal(notes[0].channel, 'evstream');
    assert.equal(notes[0].payload, '', 'the doorbell carries no payload: the log is the truth');
    // When the bell rings, the transaction that rang it is committed and readable.
    const { rows } = await listener.query('SELECT count(*)::int AS n FROM evstream.read_after(0, 100000, $1)', [[channel]]);
    assert.equal(rows[0].n, 26);
    await waitFor(workerGone, { what: 'the doorbell worker to finish and exit' });
    const ringsAfter = Number((await writer.query('SELECT evstream.doorbell_rings() AS n')).rows[0].n);
    assert.equal(ringsAfter - ringsBefore, 1, 'one notification for the 26-event transaction, none for the rollback');
    assert.equal(notes.length, 1);
  } finally {
    await closeAll([listener, writer]);
  }
});

test('errors raised in C++ reach the client as PostgreSQL errors and the session stays usable', async () => {
  const c = await connect();
  try {
    await assert.rejects(post(c, 'bogus', 'doc', 'x', 'doc.created'), (e) => e.code === '22023');
    await assert.rejects(c.query("SELECT * FROM evstream.post_events('[1]')"), (e) =>
      e.code === '22023' && e.message === 'events[0] must be a JSON object');
    const row = await post(c, 'project:ok', 'doc', unique('ok-'), 'doc.created');
    assert.equal(row.version, 1);
  } finally {
    await c.end();
  }
});
