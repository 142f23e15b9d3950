// evstream.publish in SQL (issues 7, 10): a row of the ephemeral outbox that every evstreamd reads
// when the evstream_ephemeral doorbell rings — reaches subscribers of two instances without an id:
// line, only at commit, never on rollback; a publish that commits after a later one is still
// delivered, exactly once, also under many concurrent writers; invalid input and oversized
// payloads fail with 22023, channels outside the claims with 42501.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { openReady, pgClient, startDaemon, stopDaemon, token, uniq } from './lib/daemon.mjs';

let a;
let b;
let db;
before(async () => {
  db = pgClient();
  await db.connect();
  [a, b] = await Promise.all([startDaemon(), startDaemon()]);
});
after(async () => {
  await Promise.all([stopDaemon(a), stopDaemon(b)]);
  await db.end();
});

test('SQL publish reaches both instances at commit, never on rollback, without id:', async () => {
  const p = uniq('p');
  const ch = `project:${p}`;
  const claims = { projects: [p] };
  const sa = await openReady(a, { tokenValue: token(claims), query: `?channel=${ch}` });
  const sb = await openReady(b, { tokenValue: token(claims), query: `?channel=${ch}` });
  await db.query('BEGIN');
  await db.query(`SELECT evstream.publish($1, 'rolled.back', '{}')`, [ch]);
  await db.query('ROLLBACK');
  await db.query('BEGIN');
  const { rows } = await db.query(`SELECT evstream.publish($1, 'sql.flash', '{"n": 1}', 'note', 'n1') AS id`, [ch]);
  await db.query(`SELECT evstream.publish($1, 'sql.flash', '{"n": 1}', 'note', 'n1')`, [ch]);  // same content: still two
  await db.query('COMMIT');
  for (const s of [sa, sb]) {
    await s.until((evs) => evs.filter((e) => e.event === 'sql.flash').length === 2, 10000, 'two sql flashes');
    const frames = s.events.filter((e) => e.event === 'sql.flash');
    assert.deepEqual(frames.map((f) => f.id), [undefined, undefined]);
    const first = JSON.parse(frames[0].data);
    assert.equal(first.ephemeralId, rows[0].id);
    assert.deepEqual([first.entity, first.id, first.data.n, first.ephemeral, first.createdBy], ['note', 'n1', 1, true, 'system']);
    assert.equal(s.events.filter((e) => e.event === 'rolled.back').length, 0);
  }
  sa.close();
  sb.close();
});

test('SQL publish validates input, the size limit and the claims', async () => {
  const p = uniq('p');
  const code = async (sql, params) => db.query(sql, params).then(() => 'ok', (e) => e.code);
  assert.equal(await code(`SELECT evstream.publish($1, 'big', jsonb_build_object('x', repeat('a', 8000)))`, [`project:${p}`]), '22023');
  assert.equal(await code(`SELECT evstream.publish($1, 'ok', jsonb_build_object('x', repeat('a', 7000)))`, [`project:${p}`]), 'ok');
  assert.equal(await code(`SELECT evstream.publish('team:x', 't')`), '22023');
  assert.equal(await code(`SELECT evstream.publish('project:x', '')`), '22023');
  assert.equal(await code(`SELECT evstream.publish('project:x', 'reset')`), '22023');
  assert.equal(await code(`SELECT evstream.publish('project:x', 't', '[1]')`), '22023');
  assert.equal(await code(`SELECT evstream.publish(NULL, 't')`), '22004');
  // as a non-superuser writer (superusers and evstream_admin members may use every channel)
  await db.query('BEGIN');
  await db.query(`CREATE ROLE rt_pub_${p} NOLOGIN IN ROLE evstream_writer`);
  await db.query(`SET LOCAL ROLE rt_pub_${p}`);
  await db.query(`SET LOCAL request.jwt.claims = '{"sub": "ann", "projects": ["a"]}'`);
  assert.equal(await code(`SAVEPOINT s; SELECT evstream.publish('project:b', 't')`), '42501');
  await db.query('ROLLBACK TO SAVEPOINT s');
  assert.equal(await code(`SELECT evstream.publish('project:a', 't')`), 'ok');
  await db.query('ROLLBACK');
});

test('a publish that commits after a later one is delivered once; concurrent writers: every committed event exactly once', async () => {
  const p = uniq('p');
  const ch = `project:${p}`;
  const claims = { projects: [p] };
  const sa = await openReady(a, { tokenValue: token(claims), query: `?channel=${ch}` });
  const sb = await openReady(b, { tokenValue: token(claims), query: `?channel=${ch}` });
  const slow = pgClient();
  await slow.connect();
  // `late` takes its outbox id first, commits last
  await slow.query('BEGIN');
  await slow.query(`SELECT evstream.publish($1, 'late', '{}')`, [ch]);
  await db.query(`SELECT evstream.publish($1, 'early', '{}')`, [ch]);
  for (const s of [sa, sb]) await s.until((evs) => evs.some((e) => e.event === 'early'), 10000, 'early');
  await slow.query('COMMIT');
  for (const s of [sa, sb]) await s.until((evs) => evs.some((e) => e.event === 'late'), 10000, 'late');

  // Random writers: transactions of 1-3 publishes, interleaved, one in five rolled back.
  const committed = new Set();
  const rolledBack = new Set();
  const writers = Array.from({ length: 6 }, async (_, w) => {
    const c = pgClient();
    await c.connect();
    for (let i = 0; i < 25; i++) {
      await c.query('BEGIN');
      const keys = [];
      for (let j = 0; j < 1 + ((w + i) % 3); j++) {
        const k = `${w}-${i}-${j}`;
        keys.push(k);
        await c.query(`SELECT evstream.publish($1, 'mix', jsonb_build_object('k', $2::text))`, [ch, k]);
        await new Promise((r) => { setImmediate(r); });
      }
      if (Math.random() < 0.2) {
        await c.query('ROLLBACK');
        keys.forEach((k) => rolledBack.add(k));
      } else {
        await c.query('COMMIT');
        keys.forEach((k) => committed.add(k));
      }
    }
    await c.end();
  });
  await Promise.all(writers);
  await db.query(`SELECT evstream.publish($1, 'marker', '{}')`, [ch]);
  for (const s of [sa, sb]) {
    await s.until((evs) => evs.some((e) => e.event === 'marker')
      && evs.filter((e) => e.event === 'mix').length >= committed.size, 15000, 'every committed event');
    const got = s.events.filter((e) => e.event === 'mix').map((e) => JSON.parse(e.data).data.k);
    assert.equal(got.length, committed.size, 'no duplicate');
    assert.deepEqual(new Set(got), committed, 'every committed event, nothing rolled back');
    assert.equal(s.events.filter((e) => e.event === 'late').length, 1);
    assert.equal(s.events.filter((e) => e.event === 'early').length, 1);
  }
  await slow.end();
  sa.close();
  sb.close();
});

// The writer caches the outbox's OIDs per backend; a relcache invalidation (here: another
// session's ANALYZE) taken at the first lock of a transaction used to clear the cached sequence
// between lookup and use: "could not open relation with OID 0" (XX000) under load.
test('publish right after another session invalidated the outbox relation writes its row', async () => {
  const p = uniq('p');
  const ch = `project:${p}`;
  const sa = await openReady(a, { tokenValue: token({ projects: [p] }), query: `?channel=${ch}` });
  const other = pgClient();
  await other.connect();
  try {
    await db.query(`SELECT evstream.publish($1, 'warm.up', '{}')`, [ch]);  // caches the OIDs
    await db.query('BEGIN');  // invalidations are taken at transaction start; this one comes after
    await other.query('ANALYZE evstream.ephemeral_outbox');
    const id = (await db.query(`SELECT evstream.publish($1, 'after.inval', '{}') AS id`, [ch])).rows[0].id;
    await db.query('COMMIT');
    await sa.until(() => sa.events.some((e) => e.event === 'after.inval' && JSON.parse(e.data).ephemeralId === id),
      10000, 'the event published after the invalidation');
  } finally {
    await db.query('ROLLBACK').catch(() => {});
    await other.end();
    sa.close();
  }
});
