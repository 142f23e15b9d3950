// The pure parts of one stream per browser (web/tabs.js): who may share, what the shared stream
// asks for, what each tab may see, the frame log, and how a joining tab is brought in line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FrameLog, covers, groupKey, identityOf, needOf, planJoin, unionNeeds, wants } from '../../../web/tabs.js';

const b64u = (x) => Buffer.from(JSON.stringify(x)).toString('base64url');
const jwt = (claims) => `${b64u({ alg: 'HS256', typ: 'JWT' })}.${b64u(claims)}.c2ln`;
const URL = 'http://127.0.0.1:8080/';

test('a refreshed token of the same user keeps the group; another user, other grants or another daemon do not', async () => {
  const alice1 = jwt({ sub: 'alice', projects: ['p1'], exp: 100, iat: 1, jti: 'a' });
  const alice2 = jwt({ projects: ['p1'], sub: 'alice', exp: 200, iat: 2, jti: 'b', nbf: 2 });
  assert.equal(identityOf(URL, alice1), identityOf(URL, alice2), 'exp/iat/nbf/jti and key order do not count');
  assert.equal(await groupKey(URL, alice1), await groupKey(URL, alice2));
  const others = [
    [URL, jwt({ sub: 'bob', projects: ['p1'], exp: 100 })],
    [URL, jwt({ sub: 'alice', projects: ['p1', 'p2'], exp: 100 })],
    [URL, jwt({ sub: 'alice', projects: ['p1'], iss: 'other', exp: 100 })],
    ['http://127.0.0.1:9090/', alice1],
    [URL, undefined],
    [URL, 'opaque-token'],
  ];
  const keys = new Set([await groupKey(URL, alice1)]);
  for (const [u, t] of others) keys.add(await groupKey(u, t));
  assert.equal(keys.size, others.length + 1, 'every identity has its own key');
  assert.match(await groupKey(URL, alice1), /^evstream:[0-9a-f]{64}$/, 'a SHA-256, not the claims');
  assert.notEqual(identityOf(URL, 'a.b.c'), identityOf(URL, 'a.b.d'), 'an undecodable token counts whole');
});

test('the shared stream asks for the union; [] means all and wins', () => {
  assert.deepEqual(unionNeeds([needOf(['project:a']), needOf(['project:b', 'project:a'])]),
    { channels: ['project:a', 'project:b'], topics: [] });
  assert.deepEqual(unionNeeds([needOf(['project:a'], ['doc:*']), needOf(['project:b'], ['task:1'])]),
    { channels: ['project:a', 'project:b'], topics: ['doc:*', 'task:1'] });
  assert.deepEqual(unionNeeds([needOf(['project:a'], ['doc:*']), needOf([], [])]), { channels: [], topics: [] });
  assert.ok(covers(needOf([]), needOf(['project:a'])));
  assert.ok(covers(needOf(['project:a', 'project:b']), needOf(['project:a'])));
  assert.ok(!covers(needOf(['project:a']), needOf(['project:b'])));
  assert.ok(!covers(needOf(['project:a']), needOf([])), 'all channels is more than one');
  assert.ok(!covers(needOf([], ['doc:*']), needOf([], [])), 'all topics is more than doc:*');
});

test('a tab sees only what its own request would have delivered', () => {
  const ev = (channel, entity, id) => ({ channel, entity, id, type: 'x' });
  const need = needOf(['project:a', 'channel:team-*'], ['doc:*']);
  assert.ok(wants(need, ev('project:a', 'doc', '1')));
  assert.ok(wants(need, ev('channel:team-red', 'doc', '1')), 'a requested pattern covers its prefix');
  assert.ok(!wants(need, ev('project:b', 'doc', '1')), 'another channel');
  assert.ok(!wants(need, ev('project:a', 'task', '1')), 'another topic');
  assert.ok(wants(need, { channel: 'project:a', type: 'typing', data: {} }), 'topics do not filter events without an entity (as the daemon)');
  assert.ok(!wants(need, { channel: 'project:b', type: 'typing', data: {} }));
  assert.ok(wants(needOf([], []), ev('user:u', 'doc', '9')));
});

const frame = (id, event = 'thing.done') => ({ id: String(id), event, data: JSON.stringify({ position: id }) });

test('the frame log: replays of stored events are refused, control frames are not', () => {
  const log = new FrameLog(100);
  log.mark('10');
  assert.ok(log.add({ id: '10', event: 'connected', data: '{}' }));
  assert.ok(log.add(frame(11)));
  assert.ok(log.add(frame(13)));
  assert.ok(!log.add(frame(11)), 'a replayed event');
  assert.ok(log.add({ id: '11', event: 'connected', data: '{}' }), 'a reconnect\'s connected frame');
  assert.ok(log.seen('13'));
  assert.deepEqual(log.after('11').map((f) => f.event), [], 'after the last occurrence');
  assert.deepEqual(log.after('10').map((f) => f.id), ['11', '13', '11']);
  assert.equal(log.after('12'), null);
  assert.equal(log.maxNumeric, 13);
});

test('the frame log is bounded', () => {
  const log = new FrameLog(3);
  for (const p of [1, 2, 3, 4, 5]) log.add(frame(p));
  assert.equal(log.size, 3);
  assert.ok(!log.seen('1') && !log.seen('2') && log.seen('5'));
  assert.equal(log.after('1'), null);
});

test('a joining tab: live, catch-up from the log, skip ahead, or a catch-up stream of its own', () => {
  const log = new FrameLog();
  log.mark('40');
  for (const p of [41, 42, 44, 43]) log.add(frame(p));
  assert.deepEqual(planJoin(log, null), { mode: 'live' });
  assert.deepEqual(planJoin(log, '43'), { mode: 'live' }, 'at the head');
  const c = planJoin(log, '42');
  assert.equal(c.mode, 'catchup');
  assert.deepEqual(c.frames.map((f) => f.id), ['44', '43'], 'in stream order, not by number');
  assert.deepEqual(planJoin(log, '40').frames.map((f) => f.id), ['41', '42', '44', '43']);
  assert.deepEqual(planJoin(log, '50'), { mode: 'skip', until: '50' }, 'history read ahead of the stream');
  assert.deepEqual(planJoin(log, '7'), { mode: 'own', from: '7' }, 'older than the log');
  assert.deepEqual(planJoin(log, 'garbage'), { mode: 'own', from: 'garbage' }, 'the daemon answers reset');
  assert.deepEqual(planJoin(new FrameLog(), '5'), { mode: 'own', from: '5' });
});
