// The demo chat room (issue 7): messages are stored events (chat/lobby, chat.message); the demo
// AI's reply streams in as ephemeral ai_chat_chunk events and is replaced by its stored ai_chat
// event (AnswerStream); typing indicators and the online list are ephemeral too (typing,
// presence) and work across evstreamd instances.
import { AnswerStream, renderAnswer } from '/evstream.js';

const ROOM = { aggregate_type: 'chat', aggregate_id: 'lobby' };
const TYPING_REFRESH_MS = 2000;
const $ = (id) => document.getElementById(id);

function subOf(token) {
  try {
    return JSON.parse(atob(token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/'))).sub ?? null;
  } catch {
    return null;
  }
}

export async function startChat(client, { channel, token, headers }) {
  const me = token ? subOf(token) : null;
  const list = $('chat-messages');
  const shown = new Set();   // eventIds of stored messages on the page
  const answerEls = new Map(); // streamId -> element
  const online = new Set();
  const typing = new Map();  // userId -> timer
  window.chatStats = { chunks: 0, finals: 0 }; // for tests and curious users

  const scroll = () => { list.scrollTop = list.scrollHeight; };
  const message = (event) => {
    if (shown.has(event.eventId)) return;
    shown.add(event.eventId);
    const li = document.createElement('li');
    const author = String(event.createdBy ?? '').replace(/^user:/, '');
    li.className = `chat-msg ${author === me ? 'mine' : ''}`;
    li.dataset.testid = 'chat-message';
    li.dataset.author = author;
    const a = document.createElement('span');
    a.className = 'author';
    a.textContent = author;
    const text = document.createElement('span');
    text.className = 'text';
    text.textContent = event.data?.text ?? '';
    li.append(a, text);
    // Ephemeral and stored events have no order between them: the reply's first chunk (its
    // streamId is this message's eventId) can arrive before the message itself.
    const reply = answerEls.get(event.eventId);
    if (reply) list.insertBefore(li, reply);
    else list.append(li);
    scroll();
  };
  const answerElement = (streamId) => {
    let li = answerEls.get(streamId);
    if (!li) {
      li = document.createElement('li');
      li.className = 'chat-msg assistant';
      li.dataset.testid = 'chat-answer';
      li.dataset.streamId = streamId;
      answerEls.set(streamId, li);
      list.append(li);
    }
    return li;
  };
  const answers = new AnswerStream({
    onUpdate: (answer) => {
      const li = answerElement(answer.streamId);
      renderAnswer(li, answer);
      if (answer.final) shown.add(answer.final.eventId);
      scroll();
    },
  });

  const renderOnline = () => {
    $('online').replaceChildren(...[...online].sort().map((u) => {
      const li = document.createElement('li');
      li.textContent = u;
      li.dataset.testid = 'online-user';
      return li;
    }));
  };
  const renderTyping = () => {
    const names = [...typing.keys()].filter((u) => u !== me);
    $('typing').textContent = names.length ? `${names.join(', ')} ${names.length > 1 ? 'are' : 'is'} typing…` : '';
  };

  client.subscribe('presence', (e) => {
    if (e.channel !== channel) return;
    if (e.data.action === 'join') online.add(e.data.userId);
    else online.delete(e.data.userId);
    renderOnline();
  });
  client.subscribe('typing', (e) => {
    if (e.channel !== channel) return;
    clearTimeout(typing.get(e.data.userId));
    if (e.data.isTyping) typing.set(e.data.userId, setTimeout(() => { typing.delete(e.data.userId); renderTyping(); }, 10000));
    else typing.delete(e.data.userId);
    renderTyping();
  });
  client.subscribe('*', (e) => {
    if (e.type === 'ai_chat_chunk') window.chatStats.chunks++;
    if (e.type === 'ai_chat' && e.position !== undefined) window.chatStats.finals++;
    if (e.type === 'ai_chat_chunk' || e.type === 'ai_chat') answers.handle(e);
  });
  client.subscribe('chat:lobby', (e) => {
    if (e.type === 'chat.message') message(e);
  });

  // Typing: refresh while typing, stop on send (the server expires a forgotten one).
  let lastTyping = 0;
  $('chat-input').addEventListener('input', () => {
    const now = Date.now();
    if ($('chat-input').value && now - lastTyping > TYPING_REFRESH_MS) {
      lastTyping = now;
      client.setTyping(channel, true).catch(() => {});
    }
  });
  $('chat-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const text = $('chat-input').value.trim();
    if (!text) return;
    $('chat-input').value = '';
    lastTyping = 0;
    client.setTyping(channel, false).catch(() => {});
    await client.post({ channel, ...ROOM, event_type: 'chat.message', data: { text },
                        display: { role: 'user', content: text } });
  });

  // History of the room, then who is here now.
  const r = await fetch(`/api/streams/chat/lobby`, { headers });
  if (r.ok) {
    for (const e of (await r.json()).events) {
      if (e.type === 'chat.message') message(e);
      else if (e.type === 'ai_chat') answers.handle(e);
    }
  }
  for (const m of await client.presence(channel)) online.add(m.userId);
  renderOnline();
}
