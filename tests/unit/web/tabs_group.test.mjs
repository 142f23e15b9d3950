// The tab-group protocol of web/tabs.js in Node: several clients ("tabs") in one process share a
// stream through Node's real BroadcastChannel and an in-process Web Locks stand-in, against an
// in-memory SSE server (fetch stand-in) that replays by Last-Event-ID like evstreamd. The real
// browser run is tests/browser/tabs.test.mjs; this one makes the hand-overs deterministic.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { Client } from '../../../web/evstream.js';

// Exclusive locks granted in request order; a holder keeps the lock until its callback settles.
class Locks {
  constructor() { this.queues = new Map(); }
  request(name, { signal }, callback) {
    return new Promise((resolve, reject) => {
      const q = this.queues.get(name) ?? [];
      this.queues.set(name, q);
      const entry = { callback, resolve, reject, held: false };
      q.push(entry);
      signal?.addEventListener('abort', () => {
        if (entry.held) return;
        q.splice(q.indexOf(entry), 1);
        reject(new DOMException('aborted', 'AbortError'));
      });
      this.grant(name);
    });
  }
  grant(name) {
    const q = this.queues.get(name);
    if (!q.length || q[0].held) return;
    const entry = q[0];
    entry.held = true;
    Promise.resolve().then(() => entry.callback()).then(entry.resolve, entry.reject).finally(() => {
      q.shift();
      this.grant(name);
    });
  }
}

// An SSE server in memory: events in order; a stream replays after Last-Event-ID, then goes live.
class Server {
  constructor() { this.events = []; this.streams = new Set(); this.opened = 0; }
  frame(e) { return `id: ${e.position}\nevent: probe.sent\ndata: ${JSON.stringify(e)}\n\n`; }
  append(channel, n = 1) {
    const out = [];
    for (let i = 0; i < n; i++) {
      const position = this.events.length + 1;
      const e = { type: 'probe.sent', channel, entity: 'probe', id: `p${position}`, position, eventId: crypto.randomUUID() };
      this.events.push(e);
      out.push(e);
      for (const s of this.streams) if (s.wants(e)) s.push(this.frame(e));
    }
    return out;
  }
  fetch = async (url, { headers, signal }) => {
    const u = new URL(url);
    const channels = u.searchParams.getAll('channel');
    const forbidden = channels.some((c) => c.startsWith('project:forbidden'));
    if (u.pathname === '/api/events') {  // history: only its 403 matters here
      this.historyChecks = (this.historyChecks ?? 0) + 1;
      return new Response(JSON.stringify(forbidden ? { error: 'forbidden' } : { events: [], next: 0 }),
        { status: forbidden ? 403 : 200, headers: { 'content-type': 'application/json' } });
    }
    if (forbidden) return new Response('{"error":"forbidden"}', { status: 403 });
    const after = headers['Last-Event-ID'];
    const encoder = new TextEncoder();
    let controller;
    const s = {
      wants: (e) => channels.length === 0 || channels.includes(e.channel),
      push: (text) => { try { controller.enqueue(encoder.encode(text)); } catch { /* closed */ } },
    };
    const body = new ReadableStream({ start: (c) => { controller = c; } });
    this.opened++;
    this.streams.add(s);
    signal.addEventListener('abort', () => {
      this.streams.delete(s);
      try { controller.error(new DOMException('aborted', 'AbortError')); } catch { /* closed */ }
    });
    const start = after ? this.events.findIndex((e) => String(e.position) === after) + 1 : this.events.length;
    const head = this.events.length ? this.events[this.events.length - 1].position : 0;
    s.push(`retry: 100\nid: ${after ?? head}\nevent: connected\ndata: {"type":"connected","connectionId":"c${this.opened}"}\n\n`);
    for (const e of this.events.slice(start)) if (s.wants(e)) s.push(this.frame(e));
    return new Response(body, { status: 200, headers: { 'content-type': 'text/event-stream' } });
  };
}

const waitUntil = async (cond, what, timeout = 5000) => {
  const deadline = Date.now() + timeout;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
};

function tab(server, locks, options = {}) {
  const client = new Client({ token: 'opaque-same-user', fetch: server.fetch, locks, BroadcastChannel,
    url: 'http://test', minBackoffMs: 10, ...options });
  const seen = [];
  client.subscribe('probe:*', (e) => seen.push(e.position));
  return { client, seen };
}

// Like closing a tab: no goodbye, the lock goes to the next tab, the fetch ends.
function crash(t) {
  t.client.group.closed = true;
  t.client.group.channel.close();
  t.client.closed = true;
  t.client.controller?.abort();
  t.client.group.releaseLead?.();
}

test('tabs share one stream; the leader goes away under load and the others lose nothing and see nothing twice', async () => {
  const server = new Server();
  const locks = new Locks();
  const tabs = [tab(server, locks)];
  await waitUntil(() => tabs[0].client.role === 'leader' && tabs[0].client.connectionState === 'open', 'a leader');
  for (let i = 0; i < 4; i++) tabs.push(tab(server, locks));
  await waitUntil(() => tabs.every((t) => t.client.connectionState === 'open'), 'every tab open');
  assert.deepEqual(tabs.map((t) => t.client.role), ['leader', 'follower', 'follower', 'follower', 'follower']);
  assert.equal(server.streams.size, 1);

  let live = tabs;
  for (let round = 0; round < 3; round++) {
    server.append('project:a', 5);
    const leader = live.find((t) => t.client.role === 'leader');
    crash(leader);
    server.append('project:a', 5);
    live = live.filter((t) => t !== leader);
    await waitUntil(() => live.some((t) => t.client.role === 'leader'), 'a new leader');
    server.append('project:a', 5);
    const want = server.events.map((e) => e.position);
    for (const t of live) await waitUntil(() => t.seen.length >= want.length, `round ${round}: every event ${JSON.stringify(live.map((x) => [x.client.role, x.client.connectionState, x.seen.join(",")]))}`);
    for (const t of live) assert.deepEqual(t.seen, want, `round ${round}: each event once, in order`);
    await waitUntil(() => server.streams.size === 1, 'one stream again');
  }
  for (const t of live) t.client.close();
});

test('a tab opened with an older lastEventId gets what it missed; a tab asking for another channel gets only that', async () => {
  const server = new Server();
  const locks = new Locks();
  server.append('project:a', 3);
  const a = tab(server, locks, { channels: ['project:a'], lastEventId: '3' });
  await waitUntil(() => a.client.connectionState === 'open', 'leader open');
  server.append('project:a', 3);  // 4..6
  await waitUntil(() => a.seen.length === 3, 'leader got 4..6');
  // From the frame log (5 is in it), and on a stream of its own from 1 (older than the log).
  const b = tab(server, locks, { channels: ['project:a'], lastEventId: '5' });
  const c = tab(server, locks, { channels: ['project:a'], lastEventId: '1' });
  await waitUntil(() => b.seen.length === 1 && c.seen.length === 5, 'both catch-ups');
  assert.deepEqual(b.seen, [6]);
  assert.deepEqual(c.seen, [2, 3, 4, 5, 6]);
  assert.deepEqual(a.seen, [4, 5, 6], 'the others saw nothing again');
  // Another channel: the stream grows to the union, each tab filters.
  const d = tab(server, locks, { channels: ['project:b'] });
  await waitUntil(() => d.client.connectionState === 'open', 'd open');
  server.append('project:b', 1);
  server.append('project:a', 1);
  await waitUntil(() => d.seen.length === 1 && a.seen.length === 4 && b.seen.length === 2 && c.seen.length === 6, 'after the union');
  assert.deepEqual(d.seen, [7]);
  assert.deepEqual([a.seen, b.seen, c.seen], [[4, 5, 6, 8], [6, 8], [2, 3, 4, 5, 6, 8]]);
  await waitUntil(() => server.streams.size === 1, 'the catch-up stream closed once it met the shared one');
  for (const t of [a, b, c, d]) t.client.close();
});

test('a tab asking for a channel its token does not allow is refused alone', async () => {
  const server = new Server();
  const locks = new Locks();
  const a = tab(server, locks, { channels: ['project:a'] });
  await waitUntil(() => a.client.connectionState === 'open', 'leader open');
  const errors = [];
  const bad = tab(server, locks, { channels: ['project:forbidden'] });
  bad.client.subscribe('*', (e) => e.type === 'error' && errors.push(e.status));
  await waitUntil(() => bad.client.connectionState === 'closed', 'the bad tab closed');
  assert.deepEqual(errors, [403]);
  assert.equal(server.historyChecks, 1, 'checked through history, not by breaking the shared stream');
  const b = tab(server, locks, { channels: ['project:a'] });
  await waitUntil(() => b.client.connectionState === 'open', 'another tab still joins');
  server.append('project:a', 1);
  await waitUntil(() => a.seen.length === 1 && b.seen.length === 1, 'both get the event');
  assert.equal(a.client.connectionState, 'open');
  for (const t of [a, b]) t.client.close();
});

test('with getToken and no token, the group is chosen by the token it returns (refreshed tokens of one user share)', async () => {
  const server = new Server();
  const locks = new Locks();
  const b64u = (x) => Buffer.from(JSON.stringify(x)).toString('base64url');
  let n = 0;
  const tokenOf = (sub) => () => `${b64u({ alg: 'HS256' })}.${b64u({ sub, exp: 1000 + n++ })}.sig`;
  const a = tab(server, locks, { token: undefined, getToken: tokenOf('u1') });
  const b = tab(server, locks, { token: undefined, getToken: tokenOf('u1') });
  const c = tab(server, locks, { token: undefined, getToken: tokenOf('u2') });
  await waitUntil(() => [a, b, c].every((t) => t.client.connectionState === 'open'), 'all open');
  assert.deepEqual([a.client.role, b.client.role].sort(), ['follower', 'leader']);
  assert.equal(c.client.role, 'leader', 'another user: a group of its own');
  assert.equal(server.streams.size, 2);
  for (const t of [a, b, c]) t.client.close();
});

test('share: false and different identities stream alone', async () => {
  const server = new Server();
  const locks = new Locks();
  const a = tab(server, locks, { share: false });
  const b = tab(server, locks, { token: 'another-user' });
  const c = tab(server, locks);
  await waitUntil(() => [a, b, c].every((t) => t.client.connectionState === 'open'), 'all open');
  assert.deepEqual([a.client.role, b.client.role, c.client.role], ['single', 'leader', 'leader']);
  assert.equal(server.streams.size, 3);
  for (const t of [a, b, c]) t.client.close();
});
