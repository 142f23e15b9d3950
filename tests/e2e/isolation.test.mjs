// Isolation levels (issue 10 item 7): under REPEATABLE READ and SERIALIZABLE, idempotent retries
// racing in real concurrent sessions get the original event or 40001 (retryable), never 23505.
// The second session is held on the first one's key lock (seen in pg_stat_activity) before the
// first commits, so every case is a real race.
import test from 'node:test';
import assert from 'node:assert/strict';
import { connect, unique, waitFor } from './support/pg.mjs';

const POST = `SELECT id::text FROM evstream.post_event($1, $2, $3, 'race.happened', $4::jsonb,
                idempotency_key => $5, expected_version => $6)`;

// Runs the race once: A posts and holds the key; B posts the same key, waits on A's lock; A
// commits; B's outcome is returned ({ id } or { code }).
async function race(level, a, b, first, second) {
  const pidB = (await b.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
  await a.query(`BEGIN ISOLATION LEVEL ${level}`);
  await b.query(`BEGIN ISOLATION LEVEL ${level}`);
  // Both snapshots are taken before either posts.
  await a.query('SELECT count(*) FROM evstream.events');
  await b.query('SELECT count(*) FROM evstream.events');
  const original = (await a.query(POST, first)).rows[0].id;
  const pending = b.query(POST, second).then((r) => ({ id: r.rows[0].id }), (e) => ({ code: e.code, message: e.message }));
  await waitFor(async () => (await a.query(
    "SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'", [pidB])).rowCount === 1,
  { what: 'the second session to wait for the key' });
  await a.query('COMMIT');
  const outcome = await pending;
  await b.query(outcome.code ? 'ROLLBACK' : 'COMMIT');
  return { original, outcome };
}

for (const level of ['REPEATABLE READ', 'SERIALIZABLE']) {
  test(`${level}: racing idempotent retries get the original event or 40001, never 23505`, async () => {
    const [a, b] = [await connect(), await connect()];
    try {
      const cases = [
        ['a new aggregate', null, null],
        ['a new aggregate with expected_version 0', 0, 0],
      ];
      for (const [what, evA, evB] of cases) {
        const id = unique('race_');
        const key = unique('k_');
        const args = ['project:race', 'race', id, '{"n": 1}', key];
        const { original, outcome } = await race(level, a, b, [...args, evA], [...args, evB]);
        assert.ok(outcome.code === undefined ? outcome.id === original : outcome.code === '40001',
          `${what}: got ${JSON.stringify(outcome)}`);
        // The retry after 40001 (a new transaction) returns the original.
        const retry = (await b.query(POST, [...args, evB])).rows[0].id;
        assert.equal(retry, original, `${what}: the retry returns the original`);
        const n = (await a.query('SELECT count(*)::int AS n FROM evstream.events WHERE aggregate_id = $1', [id])).rows[0].n;
        assert.equal(n, 1, `${what}: one event in the log`);
      }
      // An existing aggregate (its row is updated by both sessions).
      const id = unique('race_');
      await a.query(POST, ['project:race', 'race', id, '{"n": 0}', unique('k_'), null]);
      const key = unique('k_');
      const args = ['project:race', 'race', id, '{"n": 1}', key];
      const { original, outcome } = await race(level, a, b, [...args, 1], [...args, 1]);
      assert.ok(outcome.code === undefined ? outcome.id === original : outcome.code === '40001',
        `an existing aggregate: got ${JSON.stringify(outcome)}`);
      assert.equal((await b.query(POST, [...args, 1])).rows[0].id, original, 'the retry returns the original');

      // The same key for other content on another aggregate: a conflict, never 23505.
      const other = unique('race_');
      const key2 = unique('k_');
      const r = await race(level, a, b, ['project:race', 'race', unique('race_'), '{"n": 1}', key2, null],
        ['project:race', 'race', other, '{"n": 2}', key2, null]);
      assert.ok(['40001', 'EV002'].includes(r.outcome.code), `other content: got ${JSON.stringify(r.outcome)}`);
      await assert.rejects(b.query(POST, ['project:race', 'race', other, '{"n": 2}', key2, null]), { code: 'EV002' });
    } finally {
      await a.end();
      await b.end();
    }
  });
}

// Appends to one aggregate serialise on its lock (no per-aggregate row since 0.3.0): the second
// session waits for the first one's transaction, then takes the next version (READ COMMITTED)
// or, when its snapshot cannot see the first one's event, gets 40001 (never 23505, never a
// duplicate or skipped version).
for (const level of ['READ COMMITTED', 'REPEATABLE READ', 'SERIALIZABLE']) {
  test(`${level}: two sessions appending to one aggregate serialise on its lock`, async () => {
    const [a, b] = [await connect(), await connect()];
    try {
      const id = unique('agg_');
      const args = ['project:race', 'race', id, '{"n": 1}', null, null];
      await a.query(POST, args);  // version 1, committed
      const { outcome } = await race(level, a, b, args, args);
      const lock = (await a.query(
        "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 17750")).rows[0].n;
      assert.equal(lock, 0, 'no aggregate lock outlives its transaction');
      if (level === 'READ COMMITTED') {
        assert.equal(outcome.code, undefined, `got ${JSON.stringify(outcome)}`);
      } else {
        assert.equal(outcome.code, '40001', `got ${JSON.stringify(outcome)}`);
        // (SERIALIZABLE may detect the conflict first, with PostgreSQL's own 40001 message.)
        if (level === 'REPEATABLE READ')
          assert.match(outcome.message, new RegExp(`aggregate race/${id} was appended to (or erased )?concurrently`));
        await b.query(POST, args);  // the retry, in a new transaction
      }
      const { rows } = await a.query(
        'SELECT array_agg(version ORDER BY version) AS v FROM evstream.events WHERE aggregate_id = $1', [id]);
      assert.deepEqual(rows[0].v, [1, 2, 3], 'versions 1..3, no gap, no duplicate');
      const agg = (await a.query('SELECT version, channel FROM evstream.aggregates WHERE aggregate_id = $1', [id])).rows;
      assert.deepEqual(agg, [{ version: 3, channel: 'project:race' }], 'evstream.aggregates shows the last version');
    } finally {
      await a.end();
      await b.end();
    }
  });
}

// Erasure and appends are writers of one aggregate too: under REPEATABLE READ / SERIALIZABLE a
// writer whose snapshot misses the other's committed change is refused with 40001 (an append
// after an unseen erasure would continue the erased history; an erasure that misses an append
// would leave it behind), and the retry does the right thing.
for (const level of ['REPEATABLE READ', 'SERIALIZABLE']) {
  test(`${level}: an append and an erasure of one aggregate never see a stale aggregate`, async () => {
    const [a, b] = [await connect(), await connect()];
    const versions = async (id) => (await a.query(
      'SELECT coalesce(array_agg(version ORDER BY version), \'{}\') AS v FROM evstream.events WHERE aggregate_id = $1',
      [id])).rows[0].v;
    try {
      // An append whose snapshot predates an erasure.
      const id = unique('er_');
      await a.query(POST, ['project:race', 'race', id, '{"n": 1}', null, null]);
      await a.query(POST, ['project:race', 'race', id, '{"n": 2}', null, null]);
      await b.query(`BEGIN ISOLATION LEVEL ${level}`);
      await b.query('SELECT count(*) FROM evstream.events');
      await a.query("SELECT evstream.erase_aggregate('race', $1)", [id]);
      await assert.rejects(b.query(POST, ['project:race', 'race', id, '{"n": 3}', null, null]), { code: '40001' });
      await b.query('ROLLBACK');
      await b.query(POST, ['project:race', 'race', id, '{"n": 3}', null, null]);
      assert.deepEqual(await versions(id), [1], 'after the retry the aggregate starts again at version 1');

      // An erasure whose snapshot predates an append.
      const id2 = unique('er_');
      await a.query(POST, ['project:race', 'race', id2, '{"n": 1}', null, null]);
      await b.query(`BEGIN ISOLATION LEVEL ${level}`);
      await b.query('SELECT count(*) FROM evstream.events');
      await a.query(POST, ['project:race', 'race', id2, '{"n": 2}', null, null]);
      await assert.rejects(b.query("SELECT evstream.erase_aggregate('race', $1)", [id2]), { code: '40001' });
      await b.query('ROLLBACK');
      await b.query("SELECT evstream.erase_aggregate('race', $1)", [id2]);
      assert.deepEqual(await versions(id2), [], 'after the retry nothing of the aggregate is left');
    } finally {
      await a.end();
      await b.end();
    }
  });
}
