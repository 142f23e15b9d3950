// HTTP/2 in evstreamd, with real clients: curl --http2-prior-knowledge on the cleartext listener
// (h2c: the client preface is detected) and curl --http2 over TLS (a self-signed certificate
// made here with openssl; ALPN h2, and http/1.1 on the same TLS port): stream, resume by
// Last-Event-ID, POST and history, all verified. node:http2 with many streams on one
// connection, one of them never read: the others receive everything (HTTP/2 flow control holds
// back only the slow one). h2load: many concurrent streams on few connections. SIGHUP reloads
// the certificate: an open stream stays, new handshakes see the new certificate. SIGTERM sends
// GOAWAY and ends the streams cleanly.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http2 from 'node:http2';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { SseParser, makeToken, pgClient, postSql, request, startDaemon, stopDaemon, token, uniq, waitFor } from './lib/daemon.mjs';

let db, dir;
const project = uniq('h2p');
const channel = `project:${project}`;
const jwt = token({ sub: 'h2-user', projects: [project] });

function makeCert(name, cn) {
  const key = path.join(dir, `${name}.key`);
  const cert = path.join(dir, `${name}.pem`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', `/CN=${cn}`,
    '-keyout', key, '-out', cert], { stdio: 'ignore' });
  return { key, cert, fingerprint: new crypto.X509Certificate(fs.readFileSync(cert)).fingerprint256 };
}

// curl; resolves { status line, head, body }.
function curl(args) {
  return new Promise((resolve, reject) => {
    const c = spawn('curl', ['-sS', '-k', '-i', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
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

// A long-running curl on the stream; `frames` fills as SSE frames arrive.
function curlStream(base, mode, { headers = [] } = {}) {
  const s = { frames: [], head: '', exited: null };
  const parser = new SseParser((f) => s.frames.push(f));
  let buf = '';
  s.proc = spawn('curl', ['-sS', '-k', mode, '-N', '-i', '-H', `Authorization: Bearer ${jwt}`,
    '-H', 'Accept: text/event-stream', ...headers.flatMap((h) => ['-H', h]),
    `${base}/api/events/stream?channel=${channel}`], { stdio: ['ignore', 'pipe', 'inherit'] });
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

function post(base, mode, id) {
  return curl([mode, '-X', 'POST', '-H', `Authorization: Bearer ${jwt}`, '-H', 'Content-Type: application/json',
    '--data', JSON.stringify({ channel, aggregate_type: 'probe', aggregate_id: id, event_type: 'probe.sent', data: { id } }),
    `${base}/api/events`]);
}

// The same flow over one transport: stream, POST x3 (each seen live), resume by Last-Event-ID,
// history; `proto` is the status line's protocol curl reports.
async function streamPostResumeHistory(base, mode, proto) {
  const s = curlStream(base, mode);
  try {
    await waitFor(() => s.frames.some((f) => f.event === 'connected'), { what: `connected (${mode})` });
    assert.match(s.head, new RegExp(`^${proto} 200`), s.head);
    assert.match(s.head, /content-type: text\/event-stream/i);
    const answers = [];
    for (const n of [1, 2, 3]) {
      const r = await post(base, mode, `${mode}-${n}`);
      assert.match(r.status, new RegExp(`^${proto} 201\\b`), r.body);
      answers.push(JSON.parse(r.body).position);
      await waitFor(() => s.events().some((f) => Number(f.id) === answers.at(-1)), { what: `event ${n} live (${mode})` });
    }
    assert.equal(s.exited, null, 'the stream stays open');
    const mine = s.events().filter((f) => answers.includes(Number(f.id)));
    assert.deepEqual(mine.map((f) => Number(f.id)), answers);

    // Resume after the first: exactly the later two (then live).
    const r = curlStream(base, mode, { headers: [`Last-Event-ID: ${answers[0]}`] });
    try {
      await waitFor(() => r.events().filter((f) => answers.includes(Number(f.id))).length >= 2, { what: `replay (${mode})` });
      assert.deepEqual(r.events().map((f) => Number(f.id)).filter((p) => p > answers[0] && p <= answers[2]), answers.slice(1));
      assert.ok(!r.events().some((f) => Number(f.id) === answers[0]), 'nothing at or before Last-Event-ID');
    } finally {
      r.close();
    }

    // History: the three events in order.
    const h = await curl([mode, '-H', `Authorization: Bearer ${jwt}`,
      `${base}/api/events?channel=${channel}&after=${answers[0] - 1}&limit=1000`]);
    assert.match(h.status, new RegExp(`^${proto} 200\\b`), h.body);
    const positions = JSON.parse(h.body).events.map((e) => e.position);
    assert.deepEqual(positions.filter((p) => answers.includes(p)), answers);
  } finally {
    s.close();
  }
}

before(async () => {
  db = pgClient();
  await db.connect();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'evstream-h2-'));
});

after(async () => {
  await db?.end();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test('h2c with prior knowledge on the cleartext listener: stream, POST, resume, history; HTTP/1.1 beside it', async () => {
  const d = await startDaemon();
  try {
    await streamPostResumeHistory(d.url, '--http2-prior-knowledge', 'HTTP/2');
    // The same listener still speaks HTTP/1.1 to a client that does not start with the preface.
    const h1 = await curl(['--http1.1', `${d.url}/healthz`]);
    assert.equal(h1.status, 'HTTP/1.1 200 OK');
    // A static file and CORS headers over h2c, as over HTTP/1.1.
    const home = await curl(['--http2-prior-knowledge', `${d.url}/`]);
    const homeH1 = await curl(['--http1.1', `${d.url}/`]);
    assert.equal(home.status.split(' ')[1], homeH1.status.split(' ')[1]);
    assert.equal(home.body, homeH1.body);
  } finally {
    assert.deepEqual(await stopDaemon(d), { code: 0, signal: null });
  }
});

test('TLS: HTTP/2 by ALPN and HTTP/1.1 on the same port: stream, POST, resume, history', async () => {
  const c = makeCert('tls1', 'localhost');
  const d = await startDaemon({ args: ['--tls-cert', c.cert, '--tls-key', c.key], healthy: false });
  const base = `https://127.0.0.1:${d.port}`;
  try {
    await waitFor(async () => (await curl(['--http2', `${base}/healthz`]).catch(() => null))?.status === 'HTTP/2 200',
      { what: 'healthz over h2' });
    await streamPostResumeHistory(base, '--http2', 'HTTP/2');
    await streamPostResumeHistory(base, '--http1.1', 'HTTP/1.1');
    // Cleartext on a TLS listener is not HTTP: the connection fails, the daemon goes on.
    await assert.rejects(curl(['--http1.1', '--max-time', '5', `http://127.0.0.1:${d.port}/healthz`]));
    assert.equal((await curl(['--http2', `${base}/healthz`])).status, 'HTTP/2 200');
  } finally {
    assert.deepEqual(await stopDaemon(d), { code: 0, signal: null });
  }
});

// Opens an SSE stream on a node:http2 session; `frames` fills as it is read.
function h2Stream(session, { read = true } = {}) {
  const s = { frames: [], bytes: 0, status: 0, ended: false };
  const parser = new SseParser((f) => s.frames.push(f));
  s.req = session.request({ ':path': `/api/events/stream?channel=${channel}`, authorization: `Bearer ${jwt}`,
    accept: 'text/event-stream' });
  s.req.setEncoding('utf8');
  s.req.on('response', (h) => { s.status = h[':status']; });
  s.onData = (d) => { s.bytes += d.length; parser.push(d); };
  if (read) s.req.on('data', s.onData);
  else s.req.pause();
  s.req.on('end', () => { s.ended = true; });
  s.req.on('error', () => { s.ended = true; });
  s.events = () => s.frames.filter((f) => f.event === 'probe.big');
  return s;
}

test('node:http2, 40 streams on one connection: one never read does not stall the others', async () => {
  // A stall timeout far past the test's length: the never-read stream lags and is never dropped
  // (under ASan on a loaded machine the 40 posts below can take longer than the 10 s default, and
  // a stream that lags for that long would be dropped too, counting twice).
  const d = await startDaemon({ args: ['--h2-max-concurrent-streams', '64', '--max-queue-bytes', '65536',
    '--stall-timeout-ms', '600000'] });
  const session = http2.connect(d.url, { settings: { initialWindowSize: 65535 } });
  session.on('error', () => {});
  try {
    await new Promise((r) => session.once('remoteSettings', r));
    assert.equal(session.remoteSettings.maxConcurrentStreams, 64, '--h2-max-concurrent-streams in SETTINGS');
    session.setLocalWindowSize(64 << 20);  // the connection window never limits: only stream windows do
    const slow = h2Stream(session, { read: false });
    const fast = Array.from({ length: 39 }, () => h2Stream(session));
    await waitFor(() => fast.every((s) => s.frames.some((f) => f.event === 'connected')), { timeout: 30000, what: '39 streams connected' });
    assert.ok(fast.every((s) => s.status === 200));
    await waitFor(() => slow.status === 200, { timeout: 30000, what: 'the slow stream answered' });

    // 40 events of ~8 KiB: ~320 KiB per stream, far past the slow stream's 64 KiB window. One at
    // a time, each once every read stream has it: a read stream then never holds more than one
    // event queued (the feed may hand a burst of 40 to every queue in one batch, and a burst past
    // --max-queue-bytes makes any stream lag, read or not), while the slow one piles them all up.
    const big = 'x'.repeat(8000);
    const positions = [];
    for (let i = 0; i < 40; i++) {
      positions.push(...await postSql(db, channel, 1, { type: 'probe', id: 'big', eventType: 'probe.big', data: { i, big } }));
      await waitFor(() => fast.every((s) => s.events().length > i), { timeout: 30000, what: `every read stream got event ${i + 1} of 40` });
    }
    for (const s of fast) assert.deepEqual(s.events().map((f) => Number(f.id)), positions);
    assert.equal(slow.bytes, 0, 'the slow stream was never read');
    assert.equal(slow.req.state.localWindowSize !== undefined, true);
    const metrics = await new Promise((resolve) => {
      const r = session.request({ ':path': '/metrics' });
      let body = '';
      r.setEncoding('utf8');
      r.on('data', (c) => { body += c; });
      r.on('end', () => resolve(body));
    });
    assert.match(metrics, /^evstream_h2_streams (4[01])$/m, 'the 40 streams (and this one) share the connection');
    assert.match(metrics, /^evstream_h2_connections 1$/m);
    // The never-read stream passed its queue bound (flow control held its DATA back): it lags
    // (catches up from the log later) and, with the stall timeout far away, is never dropped; the
    // read ones never lag (each held at most one event). The counter moves when the feed hands the
    // slow stream an event, before every read stream has it, so it is already there.
    const lagging = Number(/^evstream_lagging_total (\d+)$/m.exec(metrics)[1]);
    const drops = Number(/^evstream_slow_client_drops_total (\d+)$/m.exec(metrics)[1]);
    assert.ok(lagging === 1 && drops === 0, `exactly the never-read stream lags: lagging ${lagging}, drops ${drops}`);

    // Read now: the slow stream catches up (from its queue and the log), every event once, in order.
    slow.req.on('data', slow.onData);
    slow.req.resume();
    await waitFor(() => slow.events().length >= 40 || slow.ended || slow.frames.some((f) => f.event === 'overflow'),
      { timeout: 60000, what: 'the slow stream catches up' });
    assert.ok(!slow.frames.some((f) => f.event === 'overflow'), 'the lagging stream was not dropped');
    assert.deepEqual(slow.events().map((f) => Number(f.id)), positions);
  } finally {
    session.destroy();
    assert.deepEqual(await stopDaemon(d), { code: 0, signal: null });
  }
});

test('h2load: 400 concurrent streams on 4 connections (h2c), each ends with its token', async () => {
  const d = await startDaemon({ args: ['--h2-max-concurrent-streams', '100', '--max-connections-per-sub', '1000',
    '--max-connections-per-address', '1000'] });  // each stream counts for its address
  try {
    // A token that expires in 14 s: every stream gets event: reauth and ends, so each completes.
    // (14 s, not 4: under ASan on a loaded machine opening 400 streams can take several seconds,
    // and a stream opened after the expiry would be refused.)
    const short = makeToken({ sub: 'h2load', projects: [project], exp: Math.floor(Date.now() / 1000) + 14 });
    const run = new Promise((resolve, reject) => {
      const p = spawn('h2load', ['-n', '400', '-c', '4', '-m', '100', '-H', `authorization: Bearer ${short}`,
        '-H', 'accept: text/event-stream', `${d.url}/api/events/stream?channel=${channel}`], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      p.stdout.on('data', (c) => { out += c; });
      p.stderr.on('data', (c) => { out += c; });
      p.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`h2load ${code}: ${out}`))));
    });
    const metric = async (name) => {
      const r = await curl(['--http2-prior-knowledge', `${d.url}/metrics`]);
      return Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(r.body)?.[1] ?? -1);
    };
    await waitFor(async () => (await metric('evstream_sse_connections')) >= 400, { timeout: 30000, what: '400 streams open at once' });
    // (an earlier curl's connection may still be closing on the daemon: wait for the count to settle)
    await waitFor(async () => (await metric('evstream_h2_connections')) === 4 + 1, { timeout: 30000, what: 'h2load\'s 4 connections (and curl\'s)' });
    const out = await run;
    assert.match(out, /Application protocol: h2c/);
    assert.match(out, /requests: 400 total, 400 started, 400 done, 400 succeeded, 0 failed/);
    assert.match(out, /status codes: 400 2xx/);
  } finally {
    assert.deepEqual(await stopDaemon(d), { code: 0, signal: null });
  }
});

function peerFingerprint(port) {
  return new Promise((resolve, reject) => {
    const sock = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ALPNProtocols: ['h2'] }, () => {
      const fp = sock.getPeerX509Certificate().fingerprint256;
      const alpn = sock.alpnProtocol;
      sock.end();
      resolve({ fp, alpn });
    });
    sock.on('error', reject);
  });
}

test('SIGHUP reloads the certificate: an open HTTP/2 stream stays, new handshakes see the new one; SIGTERM sends GOAWAY', async () => {
  const a = makeCert('live', 'localhost');
  const certFile = path.join(dir, 'server.pem');
  const keyFile = path.join(dir, 'server.key');
  fs.copyFileSync(a.cert, certFile);
  fs.copyFileSync(a.key, keyFile);
  const d = await startDaemon({ args: ['--tls-cert', certFile, '--tls-key', keyFile], healthy: false });
  const base = `https://127.0.0.1:${d.port}`;
  const session = http2.connect(base, { rejectUnauthorized: false });
  session.on('error', () => {});
  try {
    assert.deepEqual(await peerFingerprint(d.port), { fp: a.fingerprint, alpn: 'h2' });
    const s = h2Stream(session);
    await waitFor(() => s.frames.some((f) => f.event === 'connected'), { what: 'connected over h2' });

    const b = makeCert('next', 'localhost');
    assert.notEqual(a.fingerprint, b.fingerprint);
    fs.copyFileSync(b.cert, certFile);
    fs.copyFileSync(b.key, keyFile);
    d.child.kill('SIGHUP');
    await waitFor(() => d.logs.some((l) => l.msg === 'certificate reloaded'), { what: 'certificate reloaded' });
    assert.deepEqual(await peerFingerprint(d.port), { fp: b.fingerprint, alpn: 'h2' });

    // The stream opened before the reload still delivers.
    const [p] = await postSql(db, channel, 1, { type: 'probe', id: 'reload', eventType: 'probe.big' });
    await waitFor(() => s.events().some((f) => Number(f.id) === p), { what: 'event after the reload' });
    assert.equal(s.ended, false);
    assert.equal(session.socket.getPeerX509Certificate().fingerprint256, a.fingerprint, 'the old connection kept its certificate');

    // SIGTERM: GOAWAY (NO_ERROR) on the open connection, the stream ends, the daemon exits 0.
    const goaway = new Promise((resolve) => session.once('goaway', (code) => resolve(code)));
    const exited = stopDaemon(d);
    assert.equal(await goaway, http2.constants.NGHTTP2_NO_ERROR);
    await waitFor(() => s.ended, { what: 'the stream ended' });
    assert.deepEqual(await exited, { code: 0, signal: null });
  } finally {
    session.destroy();
    await stopDaemon(d);
  }
});

// One request on a node:http2 session; resolves { status, headers, body } or { error }.
function h2Request(session, headers, body) {
  return new Promise((resolve) => {
    const r = session.request(headers);
    let data = '';
    let res = {};
    r.setEncoding('utf8');
    r.on('response', (h) => { res = { status: h[':status'], headers: h }; });
    r.on('data', (c) => { data += c; });
    r.on('end', () => resolve({ ...res, body: data }));
    r.on('error', (e) => resolve({ ...res, error: e.code ?? e.message }));
    if (body !== undefined) r.end(body);
    else r.end();
  });
}

test('over HTTP/2 as over HTTP/1.1: CORS preflight, 413 for a large body, 431 for huge headers, 401 without a token; a broken connection leaves the daemon up', async () => {
  const d = await startDaemon({ args: ['--cors-origin', 'http://app.example', '--max-body-bytes', '4096'] });
  const session = http2.connect(d.url);
  session.on('error', () => {});
  try {
    const pre = await h2Request(session, { ':method': 'OPTIONS', ':path': '/api/events', origin: 'http://app.example',
      'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers['access-control-allow-origin'], 'http://app.example');

    const big = await h2Request(session, { ':method': 'POST', ':path': '/api/events', authorization: `Bearer ${jwt}`,
      'content-type': 'application/json' }, JSON.stringify({ channel, data: 'x'.repeat(10000) }));
    assert.equal(big.status, 413, JSON.stringify(big));

    const noToken = await h2Request(session, { ':path': `/api/events?channel=${channel}` });
    assert.equal(noToken.status, 401);

    const huge = await h2Request(session, { ':path': '/healthz', ...Object.fromEntries(
      Array.from({ length: 20 }, (_, i) => [`x-filler-${i}`, 'y'.repeat(4000)])) });
    assert.ok(huge.status === 431 || huge.error, JSON.stringify(huge));

    // The same connection still serves.
    assert.equal((await h2Request(session, { ':path': '/healthz' })).status, 200);
  } finally {
    session.destroy();
  }
  // Garbage after the client preface: that connection closes; the daemon serves the next one.
  const net = await import('node:net');
  await new Promise((resolve) => {
    const sock = net.connect(d.port, '127.0.0.1', () => {
      sock.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
      sock.write(Buffer.alloc(64, 0xff));
    });
    sock.on('data', () => {});
    sock.on('close', resolve);
    sock.on('error', () => {});
  });
  assert.equal((await curl(['--http2-prior-knowledge', `${d.url}/healthz`])).status, 'HTTP/2 200');
  assert.deepEqual(await stopDaemon(d), { code: 0, signal: null });
});

test('per-address limit over HTTP/2: each stream counts like a connection; a connection past --max-connections-per-address gets 429 and GOAWAY', async () => {
  const d = await startDaemon({ args: ['--max-connections-per-address', '3'] });
  const first = http2.connect(d.url);
  first.on('error', () => {});
  let second;
  const openStream = (session) => new Promise((resolve) => {
    const r = session.request({ ':path': `/api/events/stream?channel=${channel}`, authorization: `Bearer ${jwt}`,
      accept: 'text/event-stream' });
    r.on('response', (h) => resolve({ r, status: h[':status'] }));
    r.on('data', () => {});
    r.on('error', () => {});
    r.end();
  });
  try {
    const a = await openStream(first);  // the connection and this stream: 2
    assert.equal(a.status, 200);
    const b = await openStream(first);  // 3
    assert.equal(b.status, 200);
    const over = await h2Request(first, { ':path': '/healthz' });  // 4: refused, the connection goes on
    assert.equal(over.status, 429);
    assert.equal(over.headers['retry-after'], '1');

    second = http2.connect(d.url);  // a connection past the limit: 429 and GOAWAY
    second.on('error', () => {});
    const goaway = new Promise((resolve) => second.once('goaway', resolve));
    const r = await h2Request(second, { ':path': '/healthz' });
    assert.equal(r.status, 429);
    assert.equal(await goaway, http2.constants.NGHTTP2_NO_ERROR);
    second.destroy();

    b.r.close();  // a stream less: the first connection is served again
    await waitFor(async () => (await h2Request(first, { ':path': '/healthz' })).status === 200, { what: 'a 200 after a stream closed' });
    a.r.close();
  } finally {
    first.destroy();
    second?.destroy();
    assert.deepEqual(await stopDaemon(d), { code: 0, signal: null });
  }
});

const metric = (body, name) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(body)[1]);

test('an answer held by HTTP/2 flow control (the client never opens its window) is reset after the drain time', async () => {
  const d = await startDaemon();
  const session = http2.connect(d.url, { settings: { initialWindowSize: 0 } });
  session.on('error', () => {});
  try {
    const streams = Array.from({ length: 20 }, () => {
      const r = session.request({ ':path': '/healthz' });
      const s = { status: null, rst: null, data: 0 };
      r.on('response', (h) => { s.status = h[':status']; });
      r.on('data', (c) => { s.data += c.length; });
      r.on('close', () => { s.rst = r.rstCode; });
      r.on('error', () => {});
      r.end();
      return s;
    });
    await waitFor(() => streams.every((s) => s.status === 200), { what: 'the answers\' headers' });
    assert.ok(metric((await request(d, '/metrics')).body, 'evstream_h2_streams') >= 1, 'held while the window is shut');
    // Not a byte of the bodies can go; after the drain time each stream is reset and forgotten.
    await waitFor(() => streams.every((s) => s.rst !== null), { timeout: 20000, what: 'RST_STREAM of the held streams' });
    for (const s of streams) {
      assert.equal(s.rst, http2.constants.NGHTTP2_CANCEL);
      assert.equal(s.data, 0);
    }
    await waitFor(async () => metric((await request(d, '/metrics')).body, 'evstream_h2_streams') === 0,
      { what: 'no HTTP/2 stream left' });
  } finally {
    session.destroy();
    assert.deepEqual(await stopDaemon(d), { code: 0, signal: null });
  }
});

test('an early answer (413 on the declared length) ends the stream both ways: RST_STREAM NO_ERROR after it', async () => {
  const d = await startDaemon({ args: ['--max-body-bytes', '4096'] });
  const session = http2.connect(d.url);
  session.on('error', () => {});
  try {
    const r = session.request({ ':method': 'POST', ':path': '/api/events', authorization: `Bearer ${jwt}`,
      'content-type': 'application/json', 'content-length': '100000' });
    const s = { status: null, rst: null, body: '' };
    r.setEncoding('utf8');
    r.on('response', (h) => { s.status = h[':status']; });
    r.on('data', (c) => { s.body += c; });
    r.on('close', () => { s.rst = r.rstCode; });
    r.on('error', () => {});
    r.write('x'.repeat(1000));  // the body has begun and never ends
    await waitFor(() => s.rst !== null, { what: 'the stream closed' });
    assert.equal(s.status, 413);
    assert.equal(JSON.parse(s.body).error, 'body_too_large');
    assert.equal(s.rst, http2.constants.NGHTTP2_NO_ERROR);
    assert.equal((await h2Request(session, { ':path': '/healthz' })).status, 200, 'the connection goes on');
  } finally {
    session.destroy();
    assert.deepEqual(await stopDaemon(d), { code: 0, signal: null });
  }
});

// Raw HTTP/2 frames (9-byte header + payload).
function h2Frame(type, flags, id, payload) {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(id, 5);
  return Buffer.concat([h, payload]);
}

test('rapid reset: 3000 streams opened and reset at once get GOAWAY ENHANCE_YOUR_CALM; the daemon stays up', async () => {
  const d = await startDaemon();
  const pid = d.child.pid;
  const net = await import('node:net');
  // HPACK: :method GET, :scheme http, :path /, :authority localhost.
  const block = Buffer.from([0x82, 0x86, 0x84, 0x01, 9, ...Buffer.from('localhost')]);
  const cancel = Buffer.alloc(4);
  cancel.writeUInt32BE(http2.constants.NGHTTP2_CANCEL);
  const parts = [Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), h2Frame(4, 0, 0, Buffer.alloc(0))];
  for (let i = 0; i < 3000; i++) {
    const id = 2 * i + 1;
    parts.push(h2Frame(1, 0x5, id, block), h2Frame(3, 0, id, cancel));  // HEADERS END_STREAM|END_HEADERS, RST_STREAM
  }
  try {
    const goaway = await new Promise((resolve) => {
      let buf = Buffer.alloc(0);
      let code = null;
      const sock = net.connect(d.port, '127.0.0.1', () => sock.write(Buffer.concat(parts)));
      sock.on('data', (c) => {
        buf = Buffer.concat([buf, c]);
        while (buf.length >= 9) {
          const len = buf.readUIntBE(0, 3);
          if (buf.length < 9 + len) break;
          if (buf[3] === 7 && code === null) code = buf.readUInt32BE(13);
          buf = buf.subarray(9 + len);
        }
      });
      sock.on('error', () => {});
      sock.on('close', () => resolve(code));
    });
    assert.equal(goaway, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    assert.equal(d.exited, null);
    assert.equal(d.child.pid, pid);
    assert.equal((await curl(['--http2-prior-knowledge', `${d.url}/healthz`])).status, 'HTTP/2 200');
  } finally {
    // also when an assertion failed: a daemon left running would keep the test file from ending
    assert.deepEqual(await stopDaemon(d), { code: 0, signal: null });
  }
});

// Ephemeral events and presence, over each transport: an open stream makes its user a member
// of the channel (GET /api/presence lists it), POST /api/publish answers 202 and its event
// reaches the stream with the token's identity and no id, and a forbidden channel is 403.
async function publishAndPresence(base, mode, proto) {
  const s = curlStream(base, mode);
  try {
    await waitFor(() => s.frames.some((f) => f.event === 'connected'), { what: `connected (${mode})` });
    let p;
    await waitFor(async () => {
      p = await curl([mode, '-H', `Authorization: Bearer ${jwt}`, `${base}/api/presence?channel=${channel}`]);
      return p.status.startsWith(`${proto} 200`) && JSON.parse(p.body).members.some((m) => m.userId === 'h2-user');
    }, { what: `h2-user present (${mode})` });

    const note = `n-${mode}-${crypto.randomUUID()}`;
    const r = await curl([mode, '-X', 'POST', '-H', `Authorization: Bearer ${jwt}`, '-H', 'Content-Type: application/json',
      '--data', JSON.stringify({ channel, type: 'note.flash', data: { note } }), `${base}/api/publish`]);
    assert.match(r.status, new RegExp(`^${proto} 202\\b`), r.body);
    assert.equal(JSON.parse(r.body).published, true);
    await waitFor(() => s.frames.some((f) => f.event === 'note.flash' && JSON.parse(f.data).data.note === note),
      { what: `published event (${mode})` });
    const flash = JSON.parse(s.frames.find((f) => f.event === 'note.flash' && JSON.parse(f.data).data.note === note).data);
    assert.equal(flash.createdBy, 'user:h2-user');
    assert.equal(flash.ephemeral, true);
    assert.equal(s.frames.find((f) => f.event === 'note.flash').id, undefined, 'ephemeral frames carry no id');

    const forbidden = await curl([mode, '-X', 'POST', '-H', `Authorization: Bearer ${jwt}`, '-H', 'Content-Type: application/json',
      '--data', JSON.stringify({ channel: 'project:not-mine', type: 'note.flash', data: {} }), `${base}/api/publish`]);
    assert.match(forbidden.status, new RegExp(`^${proto} 403\\b`), forbidden.body);
  } finally {
    s.close();
  }
}

test('publish and presence over h2c and over HTTP/2 with TLS, as over HTTP/1.1', async () => {
  const d = await startDaemon();
  try {
    await publishAndPresence(d.url, '--http2-prior-knowledge', 'HTTP/2');
    await publishAndPresence(d.url, '--http1.1', 'HTTP/1.1');
  } finally {
    assert.deepEqual(await stopDaemon(d), { code: 0, signal: null });
  }
  const c = makeCert('tls-pub', 'localhost');
  const t = await startDaemon({ args: ['--tls-cert', c.cert, '--tls-key', c.key], healthy: false });
  const base = `https://127.0.0.1:${t.port}`;
  try {
    await waitFor(async () => (await curl(['--http2', `${base}/healthz`]).catch(() => null))?.status === 'HTTP/2 200',
      { what: 'healthz over h2' });
    await publishAndPresence(base, '--http2', 'HTTP/2');
  } finally {
    assert.deepEqual(await stopDaemon(t), { code: 0, signal: null });
  }
});
