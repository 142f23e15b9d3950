// evstreamd behind Debian's nginx with the configuration of docs/nginx.conf (only ports,
// certificate paths and the upstream address replaced): HTTP/2 over TLS (a self-signed
// certificate made here with openssl) to curl --http2 -k; the stream is not buffered (an event
// posted through nginx arrives while the stream stays open), an idle stream keeps its heartbeats
// and is not cut, resume by Last-Event-ID replays exactly what was missed, POST answers 201 over
// HTTP/2; evstreamd (--trusted-proxy 127.0.0.1) takes the client's address from nginx, and
// ignores X-Forwarded-For / X-Real-IP from any other peer.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { SseParser, pgClient, startDaemon, stopDaemon, token, waitFor } from './lib/daemon.mjs';

const NGINX = fs.existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : 'nginx';
let db, daemon, nginx, dir, base;
const jwt = token({ sub: 'proxy-user', projects: ['px'] });
const LIMIT = 6;  // --max-connections-per-address

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// docs/nginx.conf with this test's addresses, inside a minimal main configuration.
function writeConfig(port) {
  const doc = fs.readFileSync('docs/nginx.conf', 'utf8');
  const site = doc
    .replace('server 127.0.0.1:8080;', `server 127.0.0.1:${daemon.port};`)
    .replace('listen 443 ssl http2;', `listen 127.0.0.1:${port} ssl http2;`)
    .replace(/^\s*listen \[::\]:443 ssl http2;\n/m, '')
    .replace('/etc/ssl/certs/events.example.com.pem', path.join(dir, 'cert.pem'))
    .replace('/etc/ssl/private/events.example.com.key', path.join(dir, 'key.pem'));
  assert.notEqual(site, doc);
  assert.ok(site.includes(`127.0.0.1:${port} ssl http2`) && site.includes(`server 127.0.0.1:${daemon.port};`));
  fs.writeFileSync(path.join(dir, 'evstream.conf'), site);
  const temp = (n) => `${n}_temp_path ${path.join(dir, n)};`;
  fs.writeFileSync(path.join(dir, 'nginx.conf'), `
${process.getuid?.() === 0 ? 'user root;' : ''}
worker_processes 1;
daemon off;
pid ${path.join(dir, 'nginx.pid')};
error_log ${path.join(dir, 'error.log')} warn;
events { worker_connections 256; }
http {
  access_log off;
  ${temp('client_body')} ${temp('proxy')} ${temp('fastcgi')} ${temp('uwsgi')} ${temp('scgi')}
  include ${path.join(dir, 'evstream.conf')};
}
`);
}

// curl through nginx; resolves { status line, headers, body }.
function curl(args) {
  return new Promise((resolve, reject) => {
    const c = spawn('curl', ['-sS', '-k', '--http2', '-i', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (d) => { out += d; });
    c.stderr.on('data', (d) => { err += d; });
    c.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`curl ${args.join(' ')}: ${code} ${err}`));
      const cut = out.indexOf('\r\n\r\n');
      resolve({ status: out.slice(0, out.indexOf('\r\n')).trim(), head: out.slice(0, cut), body: out.slice(cut + 4) });
    });
  });
}

// A long-running curl on the stream; `frames` fills as SSE frames arrive through nginx.
function stream({ headers = [], query = '?channel=project:px', from } = {}) {
  const s = { frames: [], head: '', exited: null };
  const parser = new SseParser((f) => s.frames.push(f));
  let buf = '';
  s.proc = spawn('curl', ['-sS', '-k', '--http2', '-N', '-i', ...(from ? ['--interface', from] : []),
    '-H', `Authorization: Bearer ${jwt}`,
    '-H', 'Accept: text/event-stream', ...headers.flatMap((h) => ['-H', h]), `${base}/api/events/stream${query}`],
  { stdio: ['ignore', 'pipe', 'inherit'] });
  s.proc.stdout.setEncoding('utf8');
  s.proc.stdout.on('data', (d) => {
    if (s.head) return parser.push(d);
    buf += d;
    const cut = buf.indexOf('\r\n\r\n');
    if (cut >= 0) {
      s.head = buf.slice(0, cut);
      parser.push(buf.slice(cut + 4));
    }
  });
  s.proc.on('exit', (code) => { s.exited = code; });
  s.close = () => s.proc.kill('SIGTERM');
  s.events = () => s.frames.filter((f) => f.event === 'probe.sent');
  return s;
}

function post(id, extraHeaders = []) {
  return curl(['-X', 'POST', '-H', `Authorization: Bearer ${jwt}`, '-H', 'Content-Type: application/json',
    ...extraHeaders.flatMap((h) => ['-H', h]),
    '--data', JSON.stringify({ channel: 'project:px', aggregate_type: 'probe', aggregate_id: id, event_type: 'probe.sent', data: {} }),
    `${base}/api/events`]);
}

before(async () => {
  db = pgClient();
  await db.connect();
  daemon = await startDaemon({ args: ['--heartbeat', '1', '--log-level', 'debug', '--trusted-proxy', '127.0.0.1',
    '--max-connections-per-address', String(LIMIT)] });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'evstream-nginx-'));
  fs.chmodSync(dir, 0o755);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost',
    '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], { stdio: 'ignore' });
  // The free port is found by binding port 0 and closing it, so another process may take it
  // before nginx binds it: nginx then exits with "Address already in use", and is started again
  // on another port (a few times at most; any other exit fails at once).
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    writeConfig(port);
    base = `https://127.0.0.1:${port}`;
    fs.writeFileSync(path.join(dir, 'error.log'), '');
    nginx = spawn(NGINX, ['-c', path.join(dir, 'nginx.conf'), '-p', dir, '-e', path.join(dir, 'error.log')],
      { stdio: ['ignore', 'ignore', 'inherit'] });
    nginx.exitCode = null;
    const child = nginx;
    child.on('exit', (code) => { child.exitCode = code; });
    const up = await waitFor(async () => {
      if (child.exitCode !== null) return 'exited';
      return (await curl([`${base}/healthz`]).catch(() => null))?.status === 'HTTP/2 200' && 'up';
    }, { timeout: 30000, what: 'nginx to proxy /healthz over HTTP/2' });
    if (up === 'up') break;
    const log = fs.readFileSync(path.join(dir, 'error.log'), 'utf8');
    if (attempt >= 5 || !/Address already in use/.test(log)) throw new Error(`nginx exited: ${log}`);
  }
});

after(async () => {
  if (nginx && nginx.exitCode === null) {
    const exited = new Promise((r) => nginx.on('exit', r));
    nginx.kill('SIGQUIT');
    await exited;
  }
  await stopDaemon(daemon);
  await db?.end();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test('through nginx over HTTP/2: the stream is not buffered, idle streams live on, POST and resume work', async () => {
  const s = stream();
  try {
    await waitFor(() => s.frames.some((f) => f.event === 'connected'), { timeout: 30000, what: 'connected through nginx' });
    assert.match(s.head, /^HTTP\/2 200/, 'HTTP/2 to the client');
    assert.match(s.head, /content-type: text\/event-stream/i);
    const start = s.frames.find((f) => f.event === 'connected').id;

    // Idle: heartbeats (--heartbeat 1) keep arriving and the stream stays open.
    const beats = () => s.frames.filter((f) => f.event === 'heartbeat').length;
    await waitFor(() => beats() >= 3, { timeout: 30000, what: 'three heartbeats through nginx' });
    assert.equal(s.exited, null, 'the idle stream was not cut');

    // POST through nginx: 201 over HTTP/2; the stream shows the event while it stays open.
    const answers = [];
    for (const id of ['a', 'b', 'c']) {
      const r = await post(id);
      assert.equal(r.status, 'HTTP/2 201', r.body);
      answers.push(JSON.parse(r.body).position);
      await waitFor(() => s.events().some((f) => Number(f.id) === answers.at(-1)), { what: `event ${id} through nginx` });
    }
    assert.equal(s.exited, null);
    assert.deepEqual(s.events().map((f) => Number(f.id)), answers);

    // Resume by Last-Event-ID through nginx: exactly the events after it.
    const r = stream({ headers: [`Last-Event-ID: ${s.events()[0].id}`] });
    try {
      await waitFor(() => r.events().length >= 2, { what: 'the replay through nginx' });
      assert.deepEqual(r.events().map((f) => Number(f.id)), answers.slice(1));
    } finally {
      r.close();
    }
    const all = stream({ headers: [`Last-Event-ID: ${start}`] });
    try {
      await waitFor(() => all.events().length >= 3, { what: 'the full replay through nginx' });
      assert.deepEqual(all.events().map((f) => Number(f.id)), answers);
    } finally {
      all.close();
    }
  } finally {
    s.close();
  }
});

// The daemon runs with --trusted-proxy 127.0.0.1 (nginx connects from there): through nginx the
// client's own address counts, whatever it claims; directly, forged headers are ignored.
test('X-Forwarded-For / X-Real-IP: set by nginx, believed only from the trusted proxy', async () => {
  const requestLog = (p) => daemon.logs.find((l) => l.msg === 'request' && l.path === p);
  // Through nginx from 127.0.0.3, with forged headers that nginx replaces.
  const viaProxy = '/api/events/00000000-0000-4000-8000-000000000001';
  const r = await curl(['--interface', '127.0.0.3', '-H', `Authorization: Bearer ${jwt}`,
    '-H', 'X-Forwarded-For: 10.6.6.6', '-H', 'X-Real-IP: 10.6.6.7', `${base}${viaProxy}`]);
  assert.equal(r.status, 'HTTP/2 404');
  await waitFor(() => requestLog(viaProxy), { what: 'the proxied request in the log' });
  assert.match(requestLog(viaProxy).peer, /^127\.0\.0\.1:/, 'nginx is the peer');
  assert.equal(requestLog(viaProxy).client, '127.0.0.3', 'the client is the browser side of nginx');

  // Directly from 127.0.0.2 (not a trusted proxy) with forged headers: ignored.
  const direct = '/api/events/00000000-0000-4000-8000-000000000002';
  const d = await new Promise((resolve, reject) => {
    const req = http.request(`${daemon.url}${direct}`, {
      localAddress: '127.0.0.2', agent: false,
      headers: { Authorization: `Bearer ${jwt}`, 'X-Forwarded-For': '127.0.0.3', 'X-Real-IP': '10.6.6.7' },
    }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); });
    req.on('error', reject);
    req.end();
  });
  assert.equal(d, 404);
  await waitFor(() => requestLog(direct), { what: 'the direct request in the log' });
  assert.equal(requestLog(direct).client, '127.0.0.2', 'forged headers from a non-proxy are ignored');
});

// Per-address limits behind the proxy: nginx's connections count for the clients it names, not
// for nginx; a client that forges X-Forwarded-For directly still counts for its own address.
test('per-address limits count the client behind the trusted proxy, never a forged address', async () => {
  const opened = [];
  try {
    for (let i = 0; i < LIMIT; i++) {
      const s = stream({ from: '127.0.0.7' });
      opened.push(s);
      await waitFor(() => s.frames.some((f) => f.event === 'connected'), { what: `stream ${i} from 127.0.0.7` });
    }
    const over = await curl(['--interface', '127.0.0.7', '-H', `Authorization: Bearer ${jwt}`, `${base}/healthz`]);
    assert.equal(over.status, 'HTTP/2 429', '127.0.0.7 is at its limit');
    const other = await curl(['--interface', '127.0.0.8', '-H', `Authorization: Bearer ${jwt}`, `${base}/healthz`]);
    assert.equal(other.status, 'HTTP/2 200', 'another client through the same nginx is not limited');

    // Directly from 127.0.0.9, each connection forging another X-Forwarded-For: all count for 127.0.0.9.
    const direct = (i) => new Promise((resolve, reject) => {
      const req = http.request(`${daemon.url}/api/events/stream?channel=project:px`, {
        localAddress: '127.0.0.9', agent: false,
        headers: { Authorization: `Bearer ${jwt}`, Accept: 'text/event-stream', 'X-Forwarded-For': `10.0.0.${i}` },
      }, (res) => resolve({ status: res.statusCode, res, req }));
      req.on('error', reject);
      req.end();
    });
    const held = [];
    try {
      for (let i = 0; i < LIMIT; i++) {
        const r = await direct(i);
        held.push(r);
        assert.equal(r.status, 200, `direct stream ${i}`);
      }
      const refused = await direct(99);
      held.push(refused);
      assert.equal(refused.status, 429, 'a forged X-Forwarded-For does not escape the limit');
    } finally {
      for (const h of held) h.req.destroy();
    }
  } finally {
    for (const s of opened) s.close();
  }
});
