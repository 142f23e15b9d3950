// Fan-out publisher: sends COUNT events at RATE events/s, each stamped with the send time
// ("t", unix microseconds) and a sequence number ("seq", 1..COUNT).
//   --target sql     evstream.post_event on channel C (the path evstreamd serves)
//   --target notify  pg_notify('bench_fanout', …) (the Node LISTEN/NOTIFY baseline)
//   --target http    POST URL?channel=C (Node http baseline, Nchan publisher)
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

const nowMicros = () => Math.round((performance.timeOrigin + performance.now()) * 1000);
let send;
let db;
if (target === 'sql' || target === 'notify') {
  db = new pg.Client();
  await db.connect();
  await db.query('SET synchronous_commit = off'); // the bench measures fan-out, not fsync
  send = target === 'sql'
    ? (seq) => db.query(
        "SELECT 1 FROM evstream.post_event($1, 'bench', 'b' || ($2::int % 100), 'bench.tick', $3::jsonb)",
        [channel, seq, `{"t": ${nowMicros()}, "seq": ${seq}}`])
    : (seq) => db.query('SELECT pg_notify($1, $2)', ['bench_fanout',
        JSON.stringify({ channel, event: { type: 'bench.tick', data: { t: nowMicros(), seq } } })]);
} else {
  send = (seq) => fetch(`${url}?channel=${channel}`, { // raw, as subscribers send it (Nchan does not decode $arg_)
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: `{"type": "bench.tick", "data": {"t": ${nowMicros()}, "seq": ${seq}}}`,
  }).then((r) => r.arrayBuffer());
}

// Paced: event k is due at start + k/rate; sends are sequential so seq order is commit order.
const start = performance.now();
for (let seq = 1; seq <= count; seq++) {
  const due = start + ((seq - 1) * 1000) / rate;
  const wait = due - performance.now();
  if (wait > 1) await new Promise((r) => setTimeout(r, wait));
  await send(seq);
}
const elapsed = (performance.now() - start) / 1000;
console.log(JSON.stringify({ target, sent: count, seconds: Number(elapsed.toFixed(3)), rate: Math.round(count / elapsed) }));
await db?.end();
