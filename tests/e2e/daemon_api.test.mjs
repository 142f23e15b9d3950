// evstreamd's HTTP API (issue 5): POST /api/events, GET /api/events, GET /api/streams/…,
// CORS and static files. Real daemon, real cluster, node:http.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openReady, pgClient, request, startDaemon, stopDaemon, token, uniq } from './lib/daemon.mjs';

let d;
let db;
let webRoot;

before(async () => {
  db = pgClient();
  await db.connect();
  webRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'evd-web-'));
  fs.writeFileSync(path.join(webRoot, 'index.html'), '<!doctype html><title>evstream</title>');
  fs.mkdirSync(path.join(webRoot, 'js'));
  fs.writeFileSync(path.join(webRoot, 'js', 'app.js'), 'export const x = 1;\n');
  d = await startDaemon({
    args: ['--web-root', webRoot, '--cors-origin', 'http://app.example', '--max-body-bytes', '4096'],
  });
});
after(async () => {
  await stopDaemon(d);
  await db.end();
  fs.rmSync(webRoot, { recursive: true, force: true });
});

const auth = (claims) => ({ Authorization: `Bearer ${token(claims)}`, 'Content-Type': 'application/json' });
const post = (claims, body, headers = {}) =>
  request(d, '/api/events', { method: 'POST', headers: { ...auth(claims), ...headers }, body });

describe('evstreamd HTTP API', () => {
  test('POST /api/events appends as user:<sub> and the stream carries the same event', async () => {
    const p = uniq('p');
    const s = await openReady(d, { tokenValue: token({ projects: [p] }) });
    const corr = crypto.randomUUID();
    const r = await post({ sub: 'alice', projects: [p] }, {
      channel: `project:${p}`, aggregate_type: 'doc', aggregate_id: 'd1', event_type: 'doc.created',
      data: { title: 'Hi ✓' }, metadata: { via: 'api' }, display: { role: 'user' }, correlation_id: corr,
    });
    assert.equal(r.status, 201, r.body);
    assert.deepEqual(Object.keys(r.json), ['type', 'channel', 'entity', 'id', 'version', 'position', 'eventId', 'data',
      'metadata', 'display', 'timestamp', 'correlationId', 'causationId', 'createdBy']);
    assert.equal(r.json.createdBy, 'user:alice');
    assert.equal(r.json.correlationId, corr);
    assert.deepEqual(r.json.data, { title: 'Hi ✓' });
    const ev = await s.until((evs) => evs.find((e) => e.id === String(r.json.position)));
    assert.deepEqual(JSON.parse(ev.data), r.json);
    s.close();
  });

  test('Idempotency-Key: a retry returns the same event; other content with the key is 409', async () => {
    const p = uniq('p');
    const body = { channel: `project:${p}`, aggregate_type: 'doc', aggregate_id: 'd1', event_type: 'doc.created', data: { a: 1 } };
    const key = crypto.randomUUID();
    const a = await post({ projects: [p] }, body, { 'Idempotency-Key': key });
    const b = await post({ projects: [p] }, body, { 'Idempotency-Key': key });
    assert.equal(a.status, 201);
    assert.equal(b.status, 201);
    assert.equal(b.json.eventId, a.json.eventId);
    assert.equal(b.json.position, a.json.position);
    const c = await post({ projects: [p] }, { ...body, data: { a: 2 } }, { 'Idempotency-Key': key });
    assert.equal(c.status, 409);
    assert.equal(c.json.error, 'idempotency_conflict');
  });

  test('errors map to statuses with a JSON body', async () => {
    const p = uniq('p');
    const ok = { channel: `project:${p}`, aggregate_type: 'doc', aggregate_id: uniq('d'), event_type: 'doc.created', data: {} };
    const claims = { projects: [p] };
    assert.equal((await post(claims, '{not json')).status, 400);
    const missing = await post(claims, { ...ok, event_type: undefined });
    assert.equal(missing.status, 400);
    assert.match(missing.json.message, /event_type/);
    assert.equal((await post(claims, { ...ok, data: [1] })).status, 400);
    const noToken = await request(d, '/api/events', { method: 'POST', body: ok });
    assert.equal(noToken.status, 401);
    assert.equal(noToken.json.error, 'unauthorized');
    const other = await post(claims, { ...ok, channel: 'project:someone-else' });
    assert.equal(other.status, 403);
    assert.equal((await post(claims, ok)).status, 201);
    const conflict = await post(claims, { ...ok, expected_version: 0 });
    assert.equal(conflict.status, 409);
    assert.equal(conflict.json.error, 'version_conflict');
    const big = await post(claims, { ...ok, data: { pad: 'x'.repeat(5000) } });
    assert.equal(big.status, 413);
    const type = uniq('typed.');
    await db.query(`SELECT evstream.register_event_type($1, '{"type":"object","required":["title"],
      "properties":{"title":{"type":"string"}}}'::jsonb)`, [type]);
    const invalid = await post(claims, { ...ok, aggregate_id: uniq('d'), event_type: type, data: { title: 5 } });
    assert.equal(invalid.status, 422);
    assert.equal(invalid.json.sqlstate, 'EV003');
    assert.match(invalid.json.message, /title/);
    assert.equal((await post(claims, { ...ok, aggregate_id: uniq('d'), event_type: type, data: { title: 't' } })).status, 201);
  });

  test('GET /api/events pages through history in log order, filtered by claims', async () => {
    const a = uniq('a'), b = uniq('b');
    const positions = [];
    for (let i = 0; i < 5; i++) {
      for (const [p, list] of [[a, positions], [b, null]]) {
        const r = await post({ projects: [a, b] }, { channel: `project:${p}`, aggregate_type: 'doc', aggregate_id: uniq('d'), event_type: 'doc.created', data: { i } });
        assert.equal(r.status, 201);
        if (list) list.push(r.json.position);
      }
    }
    const headers = auth({ projects: [a] });
    // Start just before our first event: `after` must be a position in the log.
    const before = (await db.query('SELECT max(position) AS p FROM evstream.events WHERE position < $1', [positions[0]])).rows[0].p;
    const page1 = await request(d, `/api/events?channel=project:${a}&after=${before}&limit=3`, { headers });
    assert.equal(page1.status, 200, page1.body);
    assert.deepEqual(page1.json.events.map((e) => e.position), positions.slice(0, 3));
    assert.ok(page1.json.events.every((e) => e.channel === `project:${a}`));
    const page2 = await request(d, `/api/events?channel=project:${a}&after=${page1.json.next}&limit=100`, { headers });
    assert.deepEqual(page2.json.events.map((e) => e.position), positions.slice(3));
    const forbidden = await request(d, `/api/events?channel=project:${b}`, { headers });
    assert.equal(forbidden.status, 403);
    const badLimit = await request(d, `/api/events?channel=project:${a}&limit=0`, { headers });
    assert.equal(badLimit.status, 400);
  });

  test('GET /api/streams/{type}/{id} returns one aggregate, 403 when its channel is not allowed', async () => {
    const p = uniq('p');
    const id = uniq('doc');
    for (const t of ['doc.created', 'doc.renamed', 'doc.renamed'])
      assert.equal((await post({ projects: [p] }, { channel: `project:${p}`, aggregate_type: 'doc', aggregate_id: id, event_type: t, data: {} })).status, 201);
    const r = await request(d, `/api/streams/doc/${id}`, { headers: auth({ projects: [p] }) });
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json.version, 3);
    assert.deepEqual(r.json.events.map((e) => [e.version, e.type]), [[1, 'doc.created'], [2, 'doc.renamed'], [3, 'doc.renamed']]);
    const tail = await request(d, `/api/streams/doc/${id}?after_version=2`, { headers: auth({ projects: [p] }) });
    assert.deepEqual(tail.json.events.map((e) => e.version), [3]);
    const other = await request(d, `/api/streams/doc/${id}`, { headers: auth({ projects: ['nope'] }) });
    assert.equal(other.status, 403);
  });

  test('CORS: allowed origin gets credentials headers, others get none', async () => {
    const pre = await request(d, '/api/events', {
      method: 'OPTIONS',
      headers: { Origin: 'http://app.example', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization, content-type, idempotency-key' },
    });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers['access-control-allow-origin'], 'http://app.example');
    assert.equal(pre.headers['access-control-allow-credentials'], 'true');
    assert.match(pre.headers['access-control-allow-methods'], /POST/);
    assert.match(pre.headers['access-control-allow-headers'], /Idempotency-Key/i);
    const get = await request(d, '/healthz', { headers: { Origin: 'http://app.example' } });
    assert.equal(get.headers['access-control-allow-origin'], 'http://app.example');
    const evil = await request(d, '/healthz', { headers: { Origin: 'http://evil.example' } });
    assert.equal(evil.headers['access-control-allow-origin'], undefined);
    const s = await openReady(d, { tokenValue: token({ sub: 'u' }), headers: { Origin: 'http://app.example' } });
    assert.equal(s.headers['access-control-allow-origin'], 'http://app.example');
    s.close();
  });

  test('static files from --web-root, never outside it', async () => {
    const index = await request(d, '/');
    assert.equal(index.status, 200);
    assert.match(index.headers['content-type'], /^text\/html/);
    assert.match(index.body, /<title>evstream<\/title>/);
    const js = await request(d, '/js/app.js');
    assert.equal(js.status, 200);
    assert.match(js.headers['content-type'], /^text\/javascript/);
    assert.equal(js.body, 'export const x = 1;\n');
    assert.equal((await request(d, '/missing.html')).status, 404);
    assert.equal((await request(d, '/../../etc/passwd')).status, 404);
    assert.equal((await request(d, '/%2e%2e/%2e%2e/etc/passwd')).status, 404);
    const head = await request(d, '/js/app.js', { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], String('export const x = 1;\n'.length));
    assert.equal((await request(d, '/api/nothing')).status, 404);
  });
});
