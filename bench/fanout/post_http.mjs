// Posts COUNT events at RATE events/s to evstreamd's `POST /api/events` (one keep-alive
// connection, one request at a time), each stamped like publish.mjs ("t": unix µs, "seq": 1..COUNT)
// so that fanout-client checks order and latency. Prints {"sent","created","failed","rate"}.
//   node bench/fanout/post_http.mjs --port 8195 --token JWT --rate 150 --count 4500
import http from 'node:http';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
};
const port = Number(arg('port', '8195'));
const token = arg('token', '');
const rate = Number(arg('rate', '150'));
const count = Number(arg('count', '1000'));
const channel = arg('channel', 'project:bench');

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const nowMicros = () => Math.round((performance.timeOrigin + performance.now()) * 1000);
let created = 0;
let failed = 0;

function post(seq) {
  const body = JSON.stringify({
    channel, aggregate_type: 'bench', aggregate_id: `b${seq % 100}`, event_type: 'bench.tick',
    data: { t: nowMicros(), seq },
  });
  return new Promise((resolve) => {
    const req = http.request({
      host: '127.0.0.1', port, path: '/api/events', method: 'POST', agent,
      headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body),
        Authorization: `Bearer ${token}` },
    }, (res) => {
      res.resume();
      res.on('end', () => { if (res.statusCode === 201) created++; else failed++; resolve(); });
    });
    req.on('error', () => { failed++; resolve(); });
    req.end(body);
  });
}

// One request at a time, in seq order; a late request goes at once (the schedule is kept on
// average, never by sending two together).
const t0 = performance.now();
for (let seq = 1; seq <= count; seq++) {
  const due = t0 + ((seq - 1) * 1000) / rate;
  const wait = due - performance.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  await post(seq);
}
const secs = (performance.now() - t0) / 1000;
agent.destroy();
console.log(JSON.stringify({ sent: count, created, failed, rate: Number((count / secs).toFixed(1)) }));
