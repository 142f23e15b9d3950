// The browser client library (web/evstream.js) and the React hook (web/react.js), run in Node
// against a real evstreamd and the real cluster: no mock of the server.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import React from 'react';
import TestRenderer from 'react-test-renderer';
import { connect } from '../../web/evstream.js';
import { EventsProvider, useEvents, useConnectionState } from '../../web/react.js';
import { startDaemon, stopDaemon, token, waitFor, pgClient, postSql, uniq } from './lib/daemon.mjs';

let daemon;
let db;
before(async () => {
  db = pgClient();
  await db.connect();
  daemon = await startDaemon();
});
after(async () => {
  await stopDaemon(daemon);
  await db.end();
});

const stateOf = (client, state) => waitFor(() => client.connectionState === state, { what: `client ${state}` });

test('connect, subscribe by pattern, connection state, and post with an idempotency key', async () => {
  const project = uniq('web');
  const doc = uniq('doc_'); // aggregates are global across channels
  const client = connect({ url: daemon.url, token: token({ sub: 'u1', projects: [project] }), channels: [`project:${project}`] });
  const states = [];
  client.onStateChange((s) => states.push(s));
  const docs = [];
  const all = [];
  const unsubscribe = client.subscribe('document:*', (e) => docs.push(e));
  client.subscribe('*', (e) => all.push(e));
  try {
    await stateOf(client, 'open');
    const created = await client.post({
      channel: `project:${project}`, aggregate_type: 'document', aggregate_id: doc,
      event_type: 'document.created', data: { title: 'A' },
    }, { idempotencyKey: 'key-1' });
    assert.equal(created.type, 'document.created');
    assert.equal(created.createdBy, 'user:u1');
    const again = await client.post({
      channel: `project:${project}`, aggregate_type: 'document', aggregate_id: doc,
      event_type: 'document.created', data: { title: 'A' },
    }, { idempotencyKey: 'key-1' });
    assert.equal(again.eventId, created.eventId, 'a retry with the same key returns the same event');
    await client.post({ channel: `project:${project}`, aggregate_type: 'note', aggregate_id: uniq('n'), event_type: 'note.added' });
    await waitFor(() => all.some((e) => e.type === 'note.added'), { what: 'the note event' });
    assert.deepEqual(docs.map((e) => [e.type, e.entity, e.id, e.version]), [['document.created', 'document', doc, 1]],
      'document:* sees documents only, once');
    await assert.rejects(
      client.post({ channel: 'project:someone-else', aggregate_type: 'document', aggregate_id: 'x', event_type: 'document.created' }),
      (e) => e.status === 403);
    unsubscribe();
    await client.post({ channel: `project:${project}`, aggregate_type: 'document', aggregate_id: `${doc}b`, event_type: 'document.created' });
    await waitFor(() => all.some((e) => e.id === `${doc}b`), { what: 'doc_2 on the * subscription' });
    assert.equal(docs.length, 1, 'an unsubscribed callback gets nothing more');
    assert.deepEqual(states.slice(0, 1), ['open']);
  } finally {
    client.close();
  }
  assert.equal(client.connectionState, 'closed');
});

test('the client resumes by Last-Event-ID across a daemon restart: nothing lost, nothing twice', async () => {
  const project = uniq('resume');
  const channel = `project:${project}`;
  let d = await startDaemon();
  const port = d.port;
  const client = connect({ url: d.url, token: token({ sub: 'u2', projects: [project] }), channels: [channel], minBackoffMs: 50, maxBackoffMs: 200 });
  const got = [];
  client.subscribe('*', (e) => e.position && got.push(e.position));
  try {
    await stateOf(client, 'open');
    const first = await postSql(db, channel, 5);
    await waitFor(() => got.length === 5, { what: 'the first five events' });
    await stopDaemon(d);
    await waitFor(() => client.connectionState === 'connecting', { what: 'the client to notice' });
    const during = await postSql(db, channel, 5);
    d = await startDaemon({ port });
    await stateOf(client, 'open');
    const later = await postSql(db, channel, 3);
    await waitFor(() => got.length >= 13, { what: 'all thirteen events' });
    assert.deepEqual(got, [...first, ...during, ...later]);
  } finally {
    client.close();
    await stopDaemon(d);
  }
});

test('a bad token closes the client with an error event instead of retrying forever', async () => {
  const client = connect({ url: daemon.url, token: 'not-a-jwt', channels: ['project:x'] });
  const errors = [];
  client.subscribe('*', (e) => e.type === 'error' && errors.push(e));
  await stateOf(client, 'closed');
  assert.equal(errors[0].status, 401);
});

test('React: useEvents delivers matching events to a mounted component; useConnectionState follows the client', async () => {
  const project = uniq('react');
  const client = connect({ url: daemon.url, token: token({ sub: 'u3', projects: [project] }), channels: [`project:${project}`] });
  const seen = [];
  const states = [];
  const [t1, t2id, o1] = [uniq('t'), uniq('t'), uniq('o')];
  function Feed() {
    states.push(useConnectionState());
    useEvents('task:*', (e) => seen.push(e.type));
    return null;
  }
  let renderer;
  try {
    await TestRenderer.act(async () => {
      renderer = TestRenderer.create(React.createElement(EventsProvider, { client }, React.createElement(Feed)));
    });
    await stateOf(client, 'open');
    await waitFor(() => states.at(-1) === 'open', { what: 'the component to render open' });
    await postSql(db, `project:${project}`, 1, { type: 'task', id: t1, eventType: 'task.created' });
    await postSql(db, `project:${project}`, 1, { type: 'other', id: o1, eventType: 'other.created' });
    await postSql(db, `project:${project}`, 1, { type: 'task', id: t1, eventType: 'task.done' });
    await waitFor(() => seen.length === 2, { what: 'two task events' });
    assert.deepEqual(seen, ['task.created', 'task.done']);
    await TestRenderer.act(async () => renderer.unmount());
    let t2 = false;
    client.subscribe(`task:${t2id}`, () => { t2 = true; });
    await postSql(db, `project:${project}`, 1, { type: 'task', id: t2id, eventType: 'task.created' });
    await waitFor(() => t2, { what: 'task t2 to reach the client' });
  } finally {
    client.close();
  }
  assert.deepEqual(seen, ['task.created', 'task.done'], 'an unmounted component is unsubscribed');
});
