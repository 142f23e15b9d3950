// The soak: one evstreamd holding CONNS SSE connections while CHURN connect and CHURN disconnect
// every second and RATE events/s are posted over HTTP, for SOAK_SECONDS. Every SAMPLE_S seconds it
// records the daemon's RSS, open file descriptors, pool queue depth and open streams.
//
// Pass (exit 0) when, after WARMUP_S:
//   - RSS never exceeds the warm-up RSS by more than RSS_GROWTH (fraction) + RSS_SLACK_MB,
//   - open fds never exceed the warm-up count by more than FD_SLACK (+ 2 x CHURN in flight),
//   - the pool queue depth never exceeds QUEUE_MAX,
// and over the whole run:
//   - every subscriber received exactly the events of its channel after the position its
//     `connected` frame named, in log order, with no gap, duplicate or stranger: those open at the
//     end got all of them, those closed by the churn a prefix (in the full run: one that holds
//     every event posted at least CLOSE_GRACE_S = 5 s before the close, and a connected frame
//     within those 5 s; the CI run asserts no timing),
//   - no stream was ended by the daemon, no connection refused, every post answered 201,
//   - the daemon's PID never changed (it is the process started here, alive at every sample).
//
// Events go to CHANNELS channels round-robin (project:soak-<run>-<k>); each subscriber listens to
// one. With CHANNELS=100 a subscriber gets RATE/100 events/s and the daemon writes
// CONNS*RATE/CHANNELS frames/s in all (10 000 x 100 / 100 = 10 000/s at full size).
//
// Usage (bench/soak/run.sh sets up the database and the fd limit):
//   node bench/soak/soak.mjs   (settings from the environment, see `cfg` below)
// Writes one line per sample to bench/results/soak.tsv and a summary to bench/results/soak_runs.tsv.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { BINARY, request, startDaemon, stopDaemon, token, waitFor } from '../../tests/e2e/lib/daemon.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const env = (k, d) => Number(process.env[k] ?? d);
const cfg = {
  mode: process.env.MODE ?? 'ci',
  conns: env('CONNS', 10000),
  churn: env('CHURN', 100),
  rate: env('RATE', 100),
  channels: env('CHANNELS', 100),
  seconds: env('SOAK_SECONDS', 60),
  sampleS: env('SAMPLE_S', 10),
  warmupS: env('WARMUP_S', 20),
  rssGrowth: env('RSS_GROWTH', 0.10),
  rssSlackMb: env('RSS_SLACK_MB', 16),
  fdSlack: env('FD_SLACK', 50),
  queueMax: env('QUEUE_MAX', 50),
  // Timing checks on churned streams (connected within, and every event posted this long before
  // the close received): on in the full run, off in the CI run (a test asserts no timing).
  closeGraceS: env('CLOSE_GRACE_S', (process.env.MODE ?? 'ci') === 'full' ? 5 : 0),
  openBatch: env('OPEN_BATCH', 500),
  writers: env('WRITERS', 8),
};
const run = `${Date.now().toString(36)}`;
const channelName = (k) => `project:soak-${run}-${k}`;
const log = (...a) => console.log(`[soak ${((Date.now() - t0) / 1000).toFixed(1)}s]`, ...a);
let t0 = Date.now();

// ---- the daemon
// One client address and 100 subs hold every stream: lift the per-address and per-sub limits
// (429) where the daemon has them.
const help = execFileSync(BINARY, ['--help']).toString();
const limits = help.includes('--max-connections-per-address')
  ? ['--max-connections-per-address', String(cfg.conns * 2), '--max-connections-per-sub', String(cfg.conns * 2)] : [];
const d = await startDaemon({ args: ['--max-connections', String(cfg.conns + 4 * cfg.churn + 500), ...limits] });
const pid = d.child.pid;
const readerToken = [];
for (let k = 0; k < cfg.channels; k++) readerToken.push(token({ sub: `reader${k}`, projects: [`soak-${run}-${k}`] }));
const writerToken = token({ sub: 'soak-writer', projects: Array.from({ length: cfg.channels }, (_, k) => `soak-${run}-${k}`) });
const agent = new http.Agent({ keepAlive: true, maxSockets: cfg.writers });

// ---- what was posted: per channel, positions in log order and when each POST was answered
const posted = Array.from({ length: cfg.channels }, () => ({ pos: [], at: [], index: new Map() }));
const stats = { posts: 0, postErrors: 0, opened: 0, closedByUs: 0, endedByDaemon: 0, refused: 0, frames: 0 };

// ---- subscribers
const subs = new Set();     // open ones
const done = [];            // closed by the churn, checked at the end
function openSub() {
  const k = Math.floor(Math.random() * cfg.channels);
  const s = { k, connectedId: null, buf: '', recv: [], next: -1, verified: 0, errors: [], openedAt: Date.now(), closedAt: 0, open: true };
  s.bytes = 0;
  s.sock = net.connect({ host: '127.0.0.1', port: d.port }, () => {
    s.tcpAt = Date.now();
    s.sock.write(`GET /api/events/stream HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n` +
      `Authorization: Bearer ${readerToken[k]}\r\n\r\n`);
  });
  s.sock.setEncoding('utf8');
  s.sock.on('data', (chunk) => {
    s.bytes += chunk.length;
    s.buf += chunk;
    if (s.connectedId === null && !s.headOk) {
      const he = s.buf.indexOf('\r\n\r\n');
      if (he < 0) return;
      const head = s.buf.slice(0, he);
      if (!/^HTTP\/1\.1 200/.test(head)) { stats.refused++; s.errors.push(`refused: ${head.split('\r\n')[0]}`); s.sock.destroy(); return; }
      s.headOk = true;
      s.buf = s.buf.slice(he + 4);
    }
    let end;
    while ((end = s.buf.indexOf('\n\n')) >= 0) {
      const frame = s.buf.slice(0, end);
      s.buf = s.buf.slice(end + 2);
      const ev = /^event: (.*)$/m.exec(frame)?.[1];
      const id = /^id: (\d+)$/m.exec(frame)?.[1];
      if (ev === 'connected') s.connectedId = Number(id ?? 0);
      else if (ev === 'soak.tick') { s.recv.push(Number(id)); stats.frames++; }
      else if (ev === 'reset' || ev === 'overflow' || ev === 'reauth') s.errors.push(`event: ${ev}`);
    }
  });
  s.sock.on('error', () => {});
  s.sock.on('close', () => {
    if (s.open) { s.open = false; stats.endedByDaemon++; s.errors.push('ended by the daemon'); subs.delete(s); done.push(s); }
  });
  subs.add(s);
  stats.opened++;
  return s;
}
function closeSub(s) {
  s.open = false;
  s.closedAt = Date.now();
  s.sock.destroy();
  subs.delete(s);
  done.push(s);
  stats.closedByUs++;
}

// Checks what a subscriber received against what was posted, as far as the posts are known.
// The first event due is the first of its channel after the connected frame's position.
function verify(s) {
  const ch = posted[s.k];
  while (s.recv.length) {
    const p = s.recv[0];
    const i = ch.index.get(p);
    if (i === undefined) {
      if (ch.pos.length && p < ch.pos[ch.pos.length - 1]) { s.errors.push(`stranger position ${p}`); s.recv.shift(); continue; }
      return;  // its POST is still in flight
    }
    if (s.next < 0) {
      // The stream starts after the feed's cursor in (order_key, position) order, which the
      // connected frame names by its position only: with several writers, an event of this channel
      // with a higher position may be behind the cursor already (committed first), or one with a
      // lower position ahead of it. Which event is due first is settled against the log at the
      // end (firstDue); from here on, every event of the channel must follow, once, in order.
      s.firstIdx = i;
      s.next = i;
    }
    if (i !== s.next) s.errors.push(`expected ${ch.pos[s.next]} got ${p}`);
    s.next = i + 1;
    s.verified++;
    s.recv.shift();
  }
}
// The delivery order's keys of the run's events and of the streams' start positions, from the log.
const keyOf = new Map();   // position -> order_key (BigInt)
async function loadKeys(starts) {
  const db = new pg.Client();
  await db.connect();
  try {
    const { rows } = await db.query(
      'SELECT position, order_key FROM evstream.events WHERE channel LIKE $1 OR position = ANY($2::bigint[])',
      [`project:soak-${run}-%`, starts]);
    for (const r of rows) keyOf.set(Number(r.position), BigInt(r.order_key));
  } finally {
    await db.end();
  }
}
// The index (in its channel's posts) of the first event due to s: the first one after its start
// (the connected frame's position) in (order_key, position) order. One writer posts on a channel,
// one post after another, so a channel's posts are in that order already.
function firstDue(s) {
  const ch = posted[s.k];
  const start = s.connectedId;
  const startKey = keyOf.get(start);
  if (startKey === undefined) return lowerBound(ch.pos, start + 1);   // 0: an empty log
  const after = (p) => { const k = keyOf.get(p); return k > startKey || (k === startKey && p > start); };
  let lo = 0; let hi = ch.pos.length;
  while (lo < hi) { const m = (lo + hi) >> 1; if (!after(ch.pos[m])) lo = m + 1; else hi = m; }
  return lo;
}
const dueOf = (s) => {
  if (s.due === undefined && keyOf.has(s.connectedId)) s.due = firstDue(s);
  return s.due ?? lowerBound(posted[s.k].pos, (s.connectedId ?? 0) + 1);
};

function lowerBound(a, x) {
  let lo = 0; let hi = a.length;
  while (lo < hi) { const m = (lo + hi) >> 1; if (a[m] < x) lo = m + 1; else hi = m; }
  return lo;
}

// ---- samples
const samples = [];
async function sample() {
  const alive = fs.existsSync(`/proc/${pid}`) && d.exited === null;
  const status = alive ? fs.readFileSync(`/proc/${pid}/status`, 'utf8') : '';
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  const fds = alive ? fs.readdirSync(`/proc/${pid}/fd`).length : 0;
  let queue = -1; let sse = -1;
  try {
    // a transient connection error (a loaded machine) is retried: one lost sample is no finding
    let m;
    for (let i = 0; ; i++) {
      try { m = (await request(d, '/metrics')).body; break; } catch (e) {
        if (i >= 10 || d.exited) throw e;
        await new Promise((r) => setTimeout(r, 300));
      }
    }
    // pool jobs waiting for a connection (evstream_db_queued; evstream_pool_queue_depth before it)
    queue = Number((/^evstream_db_queued (\S+)$/m.exec(m) ?? /^evstream_pool_queue_depth (\S+)$/m.exec(m))?.[1] ?? -1);
    sse = Number(/^evstream_sse_connections (\S+)$/m.exec(m)?.[1] ?? -1);
  } catch { /* counted as a failed sample below */ }
  const s = { t: Math.round((Date.now() - t0) / 1000), rssKb, fds, queue, sse, alive, subs: subs.size };
  samples.push(s);
  log(`rss ${(rssKb / 1024).toFixed(1)} MiB, fds ${fds}, pool queue ${queue}, streams ${sse}, open here ${subs.size}, frames ${stats.frames}, posts ${stats.posts}`);
}

// ---- 1. open CONNS subscribers in batches (each batch connected before the next)
log(`daemon pid ${pid} on port ${d.port}; opening ${cfg.conns} streams on ${cfg.channels} channels`);
while (subs.size < cfg.conns) {
  const batch = [];
  for (let i = 0; i < cfg.openBatch && subs.size < cfg.conns; i++) batch.push(openSub());
  await waitFor(() => batch.every((s) => s.connectedId !== null || !s.open), { timeout: 60000, what: 'a batch of streams connected' });
}
t0 = Date.now();
log(`${subs.size} streams connected; running ${cfg.seconds} s`);
await sample();

// ---- 2. the run: one writer at RATE events/s, churn every second, samples every SAMPLE_S
// WRITERS concurrent writers; channel k belongs to writer k % WRITERS alone, so that the positions
// of one channel are acknowledged in log order (what verify() relies on).
let seq = 0;
let stopping = false;
async function post(w, m) {
  const own = Math.ceil((cfg.channels - w) / cfg.writers);   // channels w, w + WRITERS, ...
  const k = w + cfg.writers * (m % own);
  const n = ++seq;
  const body = JSON.stringify({ channel: channelName(k), aggregate_type: 'soak', aggregate_id: `a${k}`, event_type: 'soak.tick', data: { n } });
  const r = await new Promise((resolve) => {
    const req = http.request(`${d.url}/api/events`, {
      method: 'POST', agent, headers: { Authorization: `Bearer ${writerToken}`, 'Content-Type': 'application/json' },
    }, (res) => { let b = ''; res.setEncoding('utf8'); res.on('data', (c) => { b += c; }); res.on('end', () => resolve({ status: res.statusCode, body: b })); });
    req.on('error', (e) => resolve({ status: 0, body: String(e) }));
    req.end(body);
  });
  if (r.status !== 201) { stats.postErrors++; log(`post failed: ${r.status} ${r.body.slice(0, 200)}`); return; }
  const position = Number(JSON.parse(r.body).position);
  const ch = posted[k];
  ch.index.set(position, ch.pos.length);
  ch.pos.push(position);
  ch.at.push(Date.now());
  stats.posts++;
}
const writer = Promise.all(Array.from({ length: cfg.writers }, async (_, w) => {
  const start = Date.now();
  for (let m = 0; !stopping; m++) {
    await post(w, m);
    const due = start + ((m + 1) * 1000 * cfg.writers) / cfg.rate;   // paced: RATE per second in all
    const wait = due - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
}));
const churn = setInterval(() => {
  const open = [...subs];
  for (let i = 0; i < cfg.churn && open.length; i++) {
    const j = Math.floor(Math.random() * open.length);
    closeSub(open[j]);
    open[j] = open[open.length - 1];
    open.pop();
  }
  for (let i = 0; i < cfg.churn; i++) openSub();
}, 1000);
const verifier = setInterval(() => { for (const s of subs) verify(s); for (const s of done) verify(s); }, 1000);
const end = t0 + cfg.seconds * 1000;
while (Date.now() < end) {
  await new Promise((r) => setTimeout(r, Math.min(cfg.sampleS * 1000, end - Date.now())));
  await sample();
}
clearInterval(churn);
stopping = true;
await writer;
log('posting stopped; waiting for every open stream to receive every event');

// ---- 3. drain: every open subscriber reaches the end of its channel
await loadKeys([...subs, ...done].map((s) => s.connectedId ?? 0));
// got(s): the index (in its channel's posts) of the next event it is due
const got = (s) => (s.next < 0 ? dueOf(s) : s.next);
const caughtUp = (s) => { verify(s); return s.connectedId !== null && !s.recv.length && got(s) === posted[s.k].pos.length; };
try {
  await waitFor(() => [...subs].every(caughtUp), { timeout: 60000, interval: 200, what: 'every open stream caught up' });
} catch (e) { log(e.message); }
clearInterval(verifier);
for (const s of done) verify(s);
// streams that connected during the drain: their start keys too
const missingStarts = [...subs, ...done].filter((s) => s.connectedId !== null && !keyOf.has(s.connectedId)).map((s) => s.connectedId);
if (missingStarts.length) await loadKeys(missingStarts);
for (const s of [...subs, ...done]) {
  if (s.connectedId === null || s.firstIdx === undefined) continue;
  const due = dueOf(s);
  if (s.firstIdx !== due) s.errors.push(`first event ${posted[s.k].pos[s.firstIdx]}, due ${posted[s.k].pos[due]} (start ${s.connectedId})`);
}

// ---- 4. verdict
const failures = [];
let missingOpen = 0; let missingClosed = 0; let badOrder = 0; let checked = 0; let neverConnected = 0;
for (const s of [...subs, ...done]) {
  checked++;
  if (s.errors.length) { badOrder++; if (badOrder <= 5) failures.push(`subscriber on channel ${s.k}: ${s.errors.slice(0, 3).join('; ')}`); }
  if (s.connectedId === null) {
    // closed by the churn before its connected frame came: only a failure when that took long
    // (with the timing checks on); one still open at the end never connected at all
    if (s.open || (cfg.closeGraceS > 0 && s.closedAt - s.openedAt > cfg.closeGraceS * 1000)) {
      neverConnected++;
      if (neverConnected <= 5) {
        failures.push(`a stream never connected: ${s.open ? 'still open' : 'closed by the churn'} after ${((s.closedAt || Date.now()) - s.openedAt) / 1000} s, ` +
          `tcp ${s.tcpAt ? `connected after ${(s.tcpAt - s.openedAt) / 1000} s` : 'not connected'}, response head ${s.headOk ? 'received' : 'not received'}, ${s.bytes} bytes`);
      }
    }
    continue;
  }
  const ch = posted[s.k];
  const first = dueOf(s);
  if (s.open) {
    if (!caughtUp(s)) missingOpen++;
  } else if (s.closedAt && cfg.closeGraceS > 0) {
    // everything posted CLOSE_GRACE_S before the close must have arrived
    const due = ch.at.filter((at, i) => i >= first && at <= s.closedAt - cfg.closeGraceS * 1000).length;
    if (got(s) - first < due) missingClosed++;
  }
}
if (neverConnected) failures.push(`${neverConnected} streams never got their connected frame`);
if (missingOpen) failures.push(`${missingOpen} open streams missed events`);
if (missingClosed) failures.push(`${missingClosed} churned streams missed events posted ${cfg.closeGraceS} s before their close`);
if (stats.endedByDaemon) failures.push(`${stats.endedByDaemon} streams ended by the daemon`);
if (stats.refused) failures.push(`${stats.refused} connections refused`);
if (stats.postErrors) failures.push(`${stats.postErrors} posts failed`);
if (samples.some((x) => !x.alive) || d.exited) failures.push('the daemon died (PID changed)');

const warm = samples.filter((x) => x.t >= cfg.warmupS);
let bounds = {};
if (warm.length) {
  const base = warm[0];
  const rssMax = Math.max(...warm.map((x) => x.rssKb));
  const fdMax = Math.max(...warm.map((x) => x.fds));
  const qMax = Math.max(...warm.map((x) => x.queue));
  const rssBound = base.rssKb * (1 + cfg.rssGrowth) + cfg.rssSlackMb * 1024;
  const fdBound = base.fds + cfg.fdSlack + 2 * cfg.churn;
  bounds = { rssBaseKb: base.rssKb, rssMaxKb: rssMax, rssBoundKb: Math.round(rssBound), fdBase: base.fds, fdMax, fdBound, queueMax: qMax, queueBound: cfg.queueMax };
  if (rssMax > rssBound) failures.push(`RSS grew to ${rssMax} KiB (bound ${Math.round(rssBound)})`);
  if (fdMax > fdBound) failures.push(`open fds grew to ${fdMax} (bound ${fdBound})`);
  if (qMax > cfg.queueMax || qMax < 0) failures.push(`pool queue depth reached ${qMax} (bound ${cfg.queueMax})`);
} else failures.push('no sample after the warm-up');

const summary = {
  mode: cfg.mode, conns: cfg.conns, churn: cfg.churn, rate: cfg.rate, channels: cfg.channels, seconds: cfg.seconds,
  pid, posts: stats.posts, frames: stats.frames, opened: stats.opened, churned: stats.closedByUs, subscribersChecked: checked,
  ...bounds, failures,
};
console.log(JSON.stringify(summary));

// ---- results
const commit = (() => { try { return execFileSync('git', ['-C', root, 'rev-parse', '--short', 'HEAD']).toString().trim(); } catch { return '?'; } })();
const stamp = new Date().toISOString().slice(0, 19) + 'Z';
if (process.env.SOAK_RECORD !== '0') {
  fs.mkdirSync(path.join(root, 'bench/results'), { recursive: true });
  const tsv = path.join(root, 'bench/results/soak.tsv');
  if (!fs.existsSync(tsv)) fs.writeFileSync(tsv, 'stamp\tcommit\tmode\tt_s\trss_kb\tfds\tpool_queue\tsse_streams\n');
  fs.appendFileSync(tsv, samples.map((x) => [stamp, commit, cfg.mode, x.t, x.rssKb, x.fds, x.queue, x.sse].join('\t')).join('\n') + '\n');
  const runs = path.join(root, 'bench/results/soak_runs.tsv');
  if (!fs.existsSync(runs)) fs.writeFileSync(runs, 'stamp\tcommit\tmode\tconns\tchurn_per_s\trate_per_s\tchannels\tseconds\tposts\tframes\tsubscribers\trss_base_kb\trss_max_kb\tfd_base\tfd_max\tqueue_max\tresult\n');
  fs.appendFileSync(runs, [stamp, commit, cfg.mode, cfg.conns, cfg.churn, cfg.rate, cfg.channels, cfg.seconds, stats.posts, stats.frames,
    checked, bounds.rssBaseKb, bounds.rssMaxKb, bounds.fdBase, bounds.fdMax, bounds.queueMax, failures.length ? 'FAIL' : 'pass'].join('\t') + '\n');
}
for (const s of subs) s.sock.destroy();
agent.destroy();
const exit = await stopDaemon(d);
if (exit?.code !== 0) failures.push(`evstreamd exited with ${JSON.stringify(exit)}`);
if (failures.length) {
  console.log(`soak: FAILED\n  ${failures.join('\n  ')}`);
  process.exit(1);
}
console.log(`soak: passed (${checked} subscribers, ${stats.posts} events, ${stats.frames} frames, pid ${pid} unchanged)`);
process.exit(0);
