// Ephemeral events: what rate of token chunks one stream and 100 concurrent streams sustain
// through POST /api/publish (publish-side coalescing, one transaction per round trip), and
// evstream.publish called straight from SQL (one transaction per chunk). A real evstreamd and a
// real subscriber that checks every stream's text arrives complete and in order. Prints one JSON
// line per scenario.
//   node bench/ephemeral/bench.mjs [seconds=5]
// Old vs new in the same run (issue 10): the SQL scenarios alternate the outbox publish
// (`evstream.publish`: a row in evstream.ephemeral_outbox, doorbell through the worker) with the
// old NOTIFY-payload publish (its body kept here as pg_temp.old_publish: pg_notify inside the
// transaction). With EVSTREAM_BASELINE_BINARY=<an evstreamd built from before the outbox> the HTTP
// scenarios also run against that binary (it NOTIFYs payloads itself and ignores the outbox).
import http from 'node:http';
import { openReady, pgClient, startDaemon, stopDaemon, token, uniq } from '../../tests/e2e/lib/daemon.mjs';

const seconds = Number(process.argv[2] ?? 5);
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

function post(d, tok, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(`${d.url}/api/publish`, {
      method: 'POST', agent, headers: { Authorization: `Bearer ${tok}`, 'Content-Type': 'application/json' },
    }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

async function metric(d, name) {
  const text = await new Promise((resolve) => http.get(`${d.url}/metrics`, (r) => {
    let s = ''; r.on('data', (c) => { s += c; }); r.on('end', () => resolve(s));
  }));
  return Number(new RegExp(`^${name} (\\S+)`, 'm').exec(text)?.[1] ?? 0);
}

// streams: number of concurrent token streams; each keeps `inflight` chunk requests open.
async function scenario(d, streams, inflight) {
  const p = uniq('bench');
  const claims = { sub: 'bench', projects: [p] };
  const tok = token(claims);
  const sub = await openReady(d, { tokenValue: tok, query: `?channel=project:${p}` });
  const published0 = await metric(d, 'evstream_ephemeral_published_total');
  const deadline = Date.now() + seconds * 1000;
  let sent = 0;
  const expected = new Map();
  await Promise.all(Array.from({ length: streams }, async (_, s) => {
    const streamId = `s${s}`;
    let n = 0;
    let text = '';
    // in-flight requests of one stream go out in order on the keep-alive sockets; the daemon's
    // coalescer keeps arrival order, so each stream's text is checked as a multiset below
    const workers = Array.from({ length: inflight }, async () => {
      while (Date.now() < deadline) {
        const t = `${n++} `;
        text += t;
        const status = await post(d, tok, { channel: `project:${p}`, type: 'ai_chat_chunk', data: { streamId, text: t } });
        if (status !== 202) throw new Error(`status ${status}`);
        sent++;
      }
    });
    await Promise.all(workers);
    expected.set(streamId, text);
  }));
  const elapsed = seconds;
  const received = () => {
    const got = new Map();
    for (const e of sub.events) if (e.event === 'ai_chat_chunk') {
      const x = JSON.parse(e.data).data;
      got.set(x.streamId, (got.get(x.streamId) ?? '') + x.text);
    }
    return got;
  };
  const sortWords = (s) => s.trim().split(' ').sort().join(' ');
  await sub.until(() => [...expected].every(([k, v]) => sortWords(received().get(k) ?? '') === sortWords(v)), 30000, 'all chunks');
  const frames = sub.events.filter((e) => e.event === 'ai_chat_chunk').length;
  const published = (await metric(d, 'evstream_ephemeral_published_total')) - published0;
  sub.close();
  return { streams, inflight_per_stream: inflight, chunks_per_s: Math.round(sent / elapsed), chunks: sent,
           notify_events: published, frames_delivered: frames, chunks_per_notify: +(sent / published).toFixed(1) };
}

// The publish of before the outbox (sql/parts/40_realtime.sql at 204d8fd), as the baseline.
const OLD_PUBLISH = `CREATE OR REPLACE FUNCTION pg_temp.old_publish(channel text, type text, data jsonb DEFAULT '{}',
                                 aggregate_type text DEFAULT NULL, aggregate_id text DEFAULT NULL,
                                 created_by text DEFAULT NULL)
  RETURNS uuid LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  claims  text := nullif(current_setting('request.jwt.claims', true), '');
  sub     text;
  eid     uuid := gen_random_uuid();
  payload text;
BEGIN
  IF channel IS NULL THEN
    RAISE EXCEPTION 'channel must not be null' USING ERRCODE = '22004';
  END IF;
  IF channel !~ '^(project|user|channel):[^*]+$' THEN
    RAISE EXCEPTION 'channel must be project:<id>, user:<id> or channel:<id>, got "%"', channel
      USING ERRCODE = '22023';
  END IF;
  IF type IS NULL OR type = '' THEN
    RAISE EXCEPTION 'type must not be empty' USING ERRCODE = '22023';
  END IF;
  IF type IN ('connected', 'heartbeat', 'reset', 'overflow', 'error', 'presence') THEN
    RAISE EXCEPTION 'type is reserved for the stream''s own frames: %', type USING ERRCODE = '22023';
  END IF;
  IF data IS NULL OR jsonb_typeof(data) <> 'object' THEN
    RAISE EXCEPTION 'data must be a JSON object' USING ERRCODE = '22023';
  END IF;
  IF claims IS NOT NULL AND NOT evstream.channel_allowed(channel) THEN
    RAISE EXCEPTION 'channel not allowed by the claims: %', channel USING ERRCODE = '42501';
  END IF;
  IF created_by IS NULL THEN
    sub := claims::jsonb ->> 'sub';
    created_by := CASE WHEN sub IS NOT NULL AND sub <> '' THEN 'user:' || sub ELSE 'system' END;
  END IF;
  payload := json_build_object(
    'type', type, 'channel', channel, 'entity', aggregate_type, 'id', aggregate_id,
    'data', data::json, 'ephemeral', true, 'ephemeralId', eid, 'createdBy', created_by,
    'timestamp', to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))::text;
  IF octet_length(payload) >= 8000 THEN
    RAISE EXCEPTION 'ephemeral event is too large: % bytes (limit 7999)', octet_length(payload)
      USING ERRCODE = '22023',
            HINT = 'NOTIFY payloads must be shorter than 8000 bytes; store big payloads with post_event';
  END IF;
  PERFORM pg_notify('evstream_ephemeral', payload);
  RETURN eid;
END
$$;`;

async function sqlPublish(clients, old) {
  const p = uniq('bench');
  const fn = old ? 'pg_temp.old_publish' : 'evstream.publish';
  const dbs = await Promise.all(Array.from({ length: clients }, async () => {
    const db = pgClient();
    await db.connect();
    if (old) await db.query(OLD_PUBLISH);
    return db;
  }));
  const deadline = Date.now() + seconds * 1000;
  let sent = 0;
  await Promise.all(dbs.map(async (db, i) => {
    while (Date.now() < deadline) {
      await db.query(`SELECT ${fn}($1, 'ai_chat_chunk', jsonb_build_object('streamId', $2::text, 'text', 'x '))`,
        [`project:${p}`, `s${i}`]);
      sent++;
    }
    await db.end();
  }));
  return { path: old ? 'sql old publish (NOTIFY payload inside the transaction)' : 'sql evstream.publish (outbox row, worker doorbell)',
           clients, chunks_per_s: Math.round(sent / seconds) };
}

const coalesce = Number(process.env.COALESCE_MS ?? 5);
const daemonArgs = ['--max-connections', '5000', '--max-connections-per-address', '5000', '--max-connections-per-sub', '5000',
  '--coalesce-ms', String(coalesce)];
const baseline = process.env.EVSTREAM_BASELINE_BINARY;
async function httpScenarios(binary, label) {
  const d = await startDaemon({ args: daemonArgs, binary });
  try {
    for (const [streams, inflight] of [[1, 1], [1, 16], [100, 1]])
      console.log(JSON.stringify({ path: 'http', daemon: label, coalesce_ms: coalesce, ...(await scenario(d, streams, inflight)) }));
  } finally {
    await stopDaemon(d);
  }
}
try {
  await httpScenarios(undefined, 'outbox');
  if (baseline) await httpScenarios(baseline, 'baseline (NOTIFY payloads)');
  // A daemon listening while SQL publishes (as in production), old and new alternating twice.
  const d = await startDaemon({ args: daemonArgs });
  try {
    for (const round of [1, 2])
      for (const clients of [1, 8])
        for (const old of [false, true]) console.log(JSON.stringify({ round, ...(await sqlPublish(clients, old)) }));
  } finally {
    await stopDaemon(d);
  }
} finally {
  agent.destroy();
}
