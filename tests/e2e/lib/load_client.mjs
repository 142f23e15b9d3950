// Many SSE clients in one process (run with a raised fd limit). Usage:
//   node load_client.mjs URL TOKEN CLIENTS EXPECTED_EVENTS
// Prints "ready" once every stream got `event: connected`, then one JSON line
// {clients, complete, ids} when every stream has EXPECTED_EVENTS ids (or 90 s after "ready").
// A connection that fails before its `event: connected` (a refused or reset connect while a
// loaded machine's listen backlog is full) is opened again, like a browser's EventSource would;
// one that fails after it counts in `failed`.
import net from 'node:net';

const [url, token, clientsArg, expectedArg] = process.argv.slice(2);
const { hostname, port, pathname, search } = new URL(url);
const clients = Number(clientsArg);
const expected = Number(expectedArg);
const streams = [];
let connected = 0;
let complete = 0;
let failed = 0;

const MAX_ATTEMPTS = 50;

function open(i, s = { ids: [], buf: '', connected: false, attempts: 0 }) {
  s.attempts++;
  s.buf = '';
  let retried = false;
  const retry = () => {
    if (retried || s.connected || finished) return false;
    retried = true;
    if (s.attempts >= MAX_ATTEMPTS) return false;
    setTimeout(() => open(i, s), 50 + Math.floor(Math.random() * 200));
    return true;
  };
  const sock = net.connect({ host: hostname, port: Number(port) }, () => {
    sock.write(`GET ${pathname}${search} HTTP/1.1\r\nHost: ${hostname}\r\nAccept: text/event-stream\r\n` +
      `Authorization: Bearer ${token}\r\n\r\n`);
  });
  sock.setEncoding('utf8');
  sock.on('data', (chunk) => {
    s.buf += chunk;
    let end;
    while ((end = s.buf.indexOf('\n\n')) >= 0) {
      const frame = s.buf.slice(0, end);
      s.buf = s.buf.slice(end + 2);
      if (!s.connected && frame.includes('event: connected')) {
        s.connected = true;
        if (++connected === clients) {
          console.log('ready');
          setTimeout(() => finish(), 90000).unref();
        }
      }
      const m = /^id: (\d+)$/m.exec(frame);
      if (m && !frame.includes('event: connected')) {
        s.ids.push(Number(m[1]));
        if (s.ids.length === expected) {
          if (++complete === clients) finish();
        }
      }
    }
  });
  sock.on('error', () => { if (!retry()) failed++; });
  sock.on('close', () => { if (!retry()) s.closed = true; });
  s.sock = sock;
  if (s.attempts === 1) streams.push(s);
}

let finished = false;

function finish() {
  if (finished) return;
  finished = true;
  const first = JSON.stringify(streams[0].ids);
  const same = streams.every((s) => JSON.stringify(s.ids) === first);
  console.log(JSON.stringify({ clients: streams.length, connected, complete, failed, same, ids: streams[0].ids }));
  for (const s of streams) s.sock.destroy();
  process.exit(0);
}

for (let i = 0; i < clients; i++) open(i);
