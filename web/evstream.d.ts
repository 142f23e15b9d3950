// Types for web/evstream.js.
export type ConnectionState = 'connecting' | 'open' | 'closed';

/** One stored event, as the stream and the HTTP API deliver it. */
export interface EvstreamEvent<D = Record<string, unknown>> {
  type: string;
  channel: string;
  entity: string;        // aggregate_type
  id: string;            // aggregate_id
  version: number;
  position: number;
  eventId: string;
  data: D;
  metadata: Record<string, unknown>;
  display: { role?: 'user' | 'assistant' | 'system'; content?: unknown; icon?: string; color?: string } | null;
  timestamp: string;     // ISO 8601
  correlationId: string | null;
  causationId: string | null;
  createdBy: string;
}

/**
 * An ephemeral event (evstream.publish, POST /api/publish, presence, typing): never stored, so
 * no position, version or eventId, and no SSE id: line. At most once, no replay.
 */
export interface EphemeralEvent<D = Record<string, unknown>> {
  type: string;
  channel: string;
  entity: string | null;
  id: string | null;
  data: D;
  ephemeral: true;
  ephemeralId?: string;
  createdBy: string;
  timestamp: string;
}
export type PresenceEvent = EphemeralEvent<{ action: 'join' | 'leave'; userId: string }> & { type: 'presence' };
export type TypingEvent = EphemeralEvent<{ userId: string; isTyping: boolean; expired?: boolean }> & { type: 'typing' };
export interface AiChunkData { streamId: string; text: string; done?: boolean; [k: string]: unknown }

/**
 * Control frames delivered to '*' subscribers: connected, reset, overflow, reauth (the token
 * expired; the client refreshes through getToken and resumes from `lastEventId`), error.
 */
export interface ControlEvent { type: 'connected' | 'reset' | 'overflow' | 'reauth' | 'error'; [k: string]: unknown }

export interface ConnectOptions {
  url?: string;                 // base URL of evstreamd; '' = same origin
  token?: string;               // JWT, sent as Authorization: Bearer
  /**
   * Returns a fresh token. Called on `event: reauth` (the stream's token expired), on a 401,
   * and before connecting when no `token` is given; the stream then resumes from the last id
   * (no loss, no duplicate) and requests are retried once.
   */
  getToken?: () => string | Promise<string>;
  channels?: string[];          // project:<id>, user:<id>, channel:<id>
  topics?: string[];            // server-side filter, e.g. 'document:*'
  lastEventId?: string | null;  // resume point: a safe position (a stream id, or history's `next`; not a POST answer's position)
  fetch?: typeof fetch;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /**
   * Share one server stream between the tabs of this origin that stream for the same identity
   * (Web Locks leader + BroadcastChannel; see web/tabs.js). Default true; it applies only in a
   * browser window that has both APIs. false: this client opens a stream of its own.
   */
  share?: boolean;
}

export interface NewEvent {
  channel: string;
  aggregate_type: string;
  aggregate_id: string;
  event_type: string;
  data?: Record<string, unknown>;
  metadata?: Record<string, unknown>;
  display?: EvstreamEvent['display'];
  expected_version?: number;
  correlation_id?: string;
  causation_id?: string;
}

export declare class EvstreamError extends Error {
  status: number;
  body: unknown;
}

export declare class Client {
  readonly connectionState: ConnectionState;
  readonly connectionId: string | null;
  /** The last id the server sent (events, connected, reset, id-only frames): where a reconnect resumes. */
  readonly lastEventId: string | null;
  /** 'leader' (this tab reads the shared stream), 'follower' (another tab does), 'single' (own stream). */
  readonly role: 'leader' | 'follower' | 'single';
  /** pattern: '*', 'document:*' or 'document:doc_1'. Returns the unsubscribe function. */
  subscribe(pattern: string, callback: (event: EvstreamEvent | EphemeralEvent | ControlEvent) => void): () => void;
  /** Ephemeral event to the channel's current subscribers (202 body; 413 over the size limit). */
  publish(channel: string, type: string, data?: Record<string, unknown>, options?: { entity?: string; id?: string }):
    Promise<{ published: true; ephemeralId: string; channel: string; type: string; coalesced: number }>;
  setTyping(channel: string, isTyping?: boolean): Promise<unknown>;
  presence(channel: string): Promise<Array<{ userId: string }>>;
  streamAnswers(onUpdate: (answer: Answer) => void, options?: AnswerStreamOptions): () => void;
  onStateChange(callback: (state: ConnectionState) => void): () => void;
  /** Calls getToken() now (concurrent callers share one call); resolves whether a token came back. */
  refreshToken(): Promise<boolean>;
  /** Posts an event; the idempotency key defaults to a fresh UUID, so retries are safe. */
  post(event: NewEvent, options?: { idempotencyKey?: string; retries?: number }): Promise<EvstreamEvent>;
  close(): void;
}

export interface Answer {
  streamId: string;
  text: string;
  done: boolean;
  /** The stored final event once it arrived (it replaces the chunks' text). */
  final: EvstreamEvent | null;
  chunks: number;
}
export interface AnswerStreamOptions {
  onUpdate?: (answer: Answer) => void;
  chunkType?: string;   // default 'ai_chat_chunk'
  finalType?: string;   // default 'ai_chat'
  finalText?: (event: EvstreamEvent) => string;  // default data.text ?? data.content
}
export declare class AnswerStream {
  constructor(options?: AnswerStreamOptions);
  readonly answers: Map<string, Answer>;
  handle(event: EvstreamEvent | EphemeralEvent | ControlEvent): Answer | null;
}
export declare function renderAnswer(element: HTMLElement, answer: Answer): HTMLElement;

export declare function connect(options: ConnectOptions): Client;
export declare function matches(pattern: string, event: { entity: string | null; id: string | null; type?: string }): boolean;
export declare class SseParser {
  constructor(onEvent: (frame: { event: string; data: string; id?: string; retry?: number }) => void);
  push(text: string): void;
}
