// evstream browser (and Node 20+) client: live events over Server-Sent Events with resume.
//
//   import { connect } from './evstream.js';
//   const client = connect({ url: 'http://127.0.0.1:8080', token, channels: ['project:p1'] });
//   const off = client.subscribe('document:*', (event) => render(event));
//   client.onStateChange((state) => indicator.textContent = state);  // connecting | open | closed
//   await client.post({ channel: 'project:p1', aggregate_type: 'document', aggregate_id: 'doc_1',
//                       event_type: 'document.renamed', data: { title: 'B' } });
//
// The stream is read with fetch() so the token travels in the Authorization header (EventSource
// cannot set headers). On any disconnect the client reconnects with backoff and sends
// Last-Event-ID, so the server replays what was missed: nothing lost, nothing twice.
//
// Tokens expire. Give `getToken` (a function returning a token or a promise of one) and the
// client asks it for a fresh token when the server ends the stream with `event: reauth` (the
// token's exp was reached), when a request or the stream answers 401, and before the first
// connection when no `token` is given; it then resumes from the last id, so a refresh loses
// nothing and repeats nothing.
//
// In a browser, the tabs of one origin that stream for the same identity share one server stream
// (see web/tabs.js): one tab leads and passes the frames on; each tab keeps its own
// subscriptions, channels and topics. `share: false` gives the tab a stream of its own.

import { TabGroup, sharingEnvironment } from './tabs.js';

const RESERVED = new Set(['connected', 'heartbeat', 'reset', 'overflow', 'reauth']);

// Splits an SSE byte stream into events (WHATWG "event stream interpretation").
export class SseParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buffer = '';
    this.reset();
  }
  reset() {
    this.data = [];
    this.event = '';
    this.id = undefined;
    this.retry = undefined;
  }
  push(text) {
    this.buffer += text;
    const re = /\r\n|\r|\n/g;
    let start = 0;
    let m;
    while ((m = re.exec(this.buffer))) {
      // A trailing lone \r may be the first half of \r\n: wait for the next chunk.
      if (m[0] === '\r' && m.index === this.buffer.length - 1) break;
      this.line(this.buffer.slice(start, m.index));
      start = m.index + m[0].length;
    }
    this.buffer = this.buffer.slice(start);
  }
  line(line) {
    if (line === '') {
      if (this.data.length > 0 || this.event) {
        this.onEvent({ event: this.event || 'message', data: this.data.join('\n'), id: this.id, retry: this.retry });
      } else if (this.retry !== undefined || this.id !== undefined) {
        this.onEvent({ event: '', data: '', id: this.id, retry: this.retry });
      }
      this.reset();
      return;
    }
    if (line.startsWith(':')) return; // comment
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.event = value;
    else if (field === 'id' && !value.includes('\0')) this.id = value;
    else if (field === 'retry' && /^\d+$/.test(value)) this.retry = Number(value);
  }
}

// Does `pattern` ('*', 'document:*', 'document:doc_1') match an event's entity and id?
// Ephemeral events without an entity (presence, typing, …) match '*' and their own type.
export function matches(pattern, event) {
  if (pattern === '*') return true;
  if (event.entity == null) return pattern === event.type;
  const colon = pattern.indexOf(':');
  const entity = colon < 0 ? pattern : pattern.slice(0, colon);
  const id = colon < 0 ? '*' : pattern.slice(colon + 1);
  if (entity !== '*' && entity !== event.entity) return false;
  if (id === '*') return true;
  if (id.endsWith('*')) return String(event.id ?? '').startsWith(id.slice(0, -1));
  return id === String(event.id ?? '');
}

function uuid() {
  if (globalThis.crypto?.randomUUID) return globalThis.crypto.randomUUID();
  const b = new Uint8Array(16);
  globalThis.crypto.getRandomValues(b);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export class EvstreamError extends Error {
  constructor(status, body) {
    super(body?.message || body?.error || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export function connect(options) {
  return new Client(options);
}

export class Client {
  constructor({ url = '', token, getToken, channels = [], topics = [], lastEventId, fetch: fetchImpl,
                minBackoffMs = 250, maxBackoffMs = 10000, share = true, locks, BroadcastChannel } = {}) {
    this.url = url.replace(/\/$/, '');
    this.token = token;
    this.getToken = typeof getToken === 'function' ? getToken : null;
    this.needToken = Boolean(this.getToken) && !token;
    this.channels = channels;
    this.topics = topics;
    this.lastEventId = lastEventId ?? null;
    this.fetch = fetchImpl ?? globalThis.fetch.bind(globalThis);
    this.minBackoffMs = minBackoffMs;
    this.maxBackoffMs = maxBackoffMs;
    this.connectionState = 'connecting';
    this.connectionId = null;
    this.subscriptions = new Set();
    this.stateListeners = new Set();
    this.closed = false;
    this.retryMs = null;
    this.attempt = 0;
    this.controller = null;
    this.group = null;
    this.loop = this.start({ share, locks, BroadcastChannel });
  }

  // Joins the tabs' shared stream when the environment allows it (a browser window with Web
  // Locks and BroadcastChannel) and `share` is not false; else streams for this client alone.
  async start({ share, locks, BroadcastChannel }) {
    const env = share === false ? null : sharingEnvironment({ locks, BroadcastChannel });
    if (env && this.needToken) {
      // The group is chosen by the token's identity: get one first.
      if (await this.refreshToken().catch(() => false)) this.needToken = false;
      if (this.closed) return;
    }
    if (env) {
      const group = new TabGroup(this, env);
      this.group = group;
      try {
        await group.start();
        return;
      } catch {
        group.close();
        this.group = null;
      }
    }
    if (!this.closed) await this.run();
  }

  // 'leader' (this tab reads the shared stream), 'follower' (another tab does), or 'single'
  // (a stream of its own: share: false, or no Web Locks / BroadcastChannel).
  get role() {
    return this.group ? this.group.role : 'single';
  }

  // Called by the group when this tab takes the lead.
  runLeader() {
    this.leaderLoop = this.run();
  }

  // Reconnects the stream at once (the group changed its request or resume id).
  restartStream() {
    this.restartNow = true;
    this.controller?.abort();
  }

  subscribe(pattern, callback) {
    const sub = { pattern, callback };
    this.subscriptions.add(sub);
    return () => this.subscriptions.delete(sub);
  }

  onStateChange(callback) {
    this.stateListeners.add(callback);
    return () => this.stateListeners.delete(callback);
  }

  // Asks getToken() for a fresh token (once at a time: concurrent callers share the promise).
  async refreshToken() {
    if (!this.getToken) return false;
    if (!this.refreshing) {
      this.refreshing = (async () => {
        try {
          const t = await this.getToken();
          if (typeof t === 'string' && t) this.token = t;
          return typeof t === 'string' && t !== '';
        } finally {
          this.refreshing = null;
        }
      })();
    }
    return this.refreshing;
  }

  async post(event, { idempotencyKey = uuid(), retries = 3 } = {}) {
    // X-Evstream-CSRF: lets the daemon accept the evstream_token cookie for this write (a form
    // cannot send it); with a Bearer token it is ignored.
    const headers = { 'Content-Type': 'application/json', 'Idempotency-Key': idempotencyKey, 'X-Evstream-CSRF': '1' };
    if (this.needToken) await this.refreshToken().catch(() => false);
    let refreshed = false;
    for (let attempt = 0; ; attempt++) {
      if (this.token) headers.Authorization = `Bearer ${this.token}`;
      let response;
      try {
        response = await this.fetch(`${this.url}/api/events`, {
          method: 'POST', headers, body: JSON.stringify(event), credentials: 'include',
        });
      } catch (networkError) {
        // Safe to retry: the same idempotency key returns the original event.
        if (attempt >= retries) throw networkError;
        await new Promise((r) => setTimeout(r, this.minBackoffMs * 2 ** attempt));
        continue;
      }
      const body = await response.json().catch(() => null);
      if (response.status === 401 && !refreshed && this.getToken) {
        // Expired token: refresh once and send again (same idempotency key: never twice).
        refreshed = true;
        if (await this.refreshToken().catch(() => false)) { attempt--; continue; }
      }
      if (!response.ok) throw new EvstreamError(response.status, body);
      return body;
    }
  }

  // An ephemeral event (POST /api/publish): delivered to the channel's current subscribers on
  // every instance, never stored — at most once, no replay, no id. Resolves with the 202 body.
  async publish(channel, type, data = {}, { entity, id } = {}) {
    return this.request('POST', '/api/publish', { channel, type, data, entity, id });
  }

  // Typing indicator for this user (the server sets userId and expires it).
  setTyping(channel, isTyping = true) {
    return this.publish(channel, 'typing', { isTyping: Boolean(isTyping) });
  }

  // Current members of a channel across every instance: [{ userId }].
  async presence(channel) {
    const body = await this.request('GET', `/api/presence?channel=${encodeURIComponent(channel)}`);
    return body.members;
  }

  // Follows streaming AI answers on this client's stream: see AnswerStream. Returns the
  // unsubscribe function.
  streamAnswers(onUpdate, options = {}) {
    const answers = new AnswerStream({ ...options, onUpdate });
    return this.subscribe('*', (event) => answers.handle(event));
  }

  async request(method, path, body, refreshed = false) {
    const headers = {};
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (this.needToken && !refreshed) await this.refreshToken().catch(() => false);
    if (method !== 'GET' && method !== 'HEAD') headers['X-Evstream-CSRF'] = '1';
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    const response = await this.fetch(`${this.url}${path}`, {
      method, headers, credentials: 'include', body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await response.json().catch(() => null);
    if (response.status === 401 && !refreshed && this.getToken && await this.refreshToken().catch(() => false)) {
      return this.request(method, path, body, true);
    }
    if (!response.ok) throw new EvstreamError(response.status, json);
    return json;
  }

  // null when the token may stream these channels; else { status, body } (403 from history,
  // which applies the stream's claims rule). Used before a shared stream asks for more.
  async channelsAllowed(channels) {
    const q = new URLSearchParams();
    for (const c of channels) q.append('channel', c);
    q.set('limit', '1');
    try {
      await this.request('GET', `/api/events?${q}`);
      return null;
    } catch (e) {
      return e instanceof EvstreamError && (e.status === 401 || e.status === 403) ? { status: e.status, body: e.body } : null;
    }
  }

  close() {
    this.closed = true;
    this.controller?.abort();
    this.group?.close();
    this.setState('closed');
  }

  setState(state) {
    if (this.connectionState === state) return;
    this.connectionState = state;
    this.group?.broadcastState(state);
    for (const l of [...this.stateListeners]) l(state);
  }

  // The server refused the token (401/403): '*' subscribers get { type: 'error' } and the client
  // closes. A leading tab tells the others first (they stream with the same identity).
  fail(status, body) {
    this.error = new EvstreamError(status, body);
    this.group?.broadcastFatal(status, body);
    for (const sub of [...this.subscriptions]) if (sub.pattern === '*') sub.callback({ type: 'error', status, error: body });
    this.close();
  }

  dispatch(frame) {
    if (this.group && !this.group.admit(frame)) return;
    if (frame.id !== undefined && frame.id !== '') this.lastEventId = frame.id;
    if (frame.retry !== undefined) this.retryMs = frame.retry;
    if (!frame.data) return;
    let payload;
    try {
      payload = JSON.parse(frame.data);
    } catch {
      return;
    }
    if (frame.event === 'connected') {
      this.connectionId = payload.connectionId;
      this.attempt = 0;
      this.setState('open');
    }
    // A reset's id is the server's current position: resume from there (without one, start live).
    if (frame.event === 'reset' && !frame.id) this.lastEventId = null;
    // The token expired: the server closes the stream after this frame, whose id (already taken
    // above) is where to resume. Reconnect at once with a fresh token.
    if (frame.event === 'reauth') this.reauth = true;
    if (frame.event === 'heartbeat') return;
    const event = RESERVED.has(frame.event) ? { ...payload, type: payload.type ?? frame.event } : payload;
    for (const sub of [...this.subscriptions]) {
      if (RESERVED.has(frame.event) ? sub.pattern === '*' || frame.event === 'reset' : matches(sub.pattern, event)) {
        try {
          sub.callback(event);
        } catch (e) {
          queueMicrotask(() => { throw e; });
        }
      }
    }
  }

  streamUrl() {
    return this.streamUrlFor(this.channels, this.topics);
  }

  streamUrlFor(channels, topics) {
    const q = new URLSearchParams();
    for (const c of channels) q.append('channel', c);
    for (const t of topics) q.append('topic', t);
    const qs = q.toString();
    return `${this.url}/api/events/stream${qs ? '?' + qs : ''}`;
  }

  async run() {
    let refreshedFor401 = false;
    while (!this.closed) {
      this.setState('connecting');
      if (this.needToken || this.reauth) {
        this.reauth = false;
        const ok = await this.refreshToken().catch(() => false);
        if (this.closed) break;
        if (ok) this.needToken = false;
      }
      this.controller = new AbortController();
      const headers = { Accept: 'text/event-stream' };
      if (this.token) headers.Authorization = `Bearer ${this.token}`;
      const resumeId = this.group ? this.group.streamCursor : this.lastEventId;
      if (resumeId) headers['Last-Event-ID'] = resumeId;
      this.restartNow = false;
      // After restartStream() the rest of this connection's bytes are not read any more.
      const sink = (f) => {
        if (this.restartNow || this.closed) return;
        if (this.group) this.group.fromServer(f);
        else this.dispatch(f);
      };
      let fatal = null;
      try {
        const response = await this.fetch(this.group ? this.group.streamUrl() : this.streamUrl(), {
          headers, signal: this.controller.signal, credentials: 'include', cache: 'no-store',
        });
        if (response.status === 401 && this.getToken && !refreshedFor401) {
          // Probably expired while we were away: one fresh token, then 401 is final.
          await response.body?.cancel().catch(() => {});
          refreshedFor401 = true;
          this.needToken = true;
          continue;
        } else if (response.status === 401 || response.status === 403) {
          fatal = new EvstreamError(response.status, await response.json().catch(() => null));
        } else if (!response.ok || !response.body) {
          throw new EvstreamError(response.status, null);
        } else {
          refreshedFor401 = false;
          const parser = new SseParser(sink);
          const decoder = new TextDecoder();
          const reader = response.body.getReader();
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            parser.push(decoder.decode(value, { stream: true }));
          }
        }
      } catch (e) {
        if (this.closed) break;
      }
      if (fatal) {
        this.fail(fatal.status, fatal.body);
        break;
      }
      if (this.closed) break;
      if (this.restartNow) continue;  // reopened on purpose: no backoff
      this.setState('connecting');
      if (this.reauth) continue;  // a planned end: no backoff
      const base = this.retryMs ?? this.minBackoffMs;
      const delay = Math.min(this.maxBackoffMs, base * 2 ** Math.min(this.attempt, 6));
      this.attempt++;
      await new Promise((r) => setTimeout(r, delay * (0.75 + Math.random() * 0.5)));
    }
  }
}

// A streaming AI answer: ephemeral chunks ({ streamId, text, done }) append to the answer's text
// in arrival order; the stored final event (type `finalType`, data.streamId) then replaces it —
// the log is the truth, chunks are only a preview. Chunks arriving after the final are ignored.
// onUpdate(answer) runs after every change: { streamId, text, done, final (the stored event or
// null), chunks }.
export class AnswerStream {
  constructor({ onUpdate = () => {}, chunkType = 'ai_chat_chunk', finalType = 'ai_chat',
                finalText = (event) => event.data?.text ?? event.data?.content ?? '' } = {}) {
    this.onUpdate = onUpdate;
    this.chunkType = chunkType;
    this.finalType = finalType;
    this.finalText = finalText;
    this.answers = new Map();
  }

  answer(streamId) {
    let a = this.answers.get(streamId);
    if (!a) {
      a = { streamId, text: '', done: false, final: null, chunks: 0 };
      this.answers.set(streamId, a);
    }
    return a;
  }

  // Feed every event of the stream here; returns the answer it changed (or null).
  handle(event) {
    const streamId = event?.data?.streamId;
    if (typeof streamId !== 'string') return null;
    if (event.type === this.chunkType) {
      const a = this.answer(streamId);
      if (a.final) return null;
      if (typeof event.data.text === 'string') a.text += event.data.text;
      a.chunks++;
      if (event.data.done) a.done = true;
      this.onUpdate(a);
      return a;
    }
    if (event.type === this.finalType && event.position !== undefined) {
      const a = this.answer(streamId);
      a.final = event;
      a.text = String(this.finalText(event));
      a.done = true;
      this.onUpdate(a);
      return a;
    }
    return null;
  }
}

// Renders an answer into an element: its text, and data-state streaming | done | final.
export function renderAnswer(element, answer) {
  element.textContent = answer.text;
  element.dataset.state = answer.final ? 'final' : answer.done ? 'done' : 'streaming';
  if (answer.final) element.dataset.eventId = answer.final.eventId;
  return element;
}
