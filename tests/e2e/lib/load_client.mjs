// Many SSE clients in one process (run with a raised fd limit). Usage:
//   node load_client.mjs URL TOKEN CLIENTS EXPECTED_EVENTS
// Prints "ready" once every stream got `event: connected`, then one JSON line
// {clients, complete, ids} when every stream has EXPECTED_EVENTS ids (or after 60 s).
import net from 'node:net';

const [url, token, clientsArg, expectedArg] = process.argv.slice(2);
const { hostname, port, pathname, search } = new URL(url);
const clients = Number(clientsArg);
const expected = Number(expectedArg);
const streams = [];
let connected = 0;
let complete = 0;
let failed = 0;

function open(i) {
  const s = { ids: [], buf: '', connected: false };
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
        if (++connected === clients) console.log('ready');
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
  sock.on('error', () => { failed++; });
  sock.on('close', () => { s.closed = true; });
  s.sock = sock;
  streams.push(s);
}

function finish() {
  const first = JSON.stringify(streams[0].ids);
  const same = streams.every((s) => JSON.stringify(s.ids) === first);
  console.log(JSON.stringify({ clients: streams.length, connected, complete, failed, same, ids: streams[0].ids }));
  for (const s of streams) s.sock.destroy();
  process.exit(0);
}

for (let i = 0; i < clients; i++) open(i);
setTimeout(() => finish(), 60000).unref();
