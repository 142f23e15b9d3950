// The client's ephemeral-event parts: pattern matching without an entity, ids untouched by
// ephemeral frames, and AnswerStream (chunks, then the stored final event replaces them).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AnswerStream, Client, matches } from '../../../web/evstream.js';

const chunk = (streamId, text, done = false) =>
  ({ type: 'ai_chat_chunk', channel: 'project:p', entity: null, id: null, ephemeral: true, data: { streamId, text, done } });
const stored = (streamId, text, position = 9) =>
  ({ type: 'ai_chat', channel: 'project:p', entity: 'chat', id: 'c1', position, eventId: 'e-' + position, data: { streamId, text } });

test('ephemeral events without entity match * and their type only', () => {
  const typing = { type: 'typing', entity: null, id: null };
  assert.equal(matches('*', typing), true);
  assert.equal(matches('typing', typing), true);
  assert.equal(matches('presence', typing), false);
  assert.equal(matches('document:*', typing), false);
  assert.equal(matches('note:n1', { type: 'flash', entity: 'note', id: 'n1' }), true, 'with an entity: as stored events');
});

test('client: ephemeral frames reach subscribers and never move lastEventId', () => {
  const client = new Client({ fetch: () => new Promise(() => {}) });
  const seen = [];
  client.subscribe('typing', (e) => seen.push(['typing', e.data.userId]));
  client.subscribe('*', (e) => seen.push(['*', e.type]));
  client.subscribe('doc:*', (e) => seen.push(['doc', e.type]));
  client.dispatch({ id: '41', event: 'doc.created', data: JSON.stringify({ type: 'doc.created', entity: 'doc', id: 'd1' }) });
  client.dispatch({ id: undefined, event: 'typing', data: JSON.stringify({ type: 'typing', entity: null, id: null, data: { userId: 'ann', isTyping: true } }) });
  assert.equal(client.lastEventId, '41');
  assert.deepEqual(seen, [['*', 'doc.created'], ['doc', 'doc.created'], ['typing', 'ann'], ['*', 'typing']]);
  client.close();
});

test('AnswerStream: chunks append in order, the stored final replaces them, late chunks are ignored', () => {
  const updates = [];
  const s = new AnswerStream({ onUpdate: (a) => updates.push([a.text, a.done, Boolean(a.final)]) });
  s.handle(chunk('s1', 'Hel'));
  s.handle(chunk('s2', 'other'));
  s.handle(chunk('s1', 'lo'));
  s.handle(chunk('s1', '!', true));
  assert.deepEqual(updates.filter((u) => u[0] !== 'other'), [['Hel', false, false], ['Hello', false, false], ['Hello!', true, false]]);
  s.handle(stored('s1', 'Hello! (stored)'));
  s.handle(chunk('s1', ' late'));
  const a = s.answers.get('s1');
  assert.equal(a.text, 'Hello! (stored)');
  assert.equal(a.final.position, 9);
  assert.equal(s.answers.get('s2').text, 'other');
  assert.equal(s.handle({ type: 'doc.created', data: {} }), null, 'unrelated events are ignored');
});

test('AnswerStream: a final that arrives before any chunk wins', () => {
  const s = new AnswerStream();
  s.handle(stored('s3', 'all at once'));
  s.handle(chunk('s3', 'partial'));
  assert.equal(s.answers.get('s3').text, 'all at once');
  assert.equal(s.answers.get('s3').chunks, 0);
});
