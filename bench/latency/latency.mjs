// End-to-end delivery latency, one scenario: from the moment post_event's commit is acknowledged
// to the moment a reader has the event, for two readers side by side on the same log.
//   sse   SUBSCRIBERS SSE subscribers on the real evstreamd (the product: the order-key horizon)
//   xmin  the baseline: the gap-free rule evstream used before issue 13 (read only events whose
//         writing transaction is older than every running one, tx < pg_snapshot_xmin), woken by
//         the same doorbell (LISTEN evstream) and, while committed events are held back, by a
//         re-check timer (HELD_BACK_MS, 25 ms: the daemon's old default) — the old feed's loop.
//         It lives here only, never in the product.
// The publisher appends RATE events/s for SECONDS with evstream.post_event (one transaction
// each) and stamps each with its sequence number. A reader can get an event before the
// publisher has read post_event's reply: such latencies are negative and counted as they are.
// --load longtx: a session of OTHER_DB keeps a write transaction open (BEGIN; INSERT; hold
// HOLD_MS; COMMIT; again) for the whole run; pgbench in OTHER_DB is started by run.sh.
// Prints one JSON line: { scenario, sse: {p50, p99, max, n, missing}, xmin: {...} }.
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

// --- The xmin-rule baseline reader ------------------------------------------------------------
const reader = new pg.Client();
await reader.connect();
let cursorTx = '0';
let cursorPos = 0;
let reading = false;
let again = false;
let recheck = null;
const readXmin = `
  SELECT e.tx::text AS tx, e.position, (e.data->>'seq')::int AS seq
    FROM evstream.events e
   WHERE (e.tx, e.position) > ($1::xid8, $2::bigint) AND e.tx < pg_snapshot_xmin(pg_current_snapshot())
     AND e.channel = $3
   ORDER BY e.tx, e.position LIMIT 1000`;
const heldXmin = 'SELECT EXISTS (SELECT 1 FROM evstream.events h WHERE h.tx >= pg_snapshot_xmin(pg_current_snapshot())) AS held';
async function wake() {
  if (reading) { again = true; return; }
  reading = true;
  try {
    let held = false;
    do {
      again = false;
      for (;;) {
        const r = await reader.query(readXmin, [cursorTx, cursorPos, channel]);
        const t = now();
        for (const row of r.rows) {
          if (row.seq >= 1 && row.seq <= count && Number.isNaN(xminSeen[row.seq])) xminSeen[row.seq] = t;
        }
        if (r.rows.length === 0) {
          held = (await reader.query(heldXmin)).rows[0].held;
          break;
        }
        const last = r.rows[r.rows.length - 1];
        cursorTx = last.tx;
        cursorPos = Number(last.position);
      }
    } while (again);
    if (held && !recheck) recheck = setTimeout(() => { recheck = null; wake(); }, heldBackMs);
  } finally {
    reading = false;
  }
}
// Start at the tail: events of earlier scenarios are not this scenario's.
{
  const r = await reader.query(`SELECT e.tx::text AS tx, e.position FROM evstream.events e
     WHERE e.tx < pg_snapshot_xmin(pg_current_snapshot()) ORDER BY e.tx DESC, e.position DESC LIMIT 1`);
  if (r.rows.length) { cursorTx = r.rows[0].tx; cursorPos = Number(r.rows[0].position); }
}
reader.on('notification', () => { wake().catch((e) => { console.error(e); process.exit(1); }); });
await reader.query('LISTEN evstream');
const safety = setInterval(() => wake().catch(() => {}), 1000);  // the old --poll-ms default

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
console.log(JSON.stringify({ scenario, rate, seconds, subscribers, sse: summary(sseSeen), xmin: summary([xminSeen]) }));
clearInterval(safety);
if (recheck) clearTimeout(recheck);
for (const req of streams) req.destroy();
await reader.end();
await db.end();
