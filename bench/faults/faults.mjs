// Fault injection under load: SUBS subscribers (raw SSE clients that reconnect with Last-Event-ID
// when their stream ends) receive RATE events/s from WRITERS concurrent SQL writers while, one
// after another:
//   a   pg_terminate_backend on each of the daemon's connections
//   b1  PostgreSQL restarted: pg_ctl restart -m fast
//   b2  PostgreSQL restarted: pg_ctl restart -m immediate (crash recovery)
//   c   evstreamd SIGKILLed and started again on the same port
//   d   the backend serving the feed stopped (SIGSTOP) for STALL_S seconds, then SIGCONT
//   e   a second evstreamd started, MOVE of the subscribers moved to it, then it is stopped
//       (SIGTERM) and they come back to the first, each time with Last-Event-ID
// For each fault: the time to recover (from the injection until every subscriber has every event
// acknowledged to the writers up to a write made after the heal), reconnects, writer errors.
// At the end (writers stopped, streams drained), against the log itself:
//   - every subscriber received exactly the events of its channel after the position of its first
//     `connected` frame, each once, in log order (no gap, duplicate, reordering, reset);
//   - every write is in the log exactly once (writers retry a failed write with the same
//     idempotency key until it is acknowledged; every error they saw is counted), and each
//     acknowledged position is the logged one;
//   - the first daemon's PID changed only at fault c.
// Exit 0 when all of that holds. Settings from the environment (see `cfg`); bench/faults/run.sh
// prepares the database. Appends one line per fault to bench/results/faults.tsv.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { BINARY, startDaemon, stopDaemon, token, waitFor } from '../../tests/e2e/lib/daemon.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const env = (k, d) => Number(process.env[k] ?? d);
const cfg = {
  mode: process.env.MODE ?? 'ci',
  subs: env('SUBS', 1000),
  rate: env('RATE', 200),
  writers: env('WRITERS', 4),
  channels: env('CHANNELS', 20),
  steadyS: env('STEADY_S', 3),
  stallS: env('STALL_S', 10),
  move: env('MOVE', 0.1),
  recoverTimeoutS: env('RECOVER_TIMEOUT_S', 90),
  faults: (process.env.FAULTS ?? 'a b1 b2 c d e').split(/\s+/).filter(Boolean),
};
const pgdir = process.env.EVSTREAM_PGDIR ?? path.join(root, '.pg');
const pgctl = path.join(execFileSync('pg_config', ['--bindir']).toString().trim(), 'pg_ctl');
const run = Date.now().toString(36);
const chan = (k) => `project:faults-${run}-${k}`;
let t0 = Date.now();
const log = (...a) => console.log(`[faults ${((Date.now() - t0) / 1000).toFixed(1)}s]`, ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const failures = [];

// ---- daemons
// One client address holds every stream: lift the per-address and per-sub limits (429) where
// the daemon has them.
const help = execFileSync(BINARY, ['--help']).toString();
const daemonArgs = ['--max-connections', String(cfg.subs * 2 + 100), ...(help.includes('--max-connections-per-address')
  ? ['--max-connections-per-address', String(cfg.subs * 4), '--max-connections-per-sub', String(cfg.subs * 4)] : [])];
let d1 = await startDaemon({ args: daemonArgs });
const port1 = d1.port;
let d2 = null;
const readerToken = Array.from({ length: cfg.channels }, (_, k) => token({ sub: `r${k}`, projects: [`faults-${run}-${k}`] }));

// ---- subscribers: one stream each; when it ends they reconnect (to `target()`) with Last-Event-ID
const stats = { reconnects: 0, resets: 0, refusedOrFailed: 0 };
const subs = [];
function connect(s) {
  s.buf = ''; s.head = false;
  const port = s.port();
  const sock = net.connect({ host: '127.0.0.1', port }, () => {
    const resume = s.lastId !== null ? `Last-Event-ID: ${s.lastId}\r\n` : '';
    sock.write(`GET /api/events/stream HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n${resume}` +
      `Authorization: Bearer ${readerToken[s.k]}\r\n\r\n`);
  });
  s.sock = sock;
  sock.setEncoding('utf8');
  sock.on('data', (chunk) => {
    s.buf += chunk;
    if (!s.head) {
      const he = s.buf.indexOf('\r\n\r\n');
      if (he < 0) return;
      if (!/^HTTP\/1\.1 200/.test(s.buf)) { stats.refusedOrFailed++; sock.destroy(); return; }
      s.head = true; s.buf = s.buf.slice(he + 4);
    }
    let end;
    while ((end = s.buf.indexOf('\n\n')) >= 0) {
      const frame = s.buf.slice(0, end);
      s.buf = s.buf.slice(end + 2);
      const ev = /^event: (.*)$/m.exec(frame)?.[1];
      const id = /^id: (\d+)$/m.exec(frame)?.[1];
      if (ev === 'reset') { stats.resets++; s.errors.push(`reset at ${s.lastId}`); }
      if (ev === 'connected' && s.firstId === null) s.firstId = Number(id ?? 0);
      if (ev === 'connected') s.connected = true;
      if (ev === 'fault.tick') { s.got.push(Number(id)); s.seen.add(Number(id)); }
      if (id !== undefined) s.lastId = Number(id);
    }
  });
  sock.on('error', () => {});
  sock.on('close', () => {
    s.connected = false;
    if (s.stopped) return;
    stats.reconnects++;
    setTimeout(() => connect(s), 50 + Math.random() * 250);  // the browser's retry, jittered
  });
}
for (let i = 0; i < cfg.subs; i++) {
  const s = { i, k: i % cfg.channels, firstId: null, lastId: null, got: [], seen: new Set(), checked: 0, errors: [], connected: false, onSecond: false, stopped: false };
  s.port = () => (s.onSecond && d2 && !d2.exited ? d2.port : port1);
  subs.push(s);
  connect(s);
  if (i % 200 === 199) await waitFor(() => subs.every((x) => x.connected), { timeout: 60000, what: 'subscribers connected' });
}
await waitFor(() => subs.every((x) => x.connected), { timeout: 60000, what: 'subscribers connected' });
log(`${cfg.subs} subscribers on ${cfg.channels} channels, daemon pid ${d1.child.pid} port ${port1}`);

// ---- writers: paced, each write retried with its idempotency key until acknowledged
const acked = new Map();        // key -> position
// channel index -> acknowledged positions, in the order acknowledged. Several writers post on
// one channel, so positions commit out of order: a stream delivers in (order_key, position)
// order, and "has it all" is a set question, never "the highest position seen".
const ackedOn = Array.from({ length: cfg.channels }, () => []);
const wstats = { writes: 0, errors: 0, retries: 0 };
const givenUp = new Set();      // keys whose writer saw only errors (may be in the log at most once)
let writing = true;
let seq = 0;
async function writer(w) {
  let db = null;
  const start = Date.now();
  let n = 0;
  while (writing) {
    const k = (seq++) % cfg.channels;
    const key = `w${w}-${++n}`;
    let tries = 0;
    for (;;) {
      try {
        if (!db) {
          db = new pg.Client({ application_name: `faults-writer-${w}` });
          db.on('error', () => {});
          await db.connect();
        }
        const r = await db.query(
          `SELECT (evstream.post_event($1, 'fault', $2, 'fault.tick', jsonb_build_object('w', $3::int, 'n', $4::int),
             '{}', $5)).position`, [chan(k), `a${k}`, w, n, key]);
        const p = Number(r.rows[0].position);
        acked.set(key, { p, k });
        ackedOn[k].push(p);
        wstats.writes++;
        break;
      } catch (e) {
        wstats.errors++;   // the writer saw it; the same key is written again
        if (db) { db.end().catch(() => {}); db = null; }
        if (++tries > 600) { givenUp.add(key); break; }  // a minute: then it failed, and was seen to
        wstats.retries++;
        await sleep(100);
      }
    }
    const due = start + (n * 1000 * cfg.writers) / cfg.rate;
    if (due > Date.now()) await sleep(due - Date.now());
  }
  if (db) await db.end().catch(() => {});
}
const writersDone = Promise.all(Array.from({ length: cfg.writers }, (_, w) => writer(w)));

// ---- faults
async function admin(fn) {
  for (let i = 0; ; i++) {
    const db = new pg.Client({ application_name: 'faults-admin' });
    db.on('error', () => {});
    try { await db.connect(); return await fn(db); } catch (e) {
      if (i > 100) throw e;
      await sleep(200);
    } finally { db.end().catch(() => {}); }
  }
}
const asOwner = (args) => (process.getuid() === 0 ? spawnSync('runuser', ['-u', 'postgres', '--', ...args]) : spawnSync(args[0], args.slice(1)));
function pgRestart(mode) {
  const r = asOwner([pgctl, '-D', path.join(pgdir, 'data'), '-l', path.join(pgdir, 'log'), '-m', mode, '-w', '-t', '60', 'restart']);
  if (r.status !== 0) throw new Error(`pg_ctl restart -m ${mode}: ${r.stderr}`);
}
const daemonBackends = (db) => db.query(
  `SELECT pid, query FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend'
     AND application_name = 'evstreamd'`).then((r) => r.rows);

const faults = {
  async a() {
    const n = await admin(async (db) => {
      const rows = await daemonBackends(db);
      for (const r of rows) await db.query('SELECT pg_terminate_backend($1)', [r.pid]);
      return rows.length;
    });
    return `${n} daemon connections terminated`;
  },
  async b1() { pgRestart('fast'); return 'pg_ctl restart -m fast'; },
  async b2() { pgRestart('immediate'); return 'pg_ctl restart -m immediate'; },
  async c() {
    const old = d1.child.pid;
    await stopDaemon(d1, 'SIGKILL');
    d1 = await startDaemon({ args: daemonArgs, port: port1 });
    return `SIGKILL pid ${old}, restarted as pid ${d1.child.pid}`;
  },
  async d() {
    // the daemon logs each connection's backend: the feed's latest one serves it now
    const feed = { pid: d1.logs.filter((l) => l.msg === 'database connected' && l.conn === 'feed').at(-1)?.backend_pid };
    if (!feed.pid) throw new Error('no backend serving the feed found');
    const live = await admin((db) => daemonBackends(db));
    if (!live.some((r) => r.pid === feed.pid)) throw new Error(`the feed's backend ${feed.pid} is not connected`);
    process.kill(feed.pid, 'SIGSTOP');
    const t = Date.now();
    await sleep(cfg.stallS * 1000);
    process.kill(feed.pid, 'SIGCONT');
    return `backend ${feed.pid} stopped ${((Date.now() - t) / 1000).toFixed(1)} s`;
  },
  async e() {
    d2 = await startDaemon({ args: daemonArgs });
    const moved = subs.filter((s) => s.i % Math.round(1 / cfg.move) === 0);
    for (const s of moved) { s.onSecond = true; s.sock.destroy(); }
    await waitFor(() => moved.every((s) => s.connected && s.sock.remotePort === d2.port), { timeout: 60000, what: 'subscribers on the second daemon' });
    await sleep(cfg.steadyS * 1000);
    for (const s of moved) s.onSecond = false;
    const ex = await stopDaemon(d2);
    if (ex.code !== 0) failures.push(`e: the second daemon exited ${JSON.stringify(ex)}`);
    return `second daemon pid ${d2.child.pid}: ${moved.length} subscribers moved to it and back`;
  },
};

// Whether subscriber s has received the first n positions of list (a set check; s.checked keeps
// how far it got, so each poll only looks at what is new).
function hasFirst(s, list, n) {
  while (s.checked < n && s.seen.has(list[s.checked])) s.checked++;
  return s.checked >= n;
}

// Waits until a write made after now is acknowledged, then until every subscriber has every
// event acknowledged so far on its channel. Returns the time that took, in ms from `from`.
async function recovered(from) {
  const before = wstats.writes;
  await waitFor(() => wstats.writes > before + cfg.writers, { timeout: cfg.recoverTimeoutS * 1000, interval: 20, what: 'writes after the fault' });
  const target = ackedOn.map((a) => a.length);
  await waitFor(() => subs.every((s) => hasFirst(s, ackedOn[s.k], target[s.k])),
    { timeout: cfg.recoverTimeoutS * 1000, interval: 20, what: 'every subscriber caught up after the fault' });
  return Date.now() - from;
}

t0 = Date.now();
const results = [];
await sleep(cfg.steadyS * 1000);
const basePid = d1.child.pid;
for (const f of cfg.faults) {
  const r0 = stats.reconnects; const e0 = wstats.errors; const pidBefore = d1.child.pid;
  const t = Date.now();
  let what = '';
  let recoverMs = -1;
  try {
    log(`fault ${f}`);
    what = await faults[f]();
    const healMs = Date.now() - t;
    recoverMs = await recovered(t);
    log(`fault ${f}: ${what}; healed after ${healMs} ms, recovered after ${recoverMs} ms`);
  } catch (e) {
    failures.push(`fault ${f}: ${e.message}`);
    log(`fault ${f}: ${e.message}`);
  }
  if (f !== 'c' && d1.child.pid !== pidBefore) failures.push(`fault ${f}: the daemon's pid changed`);
  if (d1.exited) failures.push(`fault ${f}: the daemon exited ${JSON.stringify(d1.exited)}`);
  results.push({ fault: f, what, recoverMs, reconnects: stats.reconnects - r0, writerErrors: wstats.errors - e0 });
  await sleep(cfg.steadyS * 1000);
}

// ---- drain and check against the log
writing = false;
await writersDone;
log(`writers stopped: ${wstats.writes} writes, ${wstats.errors} errors seen and retried`);
const logRows = await admin((db) => db.query(
  `SELECT position, channel, idempotency_key FROM evstream.events WHERE channel LIKE $1 ORDER BY order_key, position`, [`project:faults-${run}-%`]).then((r) => r.rows));
const perChannel = Array.from({ length: cfg.channels }, () => []);
const keyCount = new Map();
for (const r of logRows) {
  const k = Number(r.channel.slice(r.channel.lastIndexOf('-') + 1));
  perChannel[k].push(Number(r.position));
  keyCount.set(r.idempotency_key, (keyCount.get(r.idempotency_key) ?? 0) + 1);
}
let writeProblems = 0;
for (const key of acked.keys()) if (keyCount.get(key) !== 1) writeProblems++;
for (const key of givenUp) if ((keyCount.get(key) ?? 0) > 1) writeProblems++;
const posByKey = new Map(logRows.map((r) => [r.idempotency_key, Number(r.position)]));
for (const [key, { p }] of acked) if (posByKey.get(key) !== p) writeProblems++;
if (logRows.length - [...givenUp].filter((k) => keyCount.has(k)).length !== acked.size) failures.push(`the log holds ${logRows.length} events, the writers had ${acked.size} acknowledged`);
if (writeProblems) failures.push(`${writeProblems} writes not in the log exactly once at their acknowledged position`);

// perChannel is in the log's delivery order (order_key, position): what each stream must get.
for (const s of subs) s.checked = 0;
const wanted = subs.map((s) => perChannel[s.k].filter((p) => p > s.firstId));
try {
  await waitFor(() => subs.every((s) => hasFirst(s, wanted[s.i], wanted[s.i].length)), { timeout: 120000, interval: 100, what: 'subscribers drained' });
} catch (e) { failures.push(e.message); }
for (const s of subs) { s.stopped = true; s.sock.destroy(); }
let bad = 0;
for (const s of subs) {
  const exp = wanted[s.i];
  const ok = s.errors.length === 0 && s.got.length === exp.length && s.got.every((p, i) => p === exp[i]);
  if (!ok) {
    bad++;
    if (bad <= 5) {
      let i = 0; while (i < exp.length && s.got[i] === exp[i]) i++;
      failures.push(`subscriber ${s.i} (channel ${s.k}): got ${s.got.length}, expected ${exp.length}; first difference at ${i}: got ${s.got[i]} expected ${exp[i]} ${s.errors.slice(0, 2).join('; ')}`);
    }
  }
}
if (bad) failures.push(`${bad} of ${subs.length} subscribers did not get every event exactly once in order`);
const delivered = subs.reduce((n, s) => n + s.got.length, 0);
const ex = await stopDaemon(d1);
if (ex?.code !== 0) failures.push(`evstreamd exited ${JSON.stringify(ex)} at the end`);

const summary = { mode: cfg.mode, subs: cfg.subs, rate: cfg.rate, writers: cfg.writers, channels: cfg.channels, events: logRows.length,
  delivered, ...stats, writerErrors: wstats.errors, basePid, results, failures };
console.log(JSON.stringify(summary));
if (process.env.FAULTS_RECORD !== '0') {
  const commit = (() => { try { return execFileSync('git', ['-C', root, 'rev-parse', '--short', 'HEAD']).toString().trim(); } catch { return '?'; } })();
  const stamp = new Date().toISOString().slice(0, 19) + 'Z';
  const tsv = path.join(root, 'bench/results/faults.tsv');
  if (!fs.existsSync(tsv)) fs.writeFileSync(tsv, 'stamp\tcommit\tmode\tsubs\trate_per_s\twriters\tchannels\tfault\trecover_ms\treconnects\twriter_errors\tevents\tdelivered\tlost_or_dup_subscribers\tresult\n');
  fs.appendFileSync(tsv, results.map((r) => [stamp, commit, cfg.mode, cfg.subs, cfg.rate, cfg.writers, cfg.channels, r.fault, r.recoverMs,
    r.reconnects, r.writerErrors, logRows.length, delivered, bad, failures.length ? 'FAIL' : 'pass'].join('\t')).join('\n') + '\n');
}
if (failures.length) { console.log(`faults: FAILED\n  ${failures.join('\n  ')}`); process.exit(1); }
console.log(`faults: passed (${cfg.faults.join(', ')}; ${logRows.length} events, ${delivered} deliveries, 0 lost, 0 duplicated)`);
process.exit(0);
