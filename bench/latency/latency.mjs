// End-to-end delivery latency, one scenario: from the moment post_event's commit is acknowledged
// to the moment a reader has the event, for two readers side by side on the same log.
//   sse   SUBSCRIBERS SSE subscribers on the real evstreamd (the product: the order-key horizon)
//   xmin  the baseline: the gap-free rule evstream used before issue 13 (read only events whose
//         writing transaction is older than every running one, tx < pg_snapshot_xmin), woken by
//         the same doorbell (LISTEN evstream) and, while committed events are held back, by a
//         re-check timer (HELD_BACK_MS, 25 ms: the daemon's old default) — the old feed's loop.
//         It lives here only, never in the product.
//   horizon  the same direct loop reading with the product's rule (read_after): rule against
//         rule without the daemon's hop.
// The publisher appends RATE events/s for SECONDS with evstream.post_event (one transaction
// each) and stamps each with its sequence number. A reader can get an event before the
// publisher has read post_event's reply: such latencies are negative and counted as they are.
// --load longtx: a session of OTHER_DB keeps a write transaction open (BEGIN; INSERT; hold
// HOLD_MS; COMMIT; again) for the whole run; pgbench in OTHER_DB is started by run.sh.
// Prints one JSON line: { scenario, sse: {p50, p99, max, n, missing}, horizon: {...}, xmin: {...} }.
import http from 'node:http';
import pg from 'pg';
import { SseParser } from '../../tests/e2e/lib/daemon.mjs';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
};
const url = arg('url');
const token = arg('token');
const scenario = arg('scenario', 'idle');
const load = arg('load', 'none');
const otherDb = arg('other-db', 'evstream_latency_other');
const rate = Number(arg('rate', '100'));
const seconds = Number(arg('seconds', '10'));
const subscribers = Number(arg('subscribers', '10'));
const holdMs = Number(arg('hold-ms', '5000'));
const heldBackMs = Number(arg('held-back-ms', '25'));
const channel = arg('channel', 'project:bench');
const count = Math.round(rate * seconds);

const now = () => performance.now();
const ack = new Float64Array(count + 1).fill(NaN);
const sseSeen = Array.from({ length: subscribers }, () => new Float64Array(count + 1).fill(NaN));
const xminSeen = new Float64Array(count + 1).fill(NaN);

// --- SSE subscribers on evstreamd -----------------------------------------------------------
function subscribe(k) {
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}/api/events/stream?channel=${encodeURIComponent(channel)}`,
      { headers: { Accept: 'text/event-stream', Authorization: `Bearer ${token}` }, agent: false }, (res) => {
        if (res.statusCode !== 200) { reject(new Error(`SSE status ${res.statusCode}`)); return; }
        res.setEncoding('utf8');
        const parser = new SseParser((ev) => {
          if (ev.event === 'connected') { resolve(req); return; }
          if (ev.event !== 'bench.tick') return;
          const t = now();
          const seq = JSON.parse(ev.data).data.seq;
          if (seq >= 1 && seq <= count && Number.isNaN(sseSeen[k][seq])) sseSeen[k][seq] = t;
        });
        res.on('data', (c) => parser.push(c));
      });
    req.on('error', reject);
    req.end();
  });
}
const streams = await Promise.all(Array.from({ length: subscribers }, (_, k) => subscribe(k)));

// --- Direct readers, one per rule, each on its own connection: woken by the doorbell (LISTEN
// evstream), re-reading every HELD_BACK_MS while committed events are held back, and every
// second as a safety net (the old --poll-ms default). Same loop, only the rule differs:
//   xmin     the baseline (tx < pg_snapshot_xmin, walked in (tx, position) order)
//   horizon  the product's rule through evstream.read_after / evstream._held_back(): the same
//            horizon the daemon reads, without the daemon's hop (separates rule from transport)
const rules = {
  xmin: {
    start: `SELECT e.tx::text AS k, e.position FROM evstream.events e
             WHERE e.tx < pg_snapshot_xmin(pg_current_snapshot()) ORDER BY e.tx DESC, e.position DESC LIMIT 1`,
    read: `SELECT e.tx::text AS k, e.position, (e.data->>'seq')::int AS seq FROM evstream.events e
            WHERE (e.tx, e.position) > ($1::xid8, $2::bigint) AND e.tx < pg_snapshot_xmin(pg_current_snapshot())
              AND e.channel = $3
            ORDER BY e.tx, e.position LIMIT 1000`,
    held: 'SELECT EXISTS (SELECT 1 FROM evstream.events h WHERE h.tx >= pg_snapshot_xmin(pg_current_snapshot())) AS held',
  },
  horizon: {
    start: 'SELECT 0 AS k, position FROM evstream.log_tail()',
    read: `SELECT 0 AS k, e.position, (e.data->>'seq')::int AS seq
             FROM evstream.read_after($2::bigint, 1000, ARRAY[$3]) e WHERE $1::text IS NOT NULL`,
    held: 'SELECT evstream._held_back() AS held',
  },
};
const horizonSeen = new Float64Array(count + 1).fill(NaN);
async function directReader(rule, seen) {
  const c = new pg.Client();
  await c.connect();
  let cursorK = '0';
  let cursorPos = 0;
  let reading = false;
  let again = false;
  let recheck = null;
  let stopped = false;
  const wake = async () => {
    if (stopped) return;
    if (reading) { again = true; return; }
    reading = true;
    try {
      let held = false;
      do {
        again = false;
        for (;;) {
          const r = await c.query(rule.read, [cursorK, cursorPos, channel]);
          const t = now();
          for (const row of r.rows) {
            if (row.seq >= 1 && row.seq <= count && Number.isNaN(seen[row.seq])) seen[row.seq] = t;
          }
          if (r.rows.length === 0) {
            held = (await c.query(rule.held)).rows[0].held;
            break;
          }
          const last = r.rows[r.rows.length - 1];
          cursorK = String(last.k);
          cursorPos = Number(last.position);
        }
      } while (again);
      if (held && !recheck) recheck = setTimeout(() => { recheck = null; wake().catch(fail); }, heldBackMs);
    } finally {
      reading = false;
    }
  };
  const fail = (e) => { if (stopped) return; console.error(e); process.exit(1); };
  // Start at the tail: events of earlier scenarios are not this scenario's.
  const r = await c.query(rule.start);
  if (r.rows.length) { cursorK = String(r.rows[0].k); cursorPos = Number(r.rows[0].position); }
  c.on('notification', () => { wake().catch(fail); });
  await c.query('LISTEN evstream');
  const safety = setInterval(() => wake().catch(fail), 1000);
  return async () => {
    stopped = true;
    clearInterval(safety);
    if (recheck) clearTimeout(recheck);
    while (reading) await new Promise((r) => setTimeout(r, 5));
    await c.end();
  };
}
const stopXmin = await directReader(rules.xmin, xminSeen);
const stopHorizon = await directReader(rules.horizon, horizonSeen);

// --- Load in another database -----------------------------------------------------------------
let loadRunning = true;
let loadDone = Promise.resolve();
if (load === 'longtx') {
  const other = new pg.Client({ database: otherDb });
  await other.connect();
  await other.query('CREATE TABLE IF NOT EXISTS held (n int)');
  let opened = false;
  loadDone = (async () => {
    while (loadRunning) {
      await other.query('BEGIN');
      await other.query('INSERT INTO held VALUES (1)');  // takes an xid: the xmin rule waits for it
      opened = true;
      const until = now() + holdMs;
      while (loadRunning && now() < until) await new Promise((r) => setTimeout(r, 20));
      await other.query('COMMIT');
    }
    await other.end();
  })();
  while (!opened) await new Promise((r) => setTimeout(r, 5));
}

// --- Publisher --------------------------------------------------------------------------------
const db = new pg.Client();
await db.connect();
const start = now();
for (let seq = 1; seq <= count; seq++) {
  const wait = start + ((seq - 1) * 1000) / rate - now();
  if (wait > 1) await new Promise((r) => setTimeout(r, wait));
  await db.query(`SELECT position FROM evstream.post_event($1, 'bench', $2, 'bench.tick', $3::jsonb)`,
    [channel, `b${seq % 100}`, `{"seq": ${seq}}`]);
  ack[seq] = now();
}
// Everything is delivered once the load has ended (the long transaction commits then).
const allSeen = () => xminSeen.every((t, i) => i === 0 || !Number.isNaN(t)) &&
  horizonSeen.every((t, i) => i === 0 || !Number.isNaN(t)) &&
  sseSeen.every((s) => s.every((t, i) => i === 0 || !Number.isNaN(t)));
const deadline = now() + holdMs + 5000;
while (!allSeen() && now() < deadline) await new Promise((r) => setTimeout(r, 20));
loadRunning = false;
await loadDone;
const finalDeadline = now() + 10000;
while (!allSeen() && now() < finalDeadline) await new Promise((r) => setTimeout(r, 20));

function summary(seenArrays) {
  const lat = [];
  let missing = 0;
  for (const seen of seenArrays) {
    for (let seq = 1; seq <= count; seq++) {
      if (Number.isNaN(seen[seq])) missing++;
      else lat.push(seen[seq] - ack[seq]);
    }
  }
  lat.sort((a, b) => a - b);
  const q = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] : NaN);
  const r = (x) => Math.round(x * 10) / 10;
  return { p50: r(q(0.5)), p99: r(q(0.99)), max: r(lat.length ? lat[lat.length - 1] : NaN), n: lat.length, missing };
}
console.log(JSON.stringify({ scenario, rate, seconds, subscribers, sse: summary(sseSeen),
  horizon: summary([horizonSeen]), xmin: summary([xminSeen]) }));
for (const req of streams) req.destroy();
await stopXmin();
await stopHorizon();
await db.end();
