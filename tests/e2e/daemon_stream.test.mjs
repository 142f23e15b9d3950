// evstreamd end to end: frames, auth (401/403), channel isolation, topics, resume, reset,
// heartbeat, batch_ms, health and metrics. Real cluster, real daemon, node:http clients.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { execFile, spawn } from 'node:child_process';
import http from 'node:http';
import { promisify } from 'node:util';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  BINARY, makeToken, openReady, openStream, pgClient, postSql, request, startDaemon, stopDaemon, token, uniq, waitFor,
} from './lib/daemon.mjs';

const run = promisify(execFile);
let d;
let db;

before(async () => {
  db = pgClient();
  await db.connect();
  d = await startDaemon({ args: ['--heartbeat', '1', '--jwt-audience', 'evstream-e2e'] });
});
after(async () => {
  await stopDaemon(d);
  await db.end();
});

const tok = (claims) => token({ aud: 'evstream-e2e', ...claims });

describe('evstreamd stream', () => {
  test('--help and --version', async () => {
    const help = await run(BINARY, ['--help']);
    for (const flag of ['--listen', '--database-url', '--jwt-secret', '--jwt-public-key', '--jwt-audience',
      '--jwt-issuer', '--heartbeat', '--web-root', '--cors-origin']) assert.match(help.stdout, new RegExp(flag));
    const version = await run(BINARY, ['--version']);
    assert.match(version.stdout, /^evstreamd \d+\.\d+\.\d+/);
  });

  test('a posted event arrives with the documented frame', async () => {
    const p = uniq('p');
    const s = await openReady(d, { query: `?channel=project:${p}`, tokenValue: tok({ sub: 'u1', projects: [p] }) });
    assert.equal(s.headers['content-type'], 'text/event-stream; charset=utf-8');
    const hello = s.events[0];
    assert.equal(hello.event, 'connected');
    assert.ok(hello.retry > 0, 'retry hint on connect');
    const helloData = JSON.parse(hello.data);
    assert.deepEqual(Object.keys(helloData), ['type', 'connectionId', 'channels']);
    assert.equal(helloData.type, 'connected');
    assert.deepEqual(helloData.channels, [`project:${p}`]);

    const corr = crypto.randomUUID();
    const docId = uniq('doc_');
    const r = await db.query(
      `SELECT * FROM evstream.post_event($1, 'document', $4, 'document.created', $2::jsonb,
         '{"m": 1}'::jsonb, NULL, NULL, $3::uuid, NULL, '{"role": "user"}'::jsonb, 'user:u1')`,
      [`project:${p}`, JSON.stringify({ title: 'héllo ✓\nline 2' }), corr, docId]);
    const row = r.rows[0];
    const ev = await s.until((evs) => evs.find((e) => e.event === 'document.created'));
    assert.equal(ev.id, String(row.position));
    const data = JSON.parse(ev.data);
    assert.deepEqual(Object.keys(data), ['type', 'channel', 'entity', 'id', 'version', 'position', 'eventId', 'data',
      'metadata', 'display', 'timestamp', 'correlationId', 'causationId', 'createdBy']);
    assert.deepEqual(data, {
      type: 'document.created', channel: `project:${p}`, entity: 'document', id: docId, version: 1,
      position: Number(row.position), eventId: row.id, data: { title: 'héllo ✓\nline 2' }, metadata: { m: 1 },
      display: { role: 'user' }, timestamp: new Date(row.created_at).toISOString(), correlationId: corr,
      causationId: null, createdBy: 'user:u1',
    });
    s.close();
  });

  test('401 for missing, none-alg, expired, badly signed, wrong-audience tokens', async () => {
    const claims = { sub: 'u1', aud: 'evstream-e2e', exp: Math.floor(Date.now() / 1000) + 3600 };
    const cases = {
      missing: undefined,
      none: makeToken(claims, { alg: 'none' }),
      expired: makeToken({ ...claims, exp: Math.floor(Date.now() / 1000) - 10 }),
      notYet: makeToken({ ...claims, nbf: Math.floor(Date.now() / 1000) + 600 }),
      badSig: makeToken(claims, { key: 'not-the-secret' }),
      wrongAud: makeToken({ ...claims, aud: 'someone-else' }),
      garbage: 'abc.def.ghi',
    };
    for (const [name, t] of Object.entries(cases)) {
      const s = await openStream(d, { tokenValue: t }).ready;
      assert.equal(s.status, 401, name);
      assert.equal(JSON.parse(s.body).error, 'unauthorized', name);
    }
  });

  test('403 for a channel the token does not allow, nothing streamed', async () => {
    const s = await openStream(d, { query: '?channel=project:a&channel=project:b', tokenValue: tok({ projects: ['a'] }) }).ready;
    assert.equal(s.status, 403);
    assert.equal(JSON.parse(s.body).channel, 'project:b');
    const viaHeader = await openStream(d, { headers: { 'X-Project-Id': 'zzz' }, tokenValue: tok({ projects: ['a'] }) }).ready;
    assert.equal(viaHeader.status, 403);
  });

  test('channel isolation: a project:a subscriber never sees project:b', async () => {
    const a = uniq('a'), b = uniq('b');
    const sa = await openReady(d, { headers: { 'X-Project-Id': a }, tokenValue: tok({ projects: [a, b] }) });
    const sb = await openReady(d, { query: `?channel=project:${b}`, tokenValue: tok({ projects: [b] }) });
    const pa = await postSql(db, `project:${a}`, 3);
    const pb = await postSql(db, `project:${b}`, 3);
    const pa2 = await postSql(db, `project:${a}`, 1);
    await sa.until((evs) => evs.some((e) => e.id === String(pa2[0])));
    await sb.until((evs) => evs.some((e) => e.id === String(pb[2])));
    assert.deepEqual(sa.positions(), [...pa, ...pa2]);
    assert.deepEqual(sb.positions(), pb);
    sa.close(); sb.close();
  });

  test('pattern grants, cookie and access_token carry the token, topic filter applies', async () => {
    const team = uniq('team');
    const t = tok({ channels: [`channel:${team}-*`] });
    const viaCookie = await openReady(d, { query: `?channel=channel:${team}-*&topic=doc:*`, headers: { Cookie: `x=1; evstream_token=${t}` } });
    const viaQuery = await openReady(d, { query: `?channel=channel:${team}-red&access_token=${t}&topic=doc:d1` });
    await postSql(db, `channel:${team}-red`, 1, { type: 'doc', id: 'd1' });
    await postSql(db, `channel:${team}-red`, 1, { type: 'doc', id: 'd2' });
    await postSql(db, `channel:${team}-blue`, 1, { type: 'memo', id: 'm1' });
    const last = await postSql(db, `channel:${team}-blue`, 1, { type: 'doc', id: 'd3' });
    await viaCookie.until((evs) => evs.some((e) => e.id === String(last[0])));
    assert.deepEqual(viaCookie.dataEvents().map((e) => JSON.parse(e.data).id), ['d1', 'd2', 'd3']);
    await postSql(db, `channel:${team}-red`, 1, { type: 'doc', id: 'd1' });
    await viaQuery.until(() => viaQuery.dataEvents().length === 2);
    assert.deepEqual(viaQuery.dataEvents().map((e) => JSON.parse(e.data).id), ['d1', 'd1']);
    viaCookie.close(); viaQuery.close();
  });

  test('Last-Event-ID resumes after a disconnect with no gap and no duplicate', async () => {
    const p = uniq('p');
    const t = tok({ projects: [p] });
    const first = await openReady(d, { tokenValue: t, query: `?channel=project:${p}` });
    const early = await postSql(db, `project:${p}`, 3);
    await first.until((evs) => evs.some((e) => e.id === String(early[2])));
    first.close();
    const missed = await postSql(db, `project:${p}`, 4);
    const second = await openReady(d, { tokenValue: t, query: `?channel=project:${p}`, lastEventId: early[1] });
    const live = await postSql(db, `project:${p}`, 2);
    await second.until((evs) => evs.some((e) => e.id === String(live[1])));
    assert.deepEqual(second.positions(), [early[2], ...missed, ...live]);
    // lastEventId query parameter works too, and 0 means "from the beginning of my channels".
    const third = await openReady(d, { tokenValue: t, query: `?channel=project:${p}&lastEventId=0` });
    await third.until((evs) => evs.some((e) => e.id === String(live[1])));
    assert.deepEqual(third.positions(), [...early, ...missed, ...live]);
    second.close(); third.close();
  });

  test('an unknown position gets event: reset, then live events', async () => {
    const p = uniq('p');
    const s = await openReady(d, { tokenValue: tok({ projects: [p] }), lastEventId: 999999999 });
    const reset = await s.until((evs) => evs.find((e) => e.event === 'reset'));
    assert.equal(JSON.parse(reset.data).type, 'reset');
    assert.equal(JSON.parse(reset.data).lastEventId, '999999999');
    const pos = await postSql(db, `project:${p}`, 1);
    await s.until((evs) => evs.some((e) => e.id === String(pos[0])));
    s.close();
  });

  test('heartbeat frames arrive every --heartbeat seconds', async () => {
    const s = await openReady(d, { tokenValue: tok({ sub: uniq('u') }) });
    const hb = await s.until((evs) => evs.find((e) => e.event === 'heartbeat'), 15000);
    const data = JSON.parse(hb.data);
    assert.equal(data.type, 'heartbeat');
    assert.ok(!Number.isNaN(Date.parse(data.timestamp)));
    s.close();
  });

  test('batch_ms merges events into one write per interval, order preserved', async () => {
    const p = uniq('p');
    const s = await openReady(d, { tokenValue: tok({ projects: [p] }), query: '?batch_ms=200' });
    // Only the chunks that carry the burst: the daemon's --heartbeat 1 also writes, once a second,
    // and a slow machine can take longer than that between this point and the burst's arrival.
    const writes = [];
    s.res.on('data', (c) => { if (String(c).includes('event: burst')) writes.push(c); });
    const positions = (await db.query(
      `SELECT (evstream.post_event($1, 't', 'x' || g, 'burst', '{}'::jsonb)).position FROM generate_series(1, 20) g`,
      [`project:${p}`])).rows.map((r) => Number(r.position));
    await s.until((evs) => evs.filter((e) => e.event === 'burst').length === 20);
    assert.deepEqual(s.positions(), positions);
    assert.ok(writes.length <= 3, `expected the burst in at most 3 writes, got ${writes.length}`);
    const bad = await openStream(d, { tokenValue: tok({ projects: [p] }), query: '?batch_ms=abc' }).ready;
    assert.equal(bad.status, 400);
    s.close();
  });

  test('RS256 and ES256 tokens with --jwt-public-key', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'evd-keys-'));
    for (const [alg, opts] of [['RS256', ['rsa', { modulusLength: 2048 }]], ['ES256', ['ec', { namedCurve: 'P-256' }]]]) {
      const { publicKey, privateKey } = crypto.generateKeyPairSync(...opts);
      const file = path.join(dir, `${alg}.pem`);
      fs.writeFileSync(file, publicKey.export({ type: 'spki', format: 'pem' }));
      const k = await startDaemon({ args: ['--jwt-public-key', file] });
      try {
        const claims = { sub: 'u1', exp: Math.floor(Date.now() / 1000) + 60 };
        const good = await openReady(k, { tokenValue: makeToken(claims, { alg, key: privateKey }) });
        assert.equal(good.status, 200, alg);
        good.close();
        // HS256 signed with the server's public key must not pass (the classic forgery).
        const pem = publicKey.export({ type: 'spki', format: 'pem' });
        const forged = await openStream(k, { tokenValue: makeToken(claims, { alg: 'HS256', key: pem }) }).ready;
        assert.equal(forged.status, 401, `${alg} forged HS256`);
        // The HS256 secret given by startDaemon still works beside the key.
        const hs = await openReady(k, { tokenValue: token({ sub: 'u1' }) });
        assert.equal(hs.status, 200);
        hs.close();
      } finally {
        await stopDaemon(k);
      }
    }
    fs.rmSync(dir, { recursive: true });
  });

  test('curl -N receives the connected frame and a posted event', async () => {
    const p = uniq('p');
    const child = spawn('curl', ['-s', '-N', '--max-time', '20', '-H', `Authorization: Bearer ${tok({ projects: [p] })}`,
      `${d.url}/api/events/stream?channel=project:${p}`]);
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (c) => { out += c; });
    await waitFor(() => out.includes('event: connected'), { what: 'curl connected' });
    const [pos] = await postSql(db, `project:${p}`, 1, { eventType: 'curl.seen' });
    await waitFor(() => out.includes(`id: ${pos}\nevent: curl.seen\ndata: {"type":"curl.seen"`), { what: 'curl event' });
    child.kill();
  });

  test('keep-alive: several requests on one connection', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const ports = new Set();
    for (let i = 0; i < 3; i++) {
      const res = await new Promise((resolve, reject) => {
        http.get(`${d.url}/healthz`, { agent }, (r) => {
          ports.add(r.socket.localPort);
          r.resume();
          r.on('end', () => resolve(r));
        }).on('error', reject);
      });
      assert.equal(res.statusCode, 200);
      assert.equal(res.headers.connection, 'keep-alive');
    }
    assert.equal(ports.size, 1, 'one TCP connection served all three');
    agent.destroy();
  });

  test('run from the repository root without --web-root, / serves web/', async () => {
    const r = await request(d, '/');
    if (fs.existsSync('web/index.html')) {
      assert.equal(r.status, 200);
      assert.match(r.headers['content-type'], /^text\/html/);
      assert.equal(r.body, fs.readFileSync('web/index.html', 'utf8'));
    } else {
      assert.equal(r.status, 404);
    }
  });

  test('healthz and metrics', async () => {
    const h = await request(d, '/healthz');
    assert.equal(h.status, 200);
    assert.equal(h.json.status, 'ok');
    const m = await request(d, '/metrics');
    assert.equal(m.status, 200);
    assert.match(m.headers['content-type'], /^text\/plain/);
    for (const name of ['evstream_http_connections', 'evstream_sse_connections', 'evstream_events_delivered_total',
      'evstream_bytes_sent_total', 'evstream_slow_client_drops_total', 'evstream_auth_failures_total',
      'evstream_last_position', 'evstream_feed_lag_seconds', 'evstream_db_reconnects_total'])
      assert.match(m.body, new RegExp(`^${name} \\S+$`, 'm'), name);
    assert.ok(Number(/^evstream_auth_failures_total (\d+)/m.exec(m.body)[1]) > 0);
  });
});
