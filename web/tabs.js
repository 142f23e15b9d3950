// One server stream per browser: the tabs of one origin that stream for the same identity share
// one SSE connection (web/evstream.js uses this unless `share: false`).
//
// - Leader: the tab holding the Web Lock `<key>:leader` (navigator.locks) reads the server stream
//   and passes every frame on over BroadcastChannel(<key>); the others are followers. When the
//   leader's tab closes the browser releases its lock and the next tab in the lock's queue leads:
//   it announces a new epoch and resumes the server stream from its own last id.
// - Key: derived from the daemon's URL and the token's identity (its claims without exp, iat,
//   nbf, jti; an opaque token as a whole; no token = the origin's cookies), hashed. Tabs with other
//   users or other grants never share a stream.
// - Subscriptions stay per tab: each tab announces the channels and topics it asked for; the
//   leader's stream asks for their union and each tab drops what its own request did not ask for.
// - No loss, no duplicate: every tab keeps the ids of the recent frames (FrameLog). After a new
//   leader, or when it opens with a `lastEventId`, a tab sends `join` with its last id and takes
//   no frame until the leader answers: the recent frames after that id (catch-up), "skip until"
//   (the id is ahead of the stream: history read before the feed caught up), or "own" (older
//   than the leader's memory): the tab reads a short stream of its own from that id, holding the
//   shared frames, until both streams meet at one event. Stored events are dropped when their id
//   was already delivered in this tab, so replays at a seam are not shown twice.

import { SseParser, matches } from './evstream.js';

const FRAME_LOG_CAPACITY = 5000;
const VOLATILE_CLAIMS = new Set(['exp', 'iat', 'nbf', 'jti']);

function base64UrlDecode(s) {
  const b64 = s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4);
  const bin = atob(b64);
  const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
}

function canonical(value) {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

// Who a stream is for: the daemon's URL plus the token's identity. Two tabs share a stream only
// when these strings are equal. A refreshed JWT of the same user (new exp/iat/jti) keeps it.
export function identityOf(url, token) {
  if (!token) return `${url}\ncookie`;
  const parts = String(token).split('.');
  if (parts.length === 3) {
    try {
      const claims = JSON.parse(base64UrlDecode(parts[1]));
      if (claims && typeof claims === 'object' && !Array.isArray(claims)) {
        for (const k of VOLATILE_CLAIMS) delete claims[k];
        return `${url}\njwt\n${canonical(claims)}`;
      }
    } catch {
      // not a decodable JWT: fall through to the opaque form
    }
  }
  return `${url}\nopaque\n${token}`;
}

// A short synchronous hash (two FNV-1a lanes) for contexts without crypto.subtle (plain http on a
// host other than localhost).
function fnv64(text) {
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ 0x5bd1e995;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193) >>> 0;
    b = Math.imul(b ^ c, 0x5bd1e995) >>> 0;
  }
  return a.toString(16).padStart(8, '0') + b.toString(16).padStart(8, '0');
}

// The lock and channel name of a group: "evstream:" + a hash of identityOf(url, token).
export async function groupKey(url, token) {
  const text = identityOf(url, token);
  const subtle = globalThis.crypto?.subtle;
  if (subtle) {
    try {
      const digest = await subtle.digest('SHA-256', new TextEncoder().encode(text));
      return `evstream:${[...new Uint8Array(digest)].map((x) => x.toString(16).padStart(2, '0')).join('')}`;
    } catch {
      // fall back below
    }
  }
  return `evstream:${fnv64(text)}`;
}

// What one tab asked for: channels ([] = every channel the token allows) and topics ([] = all).
export function needOf(channels = [], topics = []) {
  return { channels: [...new Set(channels.map(String))].sort(), topics: [...new Set(topics.map(String))].sort() };
}

// The request that covers every tab: [] wins (it already means "all").
export function unionNeeds(needs) {
  let allChannels = false;
  let allTopics = false;
  const channels = new Set();
  const topics = new Set();
  for (const n of needs) {
    if (n.channels.length === 0) allChannels = true;
    else n.channels.forEach((c) => channels.add(c));
    if (n.topics.length === 0) allTopics = true;
    else n.topics.forEach((t) => topics.add(t));
  }
  return { channels: allChannels ? [] : [...channels].sort(), topics: allTopics ? [] : [...topics].sort() };
}

// Does a stream opened with `outer` deliver everything `inner` asks for?
export function covers(outer, inner) {
  const part = (o, i) => o.length === 0 || (i.length > 0 && i.every((x) => o.includes(x)));
  return part(outer.channels, inner.channels) && part(outer.topics, inner.topics);
}

function channelMatches(requested, channel) {
  if (requested === channel) return true;
  return requested.endsWith('*') && channel.startsWith(requested.slice(0, -1));
}

// Would this tab's own stream have delivered the event? (the daemon's rules: channels as asked,
// topics only filter events that have an entity)
export function wants(need, event) {
  if (need.channels.length && typeof event.channel === 'string'
      && !need.channels.some((c) => channelMatches(c, event.channel))) return false;
  if (need.topics.length && event.entity != null && !need.topics.some((t) => matches(t, event))) return false;
  return true;
}

const CONTROL = new Set(['connected', 'heartbeat', 'reset', 'overflow', 'reauth']);
export const isStoredEvent = (frame) => frame.id !== undefined && frame.id !== '' && !CONTROL.has(frame.event)
  && frame.data !== '';

// The recent frames that carried an id, in stream order (the group's shared memory of the stream).
export class FrameLog {
  constructor(capacity = FRAME_LOG_CAPACITY) {
    this.capacity = capacity;
    this.entries = [];        // { id, frame|null }
    this.counts = new Map();  // id -> entries holding it
    this.events = new Set();  // ids of stored events in entries
    this.maxNumeric = -Infinity;
  }
  get size() { return this.entries.length; }
  has(id) { return this.counts.has(id); }
  seen(id) { return this.events.has(id); }
  last() { return this.entries.length ? this.entries[this.entries.length - 1].id : null; }
  // Records a position without a frame (where a stream starts).
  mark(id) {
    if (id === null || id === undefined || id === '') return;
    if (this.last() !== id) this.push({ id: String(id), frame: null });
  }
  // Records a frame; false when it is a stored event already recorded (a replay).
  add(frame) {
    if (frame.id === undefined || frame.id === '') return true;
    if (isStoredEvent(frame)) {
      if (this.events.has(frame.id)) return false;
      this.events.add(frame.id);
    }
    this.push({ id: frame.id, frame });
    return true;
  }
  push(entry) {
    this.entries.push(entry);
    this.counts.set(entry.id, (this.counts.get(entry.id) ?? 0) + 1);
    const n = Number(entry.id);
    if (Number.isFinite(n) && n > this.maxNumeric) this.maxNumeric = n;
    while (this.entries.length > this.capacity) {
      const old = this.entries.shift();
      const left = this.counts.get(old.id) - 1;
      if (left > 0) {
        this.counts.set(old.id, left);
      } else {
        this.counts.delete(old.id);
        this.events.delete(old.id);
      }
    }
  }
  // The frames recorded after the last occurrence of `id`.
  after(id) {
    if (!this.counts.has(id)) return null;
    for (let i = this.entries.length - 1; i >= 0; i--) {
      if (this.entries[i].id === id) return this.entries.slice(i + 1).filter((e) => e.frame).map((e) => e.frame);
    }
    return null;
  }
}

// How the leader brings a tab whose last id is `from` in line with its stream.
//   live:    nothing to do (no resume point, or it is where the stream is)
//   catchup: `frames` are what it missed, from the log
//   skip:    the id is ahead of the stream (numerically past everything seen): drop stored events
//            up to it (the tab already has them, e.g. from GET /api/events)
//   own:     older than the log remembers: the tab catches up on a stream of its own from `from`
//            until it meets the shared one
export function planJoin(log, from) {
  if (from === null || from === undefined || from === '') return { mode: 'live' };
  const frames = log.after(String(from));
  if (frames) return frames.length ? { mode: 'catchup', frames } : { mode: 'live' };
  const n = Number(from);
  if (log.size > 0 && Number.isFinite(n) && n > log.maxNumeric) return { mode: 'skip', until: String(from) };
  return { mode: 'own', from: String(from) };
}

function randomId() {
  const b = new Uint8Array(12);
  globalThis.crypto.getRandomValues(b);
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
}

// Where this runs shares by default: a browser window with Web Locks and BroadcastChannel.
export function sharingEnvironment(options = {}) {
  const locks = options.locks ?? (typeof window !== 'undefined' ? globalThis.navigator?.locks : undefined);
  const Channel = options.BroadcastChannel ?? (typeof window !== 'undefined' ? globalThis.BroadcastChannel : undefined);
  return locks && typeof Channel === 'function' ? { locks, BroadcastChannel: Channel } : null;
}

// One tab's membership in the group (see the top of this file). The Client keeps its public API;
// it asks the group for the stream's URL and resume id when it leads, hands it every server
// frame (fromServer), and lets it vet every frame before its subscribers see it (admit).
export class TabGroup {
  constructor(client, env) {
    this.client = client;
    this.env = env;
    this.tab = randomId();
    this.need = needOf(client.channels, client.topics);
    this.registry = new Map([[this.tab, this.need]]);
    this.log = new FrameLog();
    this.role = 'follower';
    this.epoch = null;
    this.syncing = true;
    this.skipUntil = null;
    this.closed = false;
    this.pendingJoins = [];
    this.held = null;  // shared frames held while catching up on a stream of its own
  }

  async start() {
    const base = typeof location !== 'undefined' ? new URL(this.client.url || '/', location.href).href : this.client.url;
    this.key = await groupKey(base, this.client.token);
    if (this.closed) return;
    this.channel = new this.env.BroadcastChannel(this.key);
    this.channel.onmessage = (e) => this.onMessage(e.data);
    this.lockAbort = new AbortController();
    this.env.locks.request(`${this.key}:leader`, { signal: this.lockAbort.signal }, () => this.lead())
      .catch(() => {});
    this.sendJoin();
  }

  send(message) {
    if (this.closed && message.t !== 'bye') return;
    try {
      this.channel?.postMessage({ ...message, from: this.tab });
    } catch {
      // channel closed
    }
  }

  sendJoin() {
    this.send({ t: 'join', need: this.need, cursor: this.client.lastEventId });
  }

  // ---- leading ----

  // Runs while this tab holds the lock; resolving releases it (close()).
  async lead() {
    if (this.closed) return;
    this.stopCatchUp();  // the new stream resumes from the last id this tab delivered
    this.role = 'leader';
    this.epoch = randomId();
    this.syncing = false;
    this.send({ t: 'epoch', epoch: this.epoch });
    this.streamNeed = unionNeeds(this.registry.values());
    this.streamCursor = this.client.lastEventId ?? null;
    this.log.mark(this.streamCursor);
    this.ready = this.streamCursor !== null;
    const released = new Promise((resolve) => { this.releaseLead = resolve; });
    this.client.runLeader();
    await released;
  }

  streamUrl() {
    return this.client.streamUrlFor(this.streamNeed.channels, this.streamNeed.topics);
  }

  // Every frame of the server stream, in order.
  fromServer(frame) {
    if (frame.id !== undefined && frame.id !== '') this.streamCursor = frame.id;
    this.send({ t: 'frame', epoch: this.epoch, frame });
    this.receive(frame);
    if (!this.ready && this.streamCursor !== null) {
      this.ready = true;
      const joins = this.pendingJoins;
      this.pendingJoins = [];
      for (const m of joins) this.answerJoin(m);
    }
  }

  // Reopens the server stream with the current request, resumed where it was.
  reopen() {
    this.client.restartStream();
  }

  answerJoin(m) {
    if (!this.ready) {
      this.pendingJoins.push(m);
      return;
    }
    const grow = !covers(this.streamNeed, m.need);
    const extra = m.need.channels.filter((c) => !this.streamNeed.channels.includes(c));
    if (grow && !m.checked && this.streamNeed.channels.length > 0 && extra.length > 0) {
      // A channel the token does not allow would make the whole stream 403: ask the history
      // endpoint (same claims rule) first, and refuse only that tab.
      this.client.channelsAllowed(extra).then((refusal) => {
        if (this.closed || this.role !== 'leader') return;
        if (!refusal) {
          this.answerJoin({ ...m, checked: true });
          return;
        }
        this.registry.delete(m.from);
        this.send({ t: 'refused', tab: m.from, status: refusal.status, body: refusal.body });
      });
      return;
    }
    let plan = planJoin(this.log, m.cursor);
    if (grow) {
      // The new tab asks for more than the stream carries: reopen with the union, resumed (so the
      // others miss nothing); what the new tab missed before, it reads on its own.
      this.streamNeed = unionNeeds(this.registry.values());
      if (plan.mode === 'catchup') plan = { mode: 'own', from: String(m.cursor) };
    }
    // `position`: where the stream is now, for a tab that had no id yet (so that it can resume
    // from there if it leads later).
    this.send({ t: 'joined', to: m.from, epoch: this.epoch, mode: plan.mode, frames: plan.frames,
      until: plan.until, resumeFrom: plan.from, position: this.log.last() ?? this.streamCursor,
      state: this.client.connectionState });
    if (grow) this.reopen();
  }

  broadcastState(state) {
    if (this.role === 'leader') this.send({ t: 'state', epoch: this.epoch, state });
  }

  broadcastFatal(status, body) {
    if (this.role === 'leader') this.send({ t: 'fatal', epoch: this.epoch, status, body });
  }

  // ---- every tab ----

  receive(frame) {
    this.client.dispatch(frame);
  }

  // Decides whether this tab's subscribers see a frame (called by Client.dispatch): drops stored
  // events already delivered here (a replay at a seam), those a skip covers, and those this
  // tab's own channels/topics did not ask for (its last id still moves past them).
  admit(frame) {
    if (frame.id === undefined || frame.id === '') {
      if (!frame.data || CONTROL.has(frame.event)) return true;
      try {
        return wants(this.need, JSON.parse(frame.data));
      } catch {
        return true;
      }
    }
    if (!isStoredEvent(frame)) {
      this.log.add(frame);
      return true;
    }
    if (!this.log.add(frame)) return false;
    if (this.skipUntil !== null) {
      if (frame.id === this.skipUntil || Number(frame.id) <= Number(this.skipUntil)) {
        if (frame.id === this.skipUntil) this.skipUntil = null;
        this.client.lastEventId = frame.id;
        return false;
      }
      this.skipUntil = null;
    }
    let payload;
    try {
      payload = JSON.parse(frame.data);
    } catch {
      return true;
    }
    if (!wants(this.need, payload)) {
      this.client.lastEventId = frame.id;
      return false;
    }
    return true;
  }

  onMessage(m) {
    if (this.closed || !m || typeof m !== 'object' || m.from === this.tab) return;
    if (m.to !== undefined && m.to !== this.tab) return;
    switch (m.t) {
      case 'join':
        this.registry.set(m.from, needOf(m.need?.channels ?? [], m.need?.topics ?? []));
        if (this.role === 'leader') this.answerJoin({ ...m, need: this.registry.get(m.from) });
        break;
      case 'bye':
        this.registry.delete(m.from);
        break;
      case 'epoch':
        if (this.role === 'leader') break;
        this.stopCatchUp();
        this.epoch = m.epoch;
        this.syncing = true;
        this.client.setState('connecting');
        this.sendJoin();
        break;
      case 'joined':
        if (this.role === 'leader' || (this.epoch !== null && m.epoch !== this.epoch) || !this.syncing) break;
        this.epoch = m.epoch;
        this.syncing = false;
        if (m.mode === 'live' && (this.client.lastEventId === null || this.client.lastEventId === undefined)
            && typeof m.position === 'string') {
          this.client.lastEventId = m.position;
          this.log.mark(m.position);
        }
        if (m.mode === 'catchup') for (const f of m.frames ?? []) this.receive(f);
        if (m.mode === 'skip') this.skipUntil = m.until;
        if (m.mode === 'own') this.catchUp(String(m.resumeFrom));
        if (m.state) this.client.setState(m.state);
        break;
      case 'frame':
        if (this.role === 'leader' || this.syncing || m.epoch !== this.epoch) break;
        if (this.held) this.hold(m.frame);
        else this.receive(m.frame);
        break;
      case 'state':
        if (this.role !== 'leader' && !this.syncing && m.epoch === this.epoch) this.client.setState(m.state);
        break;
      case 'fatal':
        if (this.role !== 'leader' && m.epoch === this.epoch) this.client.fail(m.status, m.body);
        break;
      case 'refused':
        this.registry.delete(m.tab);
        if (m.tab === this.tab) this.client.fail(m.status, m.body);
        break;
      default:
        break;
    }
  }

  // ---- catching up on a stream of its own ----

  async catchUp(from) {
    const client = this.client;
    this.held = [];
    this.heldIds = new Set();
    this.ownIds = new Set();
    const controller = new AbortController();
    this.catchUpController = controller;
    try {
      const headers = { Accept: 'text/event-stream', 'Last-Event-ID': from };
      if (client.token) headers.Authorization = `Bearer ${client.token}`;
      const response = await client.fetch(client.streamUrlFor(this.need.channels, this.need.topics), {
        headers, signal: controller.signal, credentials: 'include', cache: 'no-store',
      });
      if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
      const parser = new SseParser((f) => this.fromOwn(f, controller));
      const decoder = new TextDecoder();
      const reader = response.body.getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.push(decoder.decode(value, { stream: true }));
      }
    } catch {
      // aborted once aligned, or the catch-up failed
    }
    // Ended without meeting the shared stream (refused, cut): go on with the shared frames.
    if (this.catchUpController === controller) this.aligned();
  }

  fromOwn(frame, controller) {
    if (this.catchUpController !== controller || !this.held) return;
    if (frame.event === 'reset') {
      this.receive(frame);
      this.aligned();
      return;
    }
    if (!isStoredEvent(frame)) return;  // connected, heartbeats: the shared stream has its own
    this.ownIds.add(frame.id);
    this.receive(frame);
    if (this.heldIds.has(frame.id)) this.aligned();
  }

  hold(frame) {
    this.held.push(frame);
    if (frame.id === undefined || frame.id === '') return;
    this.heldIds.add(frame.id);
    if (isStoredEvent(frame) && this.ownIds.has(frame.id)) this.aligned();
  }

  // Both streams have delivered one event: everything held after it is new (the ones before it
  // were delivered by the own stream and are dropped as replays).
  aligned() {
    const held = this.held;
    this.stopCatchUp();
    for (const f of held ?? []) this.receive(f);
  }

  stopCatchUp() {
    this.catchUpController?.abort();
    this.catchUpController = null;
    this.held = null;
  }

  close() {
    if (this.closed) return;
    this.stopCatchUp();
    this.send({ t: 'bye' });
    this.closed = true;
    this.lockAbort?.abort();
    this.releaseLead?.();
    try {
      this.channel?.close();
    } catch {
      // already closed
    }
  }
}
