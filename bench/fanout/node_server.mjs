// The baseline a Node team would write: Node's http, a Set of responses per channel, and
// res.write per event. Two feeds:
//   POST /pub?channel=C       body = event JSON (the publisher calls it directly)
//   --listen-pg               LISTEN bench_fanout; payload = {"channel":…, "event":{…}} via pg_notify
// Subscribers: GET /sub?channel=C (Server-Sent Events).
// Usage: node bench/fanout/node_server.mjs --port 8091 [--listen-pg]
import http from 'node:http';
import pg from 'pg';

const args = process.argv.slice(2);
const port = Number(args[args.indexOf('--port') + 1] || 8091);
const channels = new Map(); // channel -> Set<res>
let nextId = 0;

function fanout(channel, json) {
  const subs = channels.get(channel);
  if (!subs) return;
  const frame = `id: ${++nextId}\nevent: bench\ndata: ${json}\n\n`;
  for (const res of subs) res.write(frame);
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  const channel = url.searchParams.get('channel') ?? 'default';
  if (req.method === 'GET' && url.pathname === '/sub') {
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', Connection: 'keep-alive' });
    res.write(': connected\n\n');
    if (!channels.has(channel)) channels.set(channel, new Set());
    channels.get(channel).add(res);
    req.on('close', () => channels.get(channel)?.delete(res));
    return;
  }
  if (req.method === 'POST' && url.pathname === '/pub') {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      fanout(channel, body.replace(/\n/g, ' '));
      res.writeHead(204).end();
    });
    return;
  }
  res.writeHead(404).end();
});
server.keepAliveTimeout = 0;
server.listen(port, '127.0.0.1');

if (args.includes('--listen-pg')) {
  const db = new pg.Client();
  await db.connect();
  db.on('notification', (n) => {
    const { channel, event } = JSON.parse(n.payload);
    fanout(channel, JSON.stringify(event));
  });
  await db.query('LISTEN bench_fanout');
}
process.on('SIGTERM', () => process.exit(0));
