// Token lifecycle and hostile tokens against a real evstreamd: exp required, --jwt-max-age,
// a stream ending at exp with event: reauth and the web client refreshing through getToken()
// without loss or duplicate, JWKS keys (RS256, ES256, EdDSA) chosen by kid, SIGHUP reloading
// keys while streams stay open, weak keys refusing to start, and no token (malformed, unsigned,
// out-of-range claims) ending the process.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { connect } from '../../web/evstream.js';
import {
  BINARY, SECRET, makeToken, openReady, openStream, pgClient, postSql, request, startDaemon, stopDaemon, token, uniq, waitFor,
} from './lib/daemon.mjs';

let d;
let db;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'evd-jwt-'));
before(async () => {
  db = pgClient();
  await db.connect();
  d = await startDaemon();
});
after(async () => {
  await stopDaemon(d);
  await db.end();
  fs.rmSync(dir, { recursive: true, force: true });
});

const now = () => Math.floor(Date.now() / 1000);
const b64u = (x) => Buffer.from(x).toString('base64url');

// A request written byte for byte on a socket (header bytes >= 0x80 included); resolves the
// status line's code, or 0 when the server closed without one.
function rawRequest(port, head) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    let data = Buffer.alloc(0);
    sock.on('data', (c) => {
      data = Buffer.concat([data, c]);
      if (data.includes('\r\n\r\n')) sock.end();
    });
    sock.on('error', () => {});
    sock.on('close', () => {
      const m = /^HTTP\/1\.1 (\d{3})/.exec(data.toString('latin1'));
      resolve({ status: m ? Number(m[1]) : 0, text: data.toString('latin1') });
    });
    sock.write(Buffer.concat([Buffer.from('GET /api/events/stream HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n', 'latin1'),
      head, Buffer.from('\r\nConnection: close\r\n\r\n', 'latin1')]));
  });
}

describe('token lifecycle', () => {
  test('exp is required; --jwt-allow-no-exp accepts tokens without it', async () => {
    const noExp = makeToken({ sub: 'u1', projects: ['p'] });
    const r = await request(d, '/api/events?channel=project:p', { headers: { Authorization: `Bearer ${noExp}` } });
    assert.equal(r.status, 401);
    assert.match(r.json.message, /no exp/);
    const lax = await startDaemon({ args: ['--jwt-allow-no-exp'] });
    try {
      const s = await openReady(lax, { tokenValue: noExp });
      assert.equal(s.status, 200);
      s.close();
    } finally {
      await stopDaemon(lax);
    }
  });

  test('--jwt-max-age refuses old tokens, requires iat, and ends streams at iat + max age', async () => {
    const k = await startDaemon({ args: ['--jwt-max-age', '60'] });
    try {
      const old = await openStream(k, { tokenValue: token({ sub: 'u1', projects: ['p'], iat: now() - 120 }) }).ready;
      assert.equal(old.status, 401);
      assert.match(JSON.parse(old.body).message, /too old/);
      const noIat = await openStream(k, { tokenValue: token({ sub: 'u1', projects: ['p'] }) }).ready;
      assert.equal(noIat.status, 401);
      assert.match(JSON.parse(noIat.body).message, /no iat/);
      // iat 52 s ago: valid for about eight more seconds although exp is an hour away (enough for
      // the stream to open on a slow machine: with 1-2 s left it could be refused instead).
      const p = uniq('age');
      const s = await openReady(k, { query: `?channel=project:${p}`, tokenValue: token({ sub: 'u1', projects: [p], iat: now() - 52 }) });
      assert.equal(s.status, 200, 'open while the token is young enough');
      const reauth = await s.until((evs) => evs.find((e) => e.event === 'reauth'), 30000, 'reauth at iat + max age');
      assert.equal(JSON.parse(reauth.data).type, 'reauth');
      await s.until((_, st) => st.ended, 15000, 'the stream to close');
    } finally {
      await stopDaemon(k);
    }
  });

  test('a token without the Bearer scheme gets a 401 that says so', async () => {
    const r = await request(d, '/api/events?channel=project:p', { headers: { Authorization: token({ projects: ['p'] }) } });
    assert.equal(r.status, 401);
    assert.equal(r.json.error, 'unauthorized');
    assert.match(r.json.message, /Bearer/);
    const basic = await request(d, '/api/events?channel=project:p', { headers: { Authorization: 'Basic dTpw' } });
    assert.equal(basic.status, 401);
    assert.match(basic.json.message, /Bearer scheme/);
  });

  test('a stream ends at exp with event: reauth carrying the last safe id, then closes', async () => {
    const p = uniq('exp');
    const channel = `project:${p}`;
    // exp 8 s away (2-3 s before): the stream must open and get three events before it, also on a
    // slow machine; the test then waits for the expiry.
    const s = await openReady(d, { query: `?channel=${channel}`, tokenValue: token({ sub: 'u1', projects: [p], exp: now() + 8 }) });
    assert.equal(s.status, 200);
    const posted = await postSql(db, channel, 3);
    await s.until((evs) => evs.some((e) => e.id === String(posted[2])), 15000, 'three events');
    const reauth = await s.until((evs) => evs.find((e) => e.event === 'reauth'), 30000, 'reauth');
    assert.equal(reauth.id, String(posted[2]), 'the frame id is the last position passed');
    assert.deepEqual(JSON.parse(reauth.data), { type: 'reauth', reason: 'token expired', lastEventId: String(posted[2]) });
    await s.until((_, st) => st.ended, 15000, 'the connection to close');
    assert.equal(s.events.at(-1).event, 'reauth', 'nothing after reauth');
    const metrics = await request(d, '/metrics');
    assert.match(metrics.body, /evstream_reauths_total [1-9]/);
  });

  test('the web client refreshes through getToken() at expiry and resumes with no loss and no duplicate', async () => {
    const p = uniq('refresh');
    const channel = `project:${p}`;
    const tokens = [];
    // First token: 4 s left. Refreshed ones: 4 s as well, so expiry happens twice in the test.
    // (With 1-2 s, a reconnect slowed down on a loaded machine could present a token that has
    // already expired, again and again.)
    const getToken = () => {
      const t = token({ sub: 'u9', projects: [p], exp: now() + 4 });
      tokens.push(t);
      return Promise.resolve(t);
    };
    const client = connect({ url: d.url, getToken, channels: [channel], minBackoffMs: 50, maxBackoffMs: 200 });
    const got = [];
    const control = [];
    client.subscribe('*', (e) => (e.position ? got.push(e.position) : control.push(e.type)));
    const expected = [];
    try {
      await waitFor(() => client.connectionState === 'open', { timeout: 30000, what: 'open' });
      // Post continuously across at least two expiries.
      const start = Date.now();
      while ((control.filter((t) => t === 'reauth').length < 2 || Date.now() - start < 3000) && Date.now() - start < 60000) {
        expected.push(...(await postSql(db, channel, 1)));
        await new Promise((r) => setTimeout(r, 25));
      }
      await waitFor(() => got.length >= expected.length, { timeout: 30000, what: 'every event' });
      assert.ok(control.filter((t) => t === 'reauth').length >= 2, `two reauth frames, got ${control}`);
      // The second reauth frame may have just arrived: the client asks for its token when the
      // stream has closed, so wait for that call rather than expect it already made.
      await waitFor(() => tokens.length >= 3, { what: 'getToken called at start and at each expiry' });
      assert.deepEqual(got, expected, 'every event once, in order');
      // The client also posts with the fresh token.
      const ev = await client.post({ channel, aggregate_type: 'thing', aggregate_id: 'x', event_type: 'thing.happened' });
      assert.equal(ev.createdBy, 'user:u9');
    } finally {
      client.close();
    }
  });

  test('the web client refreshes once on a 401 and then connects', async () => {
    const p = uniq('r401');
    let calls = 0;
    const client = connect({
      url: d.url, token: token({ projects: [p], exp: now() - 5 }), channels: [`project:${p}`],
      getToken: async () => { calls++; return token({ projects: [p] }); },
    });
    try {
      await waitFor(() => client.connectionState === 'open', { what: 'open after refresh' });
      assert.equal(calls, 1);
    } finally {
      client.close();
    }
  });
});

function jwksKeys() {
  const keys = {};
  for (const [alg, kty, opts] of [['RS256', 'rsa', { modulusLength: 2048 }], ['ES256', 'ec', { namedCurve: 'P-256' }],
    ['EdDSA', 'ed25519', undefined]]) {
    const { publicKey, privateKey } = crypto.generateKeyPairSync(kty, opts);
    keys[alg] = { publicKey, privateKey, kid: `${alg.toLowerCase()}-${crypto.randomBytes(3).toString('hex')}` };
  }
  return keys;
}
const jwk = (k, extra = {}) => ({ ...k.publicKey.export({ format: 'jwk' }), kid: k.kid, use: 'sig', ...extra });

describe('JWKS keys', () => {
  test('RS256, ES256 and EdDSA tokens chosen by kid; forgeries and unknown kids refused', async () => {
    const keys = jwksKeys();
    const file = path.join(dir, 'jwks.json');
    fs.writeFileSync(file, JSON.stringify({ keys: [jwk(keys.RS256, { alg: 'RS256' }), jwk(keys.ES256), jwk(keys.EdDSA)] }));
    const k = await startDaemon({ args: ['--jwt-jwks', file] });
    try {
      const claims = { sub: 'u1', projects: ['p'], exp: now() + 60 };
      for (const alg of ['RS256', 'ES256', 'EdDSA']) {
        const s = await openReady(k, { tokenValue: makeToken(claims, { alg, key: keys[alg].privateKey, header: { kid: keys[alg].kid } }) });
        assert.equal(s.status, 200, alg);
        s.close();
      }
      const wrongKid = await openStream(k, { tokenValue: makeToken(claims, { alg: 'ES256', key: keys.ES256.privateKey, header: { kid: keys.RS256.kid } }) }).ready;
      assert.equal(wrongKid.status, 401);
      const unknown = await openStream(k, { tokenValue: makeToken(claims, { alg: 'EdDSA', key: keys.EdDSA.privateKey, header: { kid: 'nope' } }) }).ready;
      assert.equal(unknown.status, 401);
      assert.match(JSON.parse(unknown.body).message, /unknown key id/);
      const pem = keys.RS256.publicKey.export({ type: 'spki', format: 'pem' });
      const forged = await openStream(k, { tokenValue: makeToken(claims, { alg: 'HS256', key: pem, header: { kid: keys.RS256.kid } }) }).ready;
      assert.equal(forged.status, 401);
    } finally {
      await stopDaemon(k);
    }
  });

  test('SIGHUP reloads the JWKS: open streams stay, a new key works, a broken file keeps the old keys', async () => {
    const a = jwksKeys().EdDSA, b = jwksKeys().ES256;
    const file = path.join(dir, 'reload.json');
    fs.writeFileSync(file, JSON.stringify({ keys: [jwk(a)] }));
    const k = await startDaemon({ args: ['--jwt-jwks', file] });
    const pid = k.child.pid;
    try {
      const p = uniq('hup');
      const claims = { sub: 'u1', projects: [p], exp: now() + 600 };
      const tokA = makeToken(claims, { alg: 'EdDSA', key: a.privateKey, header: { kid: a.kid } });
      const tokB = makeToken(claims, { alg: 'ES256', key: b.privateKey, header: { kid: b.kid } });
      const open = await openReady(k, { query: `?channel=project:${p}`, tokenValue: tokA });
      assert.equal((await openStream(k, { tokenValue: tokB }).ready).status, 401, 'b unknown before the reload');

      fs.writeFileSync(file, JSON.stringify({ keys: [jwk(a), jwk(b)] }));
      process.kill(pid, 'SIGHUP');
      await waitFor(() => k.logs.some((l) => l.msg === 'keys reloaded'), { what: 'keys reloaded' });
      const withB = await openReady(k, { query: `?channel=project:${p}`, tokenValue: tokB });
      assert.equal(withB.status, 200);
      const [pos] = await postSql(db, `project:${p}`, 1);
      await open.until((evs) => evs.some((e) => e.id === String(pos)), 20000, 'the old stream still delivers');
      await withB.until((evs) => evs.some((e) => e.id === String(pos)), 20000, 'the new stream delivers');
      assert.equal(open.ended, false);

      fs.writeFileSync(file, '{"keys": [');
      process.kill(pid, 'SIGHUP');
      await waitFor(() => k.logs.some((l) => l.msg === 'key reload failed; the previous keys stay in use'), { what: 'reload failure logged' });
      const still = await openReady(k, { tokenValue: tokB });
      assert.equal(still.status, 200, 'old keys still in use');
      still.close();
      assert.equal(k.exited, null);
      assert.equal(k.child.pid, pid);
      open.close(); withB.close();
    } finally {
      await stopDaemon(k);
    }
  });
});

describe('weak keys refuse to start', () => {
  const runDaemon = (args) => new Promise((resolve) => {
    const child = spawn(BINARY, ['--listen', '127.0.0.1:0', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c) => { err += c; });
    child.on('exit', (code) => resolve({ code, err }));
  });

  test('an HS256 secret under 32 bytes', async () => {
    const r = await runDaemon(['--jwt-secret', 'e2e-secret']);
    assert.equal(r.code, 2);
    assert.match(r.err, /at least 32 bytes/);
    const secretFile = path.join(dir, 'secret');
    fs.writeFileSync(secretFile, 'short-secret\n');
    const f = await runDaemon(['--jwt-secret-file', secretFile]);
    assert.equal(f.code, 2);
    assert.match(f.err, /jwt-secret-file.*at least 32 bytes/);
  });

  test('an RSA key under 2048 bits, as PEM or in a JWKS', async () => {
    const { publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 1024 });
    const pemFile = path.join(dir, 'weak.pem');
    fs.writeFileSync(pemFile, publicKey.export({ type: 'spki', format: 'pem' }));
    const r = await runDaemon(['--jwt-public-key', pemFile]);
    assert.equal(r.code, 2);
    assert.match(r.err, /1024 bits; at least 2048/);
    const jwksFile = path.join(dir, 'weak.json');
    fs.writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...publicKey.export({ format: 'jwk' }), kid: 'w' }] }));
    const j = await runDaemon(['--jwt-jwks', jwksFile]);
    assert.equal(j.code, 2);
    assert.match(j.err, /1024 bits/);
  });

  test('a secret file is accepted and re-read on SIGHUP', async () => {
    const file = path.join(dir, 'good-secret');
    const s1 = crypto.randomBytes(32).toString('hex'), s2 = crypto.randomBytes(32).toString('hex');
    fs.writeFileSync(file, `${s1}\n`);
    const child = spawn(BINARY, ['--listen', '127.0.0.1:0', '--jwt-secret-file', file], { stdio: ['ignore', 'ignore', 'pipe'] });
    const logs = [];
    let buf = '';
    child.stderr.on('data', (c) => {
      buf += c;
      for (let i; (i = buf.indexOf('\n')) >= 0; buf = buf.slice(i + 1)) { try { logs.push(JSON.parse(buf.slice(0, i))); } catch { /* */ } }
    });
    try {
      const listening = await waitFor(() => logs.find((l) => l.msg === 'listening'), { what: 'listening' });
      const k = { url: `http://127.0.0.1:${listening.port}` };
      await waitFor(async () => (await request(k, '/healthz').catch(() => ({ status: 0 }))).status === 200, { what: 'healthy' });
      const claims = { projects: ['p'], exp: now() + 60 };
      assert.equal((await openReady(k, { tokenValue: makeToken(claims, { key: s1 }) })).status, 200);
      fs.writeFileSync(file, s2);
      child.kill('SIGHUP');
      await waitFor(() => logs.some((l) => l.msg === 'keys reloaded'), { what: 'reloaded' });
      assert.equal((await openStream(k, { tokenValue: makeToken(claims, { key: s1 }) }).ready).status, 401);
      const s = await openReady(k, { tokenValue: makeToken(claims, { key: s2 }) });
      assert.equal(s.status, 200);
      s.close();
    } finally {
      child.kill('SIGTERM');
    }
  });
});

describe('hostile tokens never end the process', () => {
  test('malformed, unsigned and out-of-range tokens get 401 and the PID stays', async () => {
    const pid = d.child.pid;
    const claims = { sub: 'u1', projects: ['p'], exp: now() + 60 };
    const good = token(claims);
    const [h, pl] = good.split('.');
    const signRaw = (payload) => {
      const input = `${b64u('{"alg":"HS256","typ":"JWT"}')}.${b64u(payload)}`;
      return `${input}.${crypto.createHmac('sha256', SECRET).update(input).digest('base64url')}`;
    };
    const tokens = {
      none: makeToken(claims, { alg: 'none' }),
      noneWithSig: `${b64u('{"alg":"none"}')}.${pl}.c2ln`,
      nonBase64: `${h}.${pl.slice(0, 5)}*${pl.slice(6)}.abc`,
      padded: `${h}=.${pl}.abc`,
      twoSegments: `${h}.${pl}`,
      fourSegments: `${good}.x`,
      huge: `${h}.${'A'.repeat(9000)}.abc`,
      exp1e20: signRaw('{"sub":"u1","exp":1e20}'),
      expNegFloat: signRaw('{"sub":"u1","exp":-1.5}'),
      expString: signRaw(`{"sub":"u1","exp":"${now() + 60}"}`),
      nbfHuge: signRaw(`{"sub":"u1","exp":${now() + 60},"nbf":184467440737095516150}`),
      payloadNotJson: signRaw('not json'),
      payloadBadUtf8: signRaw(Buffer.concat([Buffer.from('{"sub":"'), Buffer.from([0xff]), Buffer.from(`","exp":${now() + 60}}`)])),
      deepPayload: signRaw('['.repeat(3000)),
      unsignedBadClaims: `${b64u('{"alg":"HS256"}')}.${b64u('{"exp":1e20}')}.`,
    };
    for (const [name, t] of Object.entries(tokens)) {
      const viaHeader = await openStream(d, { tokenValue: t }).ready;
      assert.equal(viaHeader.status, 401, name);
      const viaQuery = await request(d, `/api/events/stream?access_token=${encodeURIComponent(t)}`);
      assert.equal(viaQuery.status, 401, `${name} via access_token`);
    }
    // Raw bytes >= 0x80 in the header, cookie and query (no valid token needed).
    for (const head of [
      Buffer.concat([Buffer.from('Authorization: Bearer ', 'latin1'), Buffer.from([0xff, 0xfe, 0x80, 0x2e, 0xc3, 0x2e, 0x41])]),
      Buffer.concat([Buffer.from(`Authorization: Bearer ${h}.`, 'latin1'), Buffer.from([0xff]), Buffer.from(`.${good.split('.')[2]}`)]),
      Buffer.concat([Buffer.from('Cookie: evstream_token=', 'latin1'), Buffer.from([0x80, 0x81, 0x2e, 0xff, 0x2e, 0xfe])]),
    ]) {
      const r = await rawRequest(d.port, head);
      assert.ok(r.status === 401 || r.status === 400, `raw bytes: ${r.status} ${r.text.slice(0, 80)}`);
    }
    // Not UTF-8 once percent-decoded: refused at the edge (400) before any token check.
    const badQuery = await request(d, '/api/events/stream?access_token=%FF%FE.%80.%C3');
    assert.equal(badQuery.status, 400, badQuery.body);
    assert.equal(badQuery.json.error, 'bad_request');
    assert.equal(d.exited, null, 'the daemon is still running');
    assert.equal(d.child.pid, pid);
    assert.equal((await request(d, '/healthz')).status, 200);
    const s = await openReady(d, { tokenValue: good });
    assert.equal(s.status, 200, 'a good token still works');
    s.close();
  });
});
