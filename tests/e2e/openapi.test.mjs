// GET /api/openapi.json against what evstreamd really answers (issue 7): every documented
// operation is called (authorised and not), each answer's status must be documented for it, and
// a JSON answer must carry the documented schema's required top-level fields.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { pgClient, request, startDaemon, stopDaemon, token, uniq } from './lib/daemon.mjs';

let d;
let db;
before(async () => {
  db = pgClient();
  await db.connect();
  d = await startDaemon();
});
after(async () => {
  await stopDaemon(d);
  await db.end();
});

function resolve(doc, schema) {
  return schema?.$ref ? doc.components.schemas[schema.$ref.split('/').pop()] : schema;
}

test('every documented operation answers with a documented status and the documented fields', async () => {
  const specRes = await request(d, '/api/openapi.json');
  assert.equal(specRes.status, 200);
  const doc = specRes.json;
  assert.equal(doc.openapi, '3.0.3');
  const p = uniq('p');
  const claims = { sub: 'oa', projects: [p], roles: ['worker'] };
  const ev = (await db.query(`SELECT id, position FROM evstream.post_event($1, 'oa', 'o1', 'oa.created')`, [`project:${p}`])).rows[0];
  const consumer = uniq('oac');
  // Concrete requests for each templated path; bodies for POSTs.
  const concrete = {
    '/api/events/{eventId}': `/api/events/${ev.id}`,
    '/api/streams/{aggregateType}/{aggregateId}': '/api/streams/oa/o1',
    '/api/consumers/{name}/claim': `/api/consumers/${consumer}/claim`,
    '/api/consumers/{name}/ack': `/api/consumers/${consumer}/ack`,
    '/api/consumers/{name}/fail': `/api/consumers/${consumer}/fail`,
    '/api/presence': `/api/presence?channel=project:${p}`,
    '/api/events/stream': `/api/events/stream?channel=project:${p}`,
  };
  const bodies = {
    'post /api/events': { channel: `project:${p}`, aggregate_type: 'oa', aggregate_id: 'o2', event_type: 'oa.created' },
    'post /api/publish': { channel: `project:${p}`, type: 'oa.flash', data: {} },
    'post /api/consumers/{name}/claim': { max_count: 1 },
    'post /api/consumers/{name}/ack': { position: Number(ev.position) },
    'post /api/consumers/{name}/fail': { position: Number(ev.position), error: 'x' },
  };
  let checked = 0;
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const url = concrete[path] ?? path;
      const secured = !(Array.isArray(op.security) && op.security.length === 0);
      const variants = secured ? [{ headers: { Authorization: `Bearer ${token(claims)}` } }, { headers: {} }] : [{ headers: {} }];
      for (const v of variants) {
        const body = bodies[`${method} ${path}`];
        let r;
        if (path === '/api/events/stream' && v.headers.Authorization) {
          // a stream never ends: check the head only
          r = await new Promise((res, rej) => {
            import('node:http').then(({ default: http }) => {
              const req = http.get(`${d.url}${url}`, { headers: { ...v.headers, Accept: 'text/event-stream' } }, (resp) => {
                res({ status: resp.statusCode, headers: resp.headers });
                req.destroy();
              });
              req.on('error', rej);
            });
          });
        } else {
          r = await request(d, url, { method: method.toUpperCase(), headers: { ...v.headers, 'Content-Type': 'application/json' }, body });
        }
        const documented = op.responses[String(r.status)];
        assert.ok(documented, `${method.toUpperCase()} ${url} (${v.headers.Authorization ? 'token' : 'no token'}) answered ${r.status}, documented: ${Object.keys(op.responses)} ${r.body ?? ''}`);
        const schema = resolve(doc, documented.content?.['application/json']?.schema);
        if (schema?.required) {
          assert.ok(r.json && typeof r.json === 'object', `${method} ${url} ${r.status}: JSON body expected`);
          for (const field of schema.required) assert.ok(field in r.json, `${method} ${url} ${r.status}: missing "${field}" in ${r.body}`);
        }
        if (documented.content?.['text/event-stream']) assert.match(r.headers['content-type'], /text\/event-stream/);
        checked++;
      }
    }
  }
  assert.ok(checked >= 25, `checked ${checked} answers`);
});
