// evstream.publish in SQL (issue 7): a NOTIFY evstream_ephemeral that every evstreamd fans out —
// reaches subscribers of two instances without an id: line, only at commit, never on rollback;
// invalid input and oversized payloads fail with 22023, channels outside the claims with 42501.
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
