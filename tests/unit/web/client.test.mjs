// The client library's pure parts: SSE parsing and pattern matching.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, SseParser, matches } from '../../../web/evstream.js';

function parse(chunks) {
  const out = [];
  const p = new SseParser((f) => out.push(f));
  for (const c of chunks) p.push(c);
  return out;
}

test('parses id, event and data, and joins multi-line data with \\n', () => {
  const frames = parse(['id: 7\nevent: document.created\ndata: {"a":\ndata: 1}\n\n']);
  assert.deepEqual(frames, [{ event: 'document.created', data: '{"a":\n1}', id: '7', retry: undefined }]);
});

test('handles frames split anywhere across chunks, including between \\r and \\n', () => {
  const text = 'event: a\r\ndata: héllo ✓\r\n\r\nid: 2\rdata: x\r\r\n';
  for (let cut = 1; cut < text.length; cut++) {
    const frames = parse([text.slice(0, cut), text.slice(cut)]);
    assert.deepEqual(frames.map((f) => [f.event, f.data, f.id]), [['a', 'héllo ✓', undefined], ['message', 'x', '2']], `cut at ${cut}`);
  }
});

test('ignores comments and keeps retry hints', () => {
  const frames = parse([': heartbeat comment\nretry: 3000\n\n']);
  assert.deepEqual(frames, [{ event: '', data: '', id: undefined, retry: 3000 }]);
});

test('a data line without a space after the colon keeps its text', () => {
  assert.equal(parse(['data:x\n\n'])[0].data, 'x');
});

test('pattern matching on entity and id', () => {
  const ev = { entity: 'document', id: 'doc_1' };
  assert.ok(matches('*', ev));
  assert.ok(matches('document:*', ev));
  assert.ok(matches('document:doc_1', ev));
  assert.ok(matches('document:doc_*', ev));
  assert.ok(matches('document', ev));
  assert.ok(!matches('document:doc_2', ev));
  assert.ok(!matches('submission:*', ev));
});

// The client's resume position follows every id the server sends: connected, reset, id-only.
test('lastEventId keeps the connected, reset and id-only frames\' ids', () => {
  const never = () => new Promise(() => {});
  const client = new Client({ url: 'http://x', fetch: never });
  const feed = (text) => new SseParser((f) => client.dispatch(f)).push(text);
  feed('retry: 2000\nid: 41\nevent: connected\ndata: {"type":"connected","connectionId":"c","channels":[]}\n\n');
  assert.equal(client.lastEventId, '41');
  feed('id: 57\nevent: reset\ndata: {"type":"reset","reason":"unknown position","lastEventId":"9","position":57}\n\n');
  assert.equal(client.lastEventId, '57', 'the reset id is kept');
  feed('id: 60\n\n');
  assert.equal(client.lastEventId, '60', 'an id-only frame moves the position');
  feed('event: reset\ndata: {"type":"reset","reason":"unknown position","position":0}\n\n');
  assert.equal(client.lastEventId, null, 'a reset without an id starts live');
  client.close();
});
