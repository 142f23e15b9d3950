// Fan-out publisher: sends COUNT events at RATE events/s, each stamped with the send time
// ("t", unix microseconds) and a sequence number ("seq", 1..COUNT), in seq order.
//   --target sql     evstream.post_events on channel C (the path evstreamd serves)
//   --target notify  pg_notify('bench_fanout', …) (the Node LISTEN/NOTIFY baseline)
//   --target http    POST URL?channel=C, pipelined on one connection (Node baseline, Nchan);
//                    with --format evstream: POST URL with the body evstreamd's `POST /api/events`
//                    takes (channel, aggregate_type/_id, event_type, data), pipelined the same way;
//                    --header 'Name: value' (repeatable) adds a request header (the bearer token)
// Prints {"target","sent","seconds","rate"} and, for HTTP, "failed": responses that were not 2xx.
// When the publisher falls behind its schedule, the SQL targets send every event that is due in
// one statement (still in order); HTTP sends one request per event, as those servers require.
import net from 'node:net';
import pg from 'pg';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
};
const target = arg('target', 'sql');
const rate = Number(arg('rate', '100'));
const count = Number(arg('count', '100'));
const channel = arg('channel', 'project:bench');
const url = arg('url', '');
const format = arg('format', 'channel-query'); // http: channel-query (Node, Nchan) | evstream
const extraHeaders = process.argv.flatMap((a, i) => (a === '--header' ? [`${process.argv[i + 1]}\r\n`] : [])).join('');

const nowMicros = () => Math.round((performance.timeOrigin + performance.now()) * 1000);
const stamp = (seq) => `{"t": ${nowMicros()}, "seq": ${seq}}`;
let sendMany; // (firstSeq, n) -> Promise
let failed; // HTTP: responses that were not 2xx
let db;
if (target === 'sql' || target === 'notify') {
  db = new pg.Client();
  await db.connect();
  await db.query('SET synchronous_commit = off'); // the bench measures fan-out, not fsync
  sendMany = (first, n) => {
    const seqs = Array.from({ length: n }, (_, i) => first + i);
    if (target === 'sql') {
      const events = seqs.map((seq) => `{"channel": "${channel}", "aggregate_type": "bench", "aggregate_id": "b${seq % 100}", "event_type": "bench.tick", "data": ${stamp(seq)}}`);
      return db.query('SELECT count(*) FROM evstream.post_events($1::jsonb)', [`[${events.join(',')}]`]);
    }
    const calls = seqs.map((seq) => `pg_notify('bench_fanout', '{"channel": "${channel}", "event": {"type": "bench.tick", "data": ${stamp(seq)}}}')`);
    return db.query(`SELECT ${calls.join(', ')}`);
  };
} else {
  // Pipelined HTTP/1.1 on one connection: requests go out on schedule without waiting for the
  // previous response (TCP keeps them in order), so a busy server cannot slow the publisher
  // down and every server gets the same offered load.
  const evstream = format === 'evstream';
  // Nchan and the Node server take the channel raw in the query, as subscribers send it (Nchan
  // does not decode $arg_); evstreamd takes it in the body.
  const target = new URL(evstream ? url : `${url}?channel=${channel}`);
  const socket = net.connect(Number(target.port), target.hostname);
  await new Promise((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject); });
  let responses = 0;
  failed = 0;
  let tail = '';
  socket.setEncoding('latin1');
  socket.on('data', (chunk) => {
    const text = tail + chunk;
    for (const m of text.matchAll(/HTTP\/1\.1 (\d)\d\d/g)) {
      responses++;
      if (m[1] !== '2') failed++;
    }
    tail = text.slice(-11); // shorter than a whole status line: a match is never counted twice
  });
  socket.on('close', () => {
    if (responses >= count) return;
    console.error(`publish: the server closed the connection after ${responses} of ${count} answers`);
    process.exit(1);
  });
  const path = `${target.pathname}${target.search}`;
  const bodyOf = evstream
    ? (seq) => `{"channel": "${channel}", "aggregate_type": "bench", "aggregate_id": "b${seq % 100}", "event_type": "bench.tick", "data": ${stamp(seq)}}`
    : (seq) => `{"type": "bench.tick", "data": ${stamp(seq)}}`;
  sendMany = async (first, n) => {
    let out = '';
    for (let i = 0; i < n; i++) {
      const body = bodyOf(first + i);
      out += `POST ${path} HTTP/1.1\r\nHost: ${target.host}\r\nContent-Type: application/json\r\n${extraHeaders}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    }
    if (!socket.write(out)) await new Promise((r) => socket.once('drain', r));
  };
  sendMany.finish = async () => {
    const deadline = Date.now() + 60000;
    while (responses < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    socket.end();
  };
}

// Paced: event k is due at start + k/rate.
const start = performance.now();
let next = 1;
while (next <= count) {
  const due = start + ((next - 1) * 1000) / rate;
  const wait = due - performance.now();
  if (wait > 1) await new Promise((r) => setTimeout(r, wait));
  const elapsed = performance.now() - start;
  const dueCount = Math.min(count, Math.floor((elapsed * rate) / 1000) + 1) - next + 1;
  const n = Math.max(1, Math.min(dueCount, 500));
  await sendMany(next, n);
  next += n;
}
const elapsed = (performance.now() - start) / 1000;
await sendMany.finish?.();
console.log(JSON.stringify({ target, sent: count, seconds: Number(elapsed.toFixed(3)), rate: Math.round(count / elapsed), failed }));
await db?.end();
process.exit(0);
