// The live chat-thread demo: jobs ("submissions") whose status follows their events, one chat
// thread per job where every event with a `display` is a bubble, and a live progress bar.
// Initial state comes from GET /api/events (history in the gap-free order); the stream then
// continues from the last position loaded, so nothing is missed between the two.
import { connect } from '/evstream.js';
import { startChat } from '/demo/chat.js';

const CHANNEL = 'project:demo';
const params = new URLSearchParams(location.hash.slice(1) || location.search.slice(1));
const token = params.get('token') ?? sessionStorage.getItem('evstream-demo-token') ?? undefined;
if (token) sessionStorage.setItem('evstream-demo-token', token);
const authHeaders = token ? { Authorization: `Bearer ${token}` } : {};

const submissions = new Map(); // id -> { id, title, status, progress, events: [] }
let selected = null;
const $ = (id) => document.getElementById(id);

const STATUS = {
  'submission.created': 'created',
  'submission.processing': 'processing',
  'submission.completed': 'completed',
  'submission.failed': 'failed',
};

function apply(event) {
  if (event.entity !== 'submission') return;
  let s = submissions.get(event.id);
  if (!s) {
    s = { id: event.id, title: event.id, status: null, progress: 0, events: [] };
    submissions.set(event.id, s);
  }
  if (s.events.some((e) => e.eventId === event.eventId)) return; // history/stream overlap guard
  s.events.push(event);
  if (event.data?.title) s.title = event.data.title;
  if (STATUS[event.type]) s.status = STATUS[event.type];
  if (typeof event.data?.progress === 'number') s.progress = event.data.progress;
  if (event.type === 'submission.completed') s.progress = 100;
  if (!selected) selected = s.id;
}

function renderList() {
  const list = $('submission-list');
  list.replaceChildren(
    ...[...submissions.values()].reverse().map((s) => {
      const li = document.createElement('li');
      li.dataset.testid = 'submission';
      li.dataset.id = s.id;
      li.className = s.id === selected ? 'selected' : '';
      li.innerHTML = `<div class="row"><span class="title"></span><span class="status"></span></div>
        <div class="progress"><div class="bar"></div><span class="value"></span></div>`;
      li.querySelector('.title').textContent = s.title;
      const status = li.querySelector('.status');
      status.textContent = s.status ?? '…';
      status.className = `status ${s.status ?? ''}`;
      status.dataset.testid = 'status';
      li.querySelector('.bar').style.width = `${s.progress}%`;
      li.querySelector('.value').textContent = `${s.progress}%`;
      li.onclick = () => {
        selected = s.id;
        render();
      };
      return li;
    }),
  );
}

function bubble(event) {
  const li = document.createElement('li');
  const role = ['user', 'assistant', 'system'].includes(event.display.role) ? event.display.role : 'system';
  li.className = `bubble ${role}`;
  li.dataset.testid = 'bubble';
  li.dataset.role = role;
  li.dataset.type = event.type;
  if (event.display.color && role !== 'user') li.style.borderLeft = `4px solid ${event.display.color}`;
  const icon = document.createElement('span');
  icon.className = 'icon';
  icon.textContent = event.display.icon ?? '';
  const body = document.createElement('div');
  const content = document.createElement('span');
  content.className = 'content';
  content.textContent = typeof event.display.content === 'string' ? event.display.content : JSON.stringify(event.display.content);
  const meta = document.createElement('span');
  meta.className = 'meta';
  meta.textContent = `${event.type} · v${event.version} · ${new Date(event.timestamp).toLocaleTimeString()}`;
  body.append(content, meta);
  li.append(icon, body);
  return li;
}

function renderThread() {
  const s = submissions.get(selected);
  const thread = $('thread');
  if (!s) return;
  $('thread-title').textContent = s.title;
  const progress = $('thread-progress');
  progress.classList.toggle('hidden', s.status === null || s.status === 'created');
  progress.querySelector('.bar').style.width = `${s.progress}%`;
  progress.querySelector('.value').textContent = `${s.progress}%`;
  progress.dataset.value = String(s.progress);
  const atBottom = thread.scrollHeight - thread.scrollTop - thread.clientHeight < 40;
  thread.replaceChildren(...s.events.filter((e) => e.display).map(bubble));
  if (atBottom || true) thread.scrollTop = thread.scrollHeight; // follow new bubbles
}

let pending = false;
function render() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => {
    pending = false;
    renderList();
    renderThread();
  });
}

function showState(state) {
  const el = $('connection');
  el.className = `connection ${state}`;
  el.querySelector('.label').textContent = state;
  el.dataset.state = state;
}

// The daemon refused the page's token (or there is none): the page explains how to get one.
class TokenNeeded extends Error {
  constructor(body) {
    super(body?.message ?? 'unauthorized');
  }
}

// Loads the history page by page; returns the position the stream resumes after. `next` is a
// safe Last-Event-ID even when the channel has no events yet ("0": the stream then replays from
// the start, so nothing committed between this read and the stream's start is missed).
async function loadHistory() {
  let after = 0;
  for (;;) {
    const r = await fetch(`/api/events?channel=${encodeURIComponent(CHANNEL)}&after=${after}&limit=500`, { headers: authHeaders });
    if (r.status === 401) throw new TokenNeeded(await r.json().catch(() => null));
    if (!r.ok) throw new Error(`history: HTTP ${r.status}`);
    const body = await r.json();
    for (const e of body.events) apply(e);
    const next = Number(body.next ?? (body.events.length ? body.events[body.events.length - 1].position : after));
    if (body.events.length < 500 || next === after) return String(next);
    after = next;
  }
}

function showTokenHelp(error) {
  $('thread-title').textContent = token ? 'The token was refused' : 'This demo needs a token';
  const help = $('token-help');
  help.classList.remove('hidden');
  help.querySelector('[data-testid="token-reason"]').textContent = token
    ? `The server said: ${error.message}. Tokens expire; get a fresh one as below.`
    : 'The page was opened without a token, so the server answers 401 to everything.';
}

async function main() {
  showState('connecting');
  const lastEventId = await loadHistory();
  render();
  // The tabs of this browser share one stream (web/tabs.js); #share=0 gives this tab its own.
  const client = connect({ url: '', token, channels: [CHANNEL], lastEventId, share: params.get('share') !== '0' });
  window.evstreamClient = client; // for tests and curious users
  client.onStateChange(showState);
  client.subscribe('submission:*', (e) => {
    apply(e);
    render();
  });
  client.subscribe('*', (e) => {
    if (e.type === 'reset') location.reload();
  });
  startChat(client, { channel: CHANNEL, token, headers: authHeaders }).catch((e) => console.error('chat', e));
  $('new-job').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const title = $('job-title').value.trim();
    if (!title) return;
    const id = `job_${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
    selected = id;
    $('job-title').value = '';
    await client.post({
      channel: CHANNEL, aggregate_type: 'submission', aggregate_id: id, event_type: 'submission.created',
      data: { title }, display: { role: 'user', content: `Please generate “${title}”`, icon: '▶' },
    });
  });
}

main().catch((e) => {
  showState('closed');
  if (e instanceof TokenNeeded) showTokenHelp(e);
  else $('thread-title').textContent = `Could not start: ${e.message}`;
});
