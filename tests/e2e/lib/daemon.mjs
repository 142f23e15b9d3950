// Shared e2e helpers for evstreamd: start/stop a real daemon, tokens made with node:crypto
// (independent of the daemon's OpenSSL verifier), an SSE client over node:http, and SQL through npm pg.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import http from 'node:http';
import path from 'node:path';
import pg from 'pg';

export const BINARY = path.resolve(process.env.EVSTREAM_BUILD ?? 'build', 'daemon', 'evstreamd');
export const SECRET = 'e2e-secret-0123456789abcdef-0123456789';  // >= 32 bytes (HS256 minimum)

// The default bounds (30 s) are only upper limits for a condition that is expected to hold: a
// loaded CI machine running an ASan daemon can be several times slower than a desk.
export async function waitFor(cond, { timeout = 30000, interval = 20, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

// Starts evstreamd on a free port (--listen 127.0.0.1:0: the daemon binds the port itself, so no
// other process can take it in between) and waits for /healthz 200. A given port (a restart on
// the port of a daemon just stopped) may be held for a moment by someone else: on EADDRINUSE the
// start is retried for up to 30 s.
export async function startDaemon(opts = {}) {
  const deadline = Date.now() + 30000;
  for (;;) {
    try {
      return await startDaemonOnce(opts);
    } catch (e) {
      if (!opts.port || !e.addressInUse || Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

async function startDaemonOnce({ args = [], env = {}, healthy = true, port = 0, binary = BINARY } = {}) {
  const child = spawn(binary, ['--listen', `127.0.0.1:${port}`, '--jwt-secret', SECRET, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const d = { child, port: 0, logs: [], exited: null };
  d.exitPromise = new Promise((resolve) => child.on('exit', (code, signal) => {
    d.exited = { code, signal };
    resolve(d.exited);
  }));
  let buf = '';
  child.stderr.on('data', (chunk) => {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try { d.logs.push(JSON.parse(line)); } catch { d.logs.push({ raw: line }); }
    }
  });
  child.stdout.resume();
  await waitFor(() => d.exited || d.logs.find((l) => l.msg === 'listening'), { what: 'daemon listening' });
  if (d.exited) {
    // the last stderr lines (the exit can be seen before them)
    await new Promise((r) => { if (child.stderr.readableEnded) r(); else { child.stderr.once('end', r); setTimeout(r, 2000); } });
    const e = new Error(`evstreamd exited early: ${JSON.stringify(d.logs)}`);
    e.addressInUse = d.logs.some((l) => l.msg === 'cannot listen' && l.error === 'EADDRINUSE');
    throw e;
  }
  d.port = d.logs.find((l) => l.msg === 'listening').port;
  d.url = `http://127.0.0.1:${d.port}`;
  if (healthy) {
    await waitFor(async () => (await request(d, '/healthz').catch(() => ({ status: 0 }))).status === 200,
      { what: 'healthz 200' });
  }
  return d;
}

export async function stopDaemon(d, signal = 'SIGTERM') {
  if (!d || d.exited) return d?.exited;
  d.child.kill(signal);
  return d.exitPromise;
}

const b64u = (x) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');

// A JWT signed by node:crypto. alg HS256 (key: secret string), RS256, ES256 or EdDSA (key: private KeyObject).
export function makeToken(claims, { alg = 'HS256', key = SECRET, header = {} } = {}) {
  const head = b64u({ alg, typ: 'JWT', ...header });
  const input = `${head}.${b64u(claims)}`;
  let sig;
  if (alg === 'HS256') sig = crypto.createHmac('sha256', key).update(input).digest();
  else if (alg === 'RS256') sig = crypto.sign('sha256', Buffer.from(input), key);
  else if (alg === 'ES256') sig = crypto.sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  else if (alg === 'EdDSA') sig = crypto.sign(null, Buffer.from(input), key);
  else if (alg === 'none') return `${input}.`;
  else throw new Error(`unsupported alg ${alg}`);
  return `${input}.${sig.toString('base64url')}`;
}

export function token(claims = {}) {
  return makeToken({ exp: Math.floor(Date.now() / 1000) + 3600, ...claims });
}

// Plain HTTP request; resolves { status, headers, body, json }.
export function request(d, pathname, { method = 'GET', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(`${d.url ?? d}${pathname}`, { method, headers, agent: false }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { data += c; });
      res.on('end', () => {
        let json;
        try { json = JSON.parse(data); } catch { json = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, body: data, json });
      });
    });
    req.on('error', reject);
    req.setTimeout(30000, () => req.destroy(new Error('request timeout')));
    if (body !== undefined) req.write(typeof body === 'string' ? body : JSON.stringify(body));
    req.end();
  });
}

// Parses an SSE byte stream into { id, event, data, retry } records (WHATWG rules).
export class SseParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buf = '';
    this.reset();
  }
  reset() { this.cur = { data: [], event: undefined, id: undefined, retry: undefined }; }
  push(text) {
    this.buf += text;
    let m;
    while ((m = /\r\n|\r|\n/.exec(this.buf))) {
      if (m[0] === '\r' && m.index === this.buf.length - 1) break;  // maybe CRLF split
      const line = this.buf.slice(0, m.index);
      this.buf = this.buf.slice(m.index + m[0].length);
      this.line(line);
    }
  }
  line(line) {
    if (line === '') {
      const c = this.cur;
      this.reset();
      if (c.data.length || c.event || c.id !== undefined || c.retry !== undefined)
        this.onEvent({ id: c.id, event: c.event ?? 'message', data: c.data.join('\n'), retry: c.retry });
      return;
    }
    if (line.startsWith(':')) return;
    const i = line.indexOf(':');
    const field = i < 0 ? line : line.slice(0, i);
    let value = i < 0 ? '' : line.slice(i + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.cur.data.push(value);
    else if (field === 'event') this.cur.event = value;
    else if (field === 'id') this.cur.id = value;
    else if (field === 'retry') this.cur.retry = Number(value);
  }
}

// One SSE connection. `events` holds every record; `status`/`body` for refused requests.
export function openStream(d, { query = '', headers = {}, tokenValue, lastEventId } = {}) {
  const h = { Accept: 'text/event-stream', ...headers };
  if (tokenValue) h.Authorization = `Bearer ${tokenValue}`;
  if (lastEventId !== undefined) h['Last-Event-ID'] = String(lastEventId);
  const s = { events: [], status: 0, body: '', ended: false, waiters: new Set() };
  const notify = () => { for (const w of s.waiters) w(); };
  s.ready = new Promise((resolve, reject) => {
    s.req = http.request(`${d.url}/api/events/stream${query}`, { headers: h, agent: false }, (res) => {
      s.status = res.statusCode;
      s.headers = res.headers;
      s.res = res;
      res.setEncoding('utf8');
      if (res.statusCode !== 200) {
        res.on('data', (c) => { s.body += c; });
        res.on('end', () => { s.ended = true; resolve(s); notify(); });
        return;
      }
      const parser = new SseParser((ev) => { s.events.push(ev); notify(); });
      res.on('data', (c) => parser.push(c));
      res.on('end', () => { s.ended = true; notify(); });
      res.on('error', () => { s.ended = true; notify(); });
      resolve(s);
    });
    s.req.on('error', (e) => { s.ended = true; s.error = e; notify(); resolve(s); });
    s.req.end();
  });
  s.close = () => { s.req.destroy(); };
  // Resolves when pred(events) is truthy; rejects after timeout.
  s.until = (pred, timeout = 30000, what = 'stream condition') => new Promise((resolve, reject) => {
    const check = () => {
      const v = pred(s.events, s);
      if (v) { clearTimeout(timer); s.waiters.delete(check); resolve(v); }
    };
    const timer = setTimeout(() => {
      s.waiters.delete(check);
      reject(new Error(`timed out waiting for ${what}; got ${JSON.stringify(s.events.map((e) => [e.id, e.event])).slice(0, 600)}`));
    }, timeout);
    s.waiters.add(check);
    check();
  });
  // Stored events only: control frames (connected, reset) and id-only frames carry an id too.
  s.dataEvents = () => s.events.filter((e) => e.id !== undefined && e.data !== '' && !['reset', 'connected'].includes(e.event));
  s.positions = () => s.dataEvents().map((e) => Number(e.id));
  return s;
}

export async function openReady(d, opts) {
  const s = await openStream(d, opts).ready;
  if (s.status === 200) await s.until((evs) => evs.some((e) => e.event === 'connected'), 30000, 'connected');
  return s;
}

export function pgClient() {
  return new pg.Client();
}

// Posts events directly through SQL; returns their positions.
export async function postSql(db, channel, n = 1, { type = 'thing', id = 'a', eventType = 'thing.happened', data = {} } = {}) {
  const positions = [];
  for (let i = 0; i < n; i++) {
    const r = await db.query(
      'SELECT position FROM evstream.post_event($1, $2, $3, $4, $5::jsonb)',
      [channel, type, `${id}`, eventType, JSON.stringify({ i, ...data })]);
    positions.push(Number(r.rows[0].position));
  }
  return positions;
}

// Unique names per test run so tests do not see each other's events.
export function uniq(prefix) {
  return `${prefix}${Date.now().toString(36)}${crypto.randomBytes(3).toString('hex')}`;
}
