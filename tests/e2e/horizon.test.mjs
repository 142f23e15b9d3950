// The delivery horizon (issue 13): only transactions that have appended to the log hold events
// back. Real concurrent sessions, a real evstreamd with --poll-ms 0 (doorbells only), waits on
// conditions with deadlines.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  openReady, pgClient, postSql, request, startDaemon, stopDaemon, token, uniq, waitFor,
} from './lib/daemon.mjs';
import pg from 'pg';
import { execFileSync } from 'node:child_process';
import path from 'node:path';

const OTHER_DB = 'evstream_horizon_other';
let db;
before(async () => { db = pgClient(); db.on('error', () => {}); await db.connect(); });
after(async () => { await db.end().catch(() => {}); });

const metric = (body, name) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(body)[1]);
const readAfter = async (c, after, channel) =>
  (await c.query('SELECT position FROM evstream.read_after($1, 100000, $2)', [after, [channel]])).rows.map((r) => Number(r.position));
const stateOf = async (pid) =>
  (await db.query('SELECT state FROM pg_stat_activity WHERE pid = $1', [pid])).rows[0]?.state;
const pidOf = async (c) => (await c.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;

describe('delivery horizon', () => {
  test('write transactions held open in another database and on a non-log table hold nothing back', async () => {
    const admin = new pg.Client({ database: 'postgres' });
    await admin.connect();
    await admin.query('SET client_min_messages = warning');
    await admin.query(`DROP DATABASE IF EXISTS ${OTHER_DB} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${OTHER_DB}`);
    const elsewhere = new pg.Client({ database: OTHER_DB });
    const sameDb = pgClient();
    await elsewhere.connect();
    await sameDb.connect();
    const d = await startDaemon({ args: ['--poll-ms', '0'] });
    try {
      await db.query('CREATE TABLE IF NOT EXISTS horizon_unrelated (x int)');
      // Both hold an xid (the old xmin rule waited for both) and never touch the log.
      await elsewhere.query('BEGIN');
      await elsewhere.query('CREATE TABLE t (x int)');
      await elsewhere.query('INSERT INTO t VALUES (1)');
      await sameDb.query('BEGIN');
      await sameDb.query('INSERT INTO horizon_unrelated VALUES (1)');
      const pids = [await pidOf(elsewhere), await pidOf(sameDb)];
      const xmin = (await db.query('SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS x')).rows[0].x;

      const p = uniq('p');
      const s = await openReady(d, { tokenValue: token({ projects: [p] }) });
      const [pos] = await postSql(db, `project:${p}`, 1);
      // read_after returns it straight after the commit: no wait at all.
      assert.deepEqual(await readAfter(db, 0, `project:${p}`), [pos]);
      // The event's transaction is newer than the open ones: the xmin rule would hold it back.
      const { rows: [ev] } = await db.query('SELECT tx::text AS tx FROM evstream.events WHERE position = $1', [pos]);
      assert.ok(BigInt(ev.tx) > BigInt(xmin), 'the xmin rule would hold this event back');
      await s.until(() => s.positions().includes(pos), 10000, 'the event on the SSE stream');
      assert.deepEqual(s.positions(), [pos]);
      // …while both unrelated transactions are still open.
      for (const pid of pids) assert.equal(await stateOf(pid), 'idle in transaction');
      const { rows: [h] } = await db.query('SELECT * FROM evstream.horizon()');
      assert.equal(h.open_appenders, 0);
      assert.equal(h.pid, null);
      s.close();
    } finally {
      await stopDaemon(d);
      await elsewhere.end().catch(() => {});
      await sameDb.end().catch(() => {});
      await admin.query(`DROP DATABASE IF EXISTS ${OTHER_DB} WITH (FORCE)`).catch(() => {});
      await admin.end();
    }
  });

  test('an appending transaction A open and B committed after it: neither readable until A commits, then A, B', async () => {
    const d = await startDaemon({ args: ['--poll-ms', '0'] });
    const a = pgClient();
    await a.connect();
    try {
      const p = uniq('p');
      const channel = `project:${p}`;
      const [earlier] = await postSql(db, channel, 1, { id: 'earlier' });
      const s = await openReady(d, { tokenValue: token({ projects: [p] }), lastEventId: earlier });
      assert.deepEqual(await readAfter(db, 0, channel), [earlier]);

      await a.query('BEGIN');
      const { rows: [ra] } = await a.query(
        "SELECT position FROM evstream.post_event($1, 'thing', 'A', 'thing.happened')", [channel]);
      const posA = Number(ra.position);
      const reads = metric((await request(d, '/metrics')).body, 'evstream_feed_reads_total');
      const [posB] = await postSql(db, channel, 1, { id: 'B' });
      assert.ok(posA < posB);
      // B's doorbell made the feed read: B was held back, A is not visible.
      await waitFor(async () => metric((await request(d, '/metrics')).body, 'evstream_feed_reads_total') > reads,
        { what: 'a feed read after B committed' });
      assert.deepEqual(await readAfter(db, earlier, channel), [], 'nothing past the open appender');
      assert.deepEqual(await readAfter(db, 0, channel), [earlier]);
      assert.deepEqual(s.positions(), [], 'nothing delivered while A is open');
      // evstream.horizon() names the holder.
      const { rows: [h] } = await db.query('SELECT * FROM evstream.horizon()');
      assert.equal(h.pid, await pidOf(a));
      assert.equal(h.state, 'idle in transaction');
      assert.ok(Number(h.held_back) >= 1, 'B waits at the horizon');
      assert.equal(h.open_appenders, 1);
      // evstreamd says the same: /metrics at once, /healthz once held back for a second.
      const apid = await pidOf(a);
      await waitFor(async () => (await request(d, '/healthz')).json?.held_back?.pid === apid,
        { what: '/healthz to name the holder' });
      const hz = (await request(d, '/healthz')).json;
      assert.equal(hz.status, 'ok');
      assert.equal(hz.held_back.database, (await db.query('SELECT current_database() AS d')).rows[0].d);
      assert.equal(hz.held_back.state, 'idle in transaction');
      assert.ok(hz.held_back.seconds >= 1 && hz.held_back.events >= 1 && hz.held_back.open_seconds >= hz.held_back.seconds);
      assert.equal(metric((await request(d, '/metrics')).body, 'evstream_held_back_pid'), apid);

      await a.query('COMMIT');
      assert.deepEqual(await readAfter(db, earlier, channel), [posA, posB], 'A then B, for a reader past earlier events');
      assert.deepEqual(await readAfter(db, 0, channel), [earlier, posA, posB]);
      await s.until(() => s.positions().length >= 2, 10000, 'A and B on the stream');
      assert.deepEqual(s.positions(), [posA, posB]);
      await waitFor(async () => metric((await request(d, '/metrics')).body, 'evstream_held_back_pid') === 0,
        { what: 'the held-back gauge to clear' });
      assert.equal((await request(d, '/healthz')).json.held_back, undefined);
      s.close();
    } finally {
      await a.query('ROLLBACK').catch(() => {});
      await a.end();
      await stopDaemon(d);
    }
  });

  test('rolled-back appends, errors after the first append, savepoints and terminated backends release the horizon', async () => {
    const a = pgClient();
    await a.connect();
    try {
      const channel = `project:${uniq('p')}`;
      const held = async (what, end) => {
        const [b] = await postSql(db, channel, 1, { id: 'B' });
        const before = await readAfter(db, 0, channel);
        assert.ok(!before.includes(b), `${what}: B held back while the appender is open`);
        await end();
        await waitFor(async () => (await readAfter(db, 0, channel)).includes(b), { what: `${what}: B readable` });
        return b;
      };
      // A subtransaction that appended and rolled back still holds until the top level ends.
      await a.query('BEGIN');
      await a.query('SAVEPOINT s');
      await postSql(a, channel, 1, { id: 'A' });
      await a.query('ROLLBACK TO SAVEPOINT s');
      await held('savepoint rolled back', () => a.query('COMMIT'));
      // An error after the first append aborts the transaction: that releases it at once (it
      // can never commit), before the client's ROLLBACK.
      await a.query('BEGIN');
      await postSql(a, channel, 1, { id: 'A' });
      await held('error after append', () => assert.rejects(a.query('SELECT 1/0')));
      await a.query('ROLLBACK');
      // PREPARE TRANSACTION is refused, and the transaction rolls back.
      await a.query('BEGIN');
      await postSql(a, channel, 1, { id: 'A' });
      await assert.rejects(a.query("PREPARE TRANSACTION 'evstream_horizon'"),
        (e) => e.code === '0A000' && /cannot PREPARE a transaction that has appended events/.test(e.message));
      assert.equal((await db.query('SELECT count(*)::int AS n FROM pg_prepared_xacts')).rows[0].n, 0);
      const { rows: [h] } = await db.query('SELECT * FROM evstream.horizon()');
      assert.equal(h.open_appenders, 0, 'the refused PREPARE released the horizon');
      // A backend terminated with its append open (FATAL) releases it.
      const victim = pgClient();
      await victim.connect();
      victim.on('error', () => {});
      const vpid = await pidOf(victim);
      await victim.query('BEGIN');
      await postSql(victim, channel, 1, { id: 'V' });
      await held('backend terminated', () => db.query('SELECT pg_terminate_backend($1)', [vpid]));
      await victim.end().catch(() => {});
    } finally {
      await a.query('ROLLBACK').catch(() => {});
      await a.end();
    }
  });
});

// Crash recovery: pg_ctl stop -m immediate while writers append, restart, and a reader that
// follows from its cursor misses nothing committed and sees nothing twice; keys handed out after
// the restart are above every key in the log.
describe('delivery horizon across a crash', () => {
  test('pg_ctl stop -m immediate while writers run: readers miss nothing', async () => {
    const channel = `project:${uniq('crash')}`;
    const writers = await Promise.all(Array.from({ length: 6 }, async () => {
      const c = pgClient();
      c.on('error', () => {});
      await c.connect();
      return c;
    }));
    let reader = pgClient();
    reader.on('error', () => {});
    await reader.connect();
    const acknowledged = [];
    const seen = [];
    let cursor = 0;
    const follow = async (c) => {
      for (const p of await readAfter(c, cursor, channel)) {
        seen.push(p);
        cursor = p;
      }
    };
    const loops = writers.map(async (w, k) => {
      for (let i = 0; ; i++) {
        try {
          await w.query('BEGIN');
          const mine = [];
          for (let j = 0; j < 1 + ((k + i) % 3); j++) mine.push(...await postSql(w, channel, 1, { id: `w${k}` }));
          await w.query('COMMIT');
          acknowledged.push(...mine);
        } catch {
          return;  // the server went away
        }
      }
    });
    try {
      await waitFor(async () => {
        await follow(reader);
        return acknowledged.length >= 150;
      }, { timeout: 60000, what: 'writers to commit 150 events' });
      execFileSync(path.resolve('scripts/pg'), ['crash'], { stdio: 'ignore' });
      await Promise.all(loops);
      execFileSync(path.resolve('scripts/pg'), ['start'], { stdio: 'ignore' });
      await reader.end().catch(() => {});
      reader = pgClient();
      await reader.connect();
      await follow(reader);
      const { rows: truth } = await reader.query(
        'SELECT position FROM evstream.events WHERE channel = $1 ORDER BY order_key, position', [channel]);
      assert.deepEqual(seen, truth.map((r) => Number(r.position)), 'the reader saw the log in order, each event once');
      const missing = acknowledged.filter((p) => !seen.includes(p));
      assert.deepEqual(missing, [], 'every acknowledged commit survived and was read');
      // After the restart: keys above everything in the log, and the reader follows on.
      const { rows: [{ max }] } = await reader.query('SELECT max(order_key)::text AS max FROM evstream.events');
      const [next] = await postSql(reader, channel, 1, { id: 'after' });
      const { rows: [{ key }] } = await reader.query('SELECT order_key::text AS key FROM evstream.events WHERE position = $1', [next]);
      assert.ok(BigInt(key) > BigInt(max), 'a key after the restart is above every key before it');
      await follow(reader);
      assert.equal(seen.at(-1), next);
    } finally {
      await Promise.all(writers.map((w) => w.end().catch(() => {})));
      await reader.end().catch(() => {});
    }
  });
});

// Item 4: the doorbell rings for every commit even when its worker cannot start at first.
describe('doorbell that always rings', () => {
  test('a worker that fails to connect is retried: the pending commit still rings, with no later commit', async () => {
    const name = `evstream_bell_${uniq('')}`;
    const admin = new pg.Client({ database: 'postgres' });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    const own = new pg.Client({ database: name });
    const listener = new pg.Client({ database: name });
    await own.connect();
    await listener.connect();
    try {
      await own.query('CREATE EXTENSION evstream');
      const notes = [];
      listener.on('notification', (n) => { if (n.channel === 'evstream') notes.push(n); });
      await listener.query('LISTEN evstream');
      // Existing sessions stay; the doorbell worker's connection is refused (FATAL at start).
      await admin.query(`ALTER DATABASE ${name} ALLOW_CONNECTIONS false`);
      await own.query("SELECT evstream.post_event('project:bell', 'doc', 'd1', 'doc.created')");
      // The worker was registered at pre-commit and fails while this commit is pending.
      await waitFor(async () => (await admin.query(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'evstream doorbell' AND datname = $1",
        [name])).rows[0].n === 0, { what: 'no doorbell worker connected' });
      assert.equal(notes.length, 0, 'nobody could ring yet');
      await admin.query(`ALTER DATABASE ${name} ALLOW_CONNECTIONS true`);
      // No further commit: the retried worker rings the pending one.
      await waitFor(() => notes.length >= 1, { timeout: 15000, what: 'the pending commit to ring' });
    } finally {
      await admin.query(`ALTER DATABASE ${name} ALLOW_CONNECTIONS true`).catch(() => {});
      await own.end().catch(() => {});
      await listener.end().catch(() => {});
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {});
      await admin.end();
    }
  });
});
