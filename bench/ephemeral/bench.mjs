// Ephemeral events: what rate of token chunks one stream and 100 concurrent streams sustain
// through POST /api/publish (publish-side coalescing, one transaction per round trip), and
// evstream.publish called straight from SQL (one transaction per chunk). A real evstreamd and a
// real subscriber that checks every stream's text arrives complete and in order. Prints one JSON
// line per scenario.
//   node bench/ephemeral/bench.mjs [seconds=5]      ROUNDS=3, BENCH_ONLY=http|sql
// Old vs new in the same run (issue 10), alternating scenario by scenario, ROUNDS times: the SQL
// scenarios run the outbox publish (`evstream.publish`: a row in evstream.ephemeral_outbox,
// doorbell through the worker) and the old NOTIFY-payload publish (its body kept here as
// pg_temp.old_publish: pg_notify inside the transaction). With EVSTREAM_BASELINE_BINARY=<an
// evstreamd built from before the outbox> the HTTP scenarios also run against that binary (it
// NOTIFYs payloads itself and ignores the outbox), and it is the daemon listening while the old
// SQL publish runs. The last lines summarise each scenario: every round's new/old ratio and the
// median.
import fs from 'node:fs';
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

// CPU time (ms) used so far by one process, and by every process of the private cluster (the
// postmaster's children: backends, the doorbell worker). Linux /proc; null where unavailable. It
// says where the work goes, and stays meaningful on a loaded machine where rates do not.
const pgDir = process.env.EVSTREAM_PGDIR ?? '.pg';
const msPerTick = 10;  // USER_HZ = 100
function procStat(pid) {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(rest[1]), ms: (Number(rest[11]) + Number(rest[12])) * msPerTick };
  } catch {
    return null;
  }
}
function cpuNow(daemonPid) {
  try {
    const pm = Number(fs.readFileSync(`${pgDir}/data/postmaster.pid`, 'utf8').split('\n')[0]);
    let db = 0;
    for (const name of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      const st = procStat(name);
      if (st && st.ppid === pm) db += st.ms;
    }
    return { db, daemon: daemonPid ? procStat(daemonPid)?.ms ?? 0 : 0 };
  } catch {
    return null;
  }
}
// CPU ms per 1000 chunks between two cpuNow() readings.
function cpuPer1000(a, b, chunks) {
  if (!a || !b || !chunks) return undefined;
  const per = (x) => +((x * 1000) / chunks).toFixed(1);
  return { db: per(b.db - a.db), daemon: per(b.daemon - a.daemon) };
}

// streams: number of concurrent token streams; each keeps `inflight` chunk requests open.
async function scenario(d, streams, inflight) {
  const p = uniq('bench');
  const claims = { sub: 'bench', projects: [p] };
  const tok = token(claims);
  const sub = await openReady(d, { tokenValue: tok, query: `?channel=project:${p}` });
  const published0 = await metric(d, 'evstream_ephemeral_published_total');
  const cpu0 = cpuNow(d.child.pid);
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
  // Incremental (the check runs on every frame that arrives): each frame is parsed once, and the
  // texts are compared only once as many words arrived as were sent.
  const got = new Map();
  let seen = 0;
  let words = 0;
  const received = () => {
    for (; seen < sub.events.length; seen++) {
      const e = sub.events[seen];
      if (e.event !== 'ai_chat_chunk') continue;
      const x = JSON.parse(e.data).data;
      got.set(x.streamId, (got.get(x.streamId) ?? '') + x.text);
      words += x.text.trim().split(' ').length;
    }
    return got;
  };
  const sortWords = (s) => s.trim().split(' ').sort().join(' ');
  await sub.until(() => received() && words >= sent &&
    [...expected].every(([k, v]) => sortWords(got.get(k) ?? '') === sortWords(v)), 30000, 'all chunks');
  const cpu1 = cpuNow(d.child.pid);
  const frames = sub.events.filter((e) => e.event === 'ai_chat_chunk').length;
  const published = (await metric(d, 'evstream_ephemeral_published_total')) - published0;
  sub.close();
  return { streams, inflight_per_stream: inflight, chunks_per_s: Math.round(sent / elapsed), chunks: sent,
           notify_events: published, frames_delivered: frames, chunks_per_notify: +(sent / published).toFixed(1),
           cpu_ms_per_1000_chunks: cpuPer1000(cpu0, cpu1, sent) };
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

async function sqlPublish(d, clients, old) {
  const p = uniq('bench');
  const fn = old ? 'pg_temp.old_publish' : 'evstream.publish';
  const dbs = await Promise.all(Array.from({ length: clients }, async () => {
    const db = pgClient();
    await db.connect();
    if (old) await db.query(OLD_PUBLISH);
    return db;
  }));
  const cpu0 = cpuNow(d.child.pid);
  const deadline = Date.now() + seconds * 1000;
  let sent = 0;
  await Promise.all(dbs.map(async (db, i) => {
    while (Date.now() < deadline) {
      await db.query(`SELECT ${fn}($1, 'ai_chat_chunk', jsonb_build_object('streamId', $2::text, 'text', 'x '))`,
        [`project:${p}`, `s${i}`]);
      sent++;
    }
  }));
  await new Promise((resolve) => setTimeout(resolve, 200));  // the listening daemon catches up
  const cpu1 = cpuNow(d.child.pid);
  await Promise.all(dbs.map((db) => db.end()));
  return { path: old ? 'sql old publish (NOTIFY payload inside the transaction)' : 'sql evstream.publish (outbox row, worker doorbell)',
           clients, chunks_per_s: Math.round(sent / seconds), cpu_ms_per_1000_chunks: cpuPer1000(cpu0, cpu1, sent) };
}

const coalesce = Number(process.env.COALESCE_MS ?? 5);
// The per-address and per-sub limits are today's flags (off here: all the load comes from one
// address and one token); the baseline binary predates them and refuses unknown flags.
const baseArgs = ['--max-connections', '5000', '--coalesce-ms', String(coalesce)];
const daemonArgs = [...baseArgs, '--max-connections-per-address', '5000', '--max-connections-per-sub', '5000'];
const baseline = process.env.EVSTREAM_BASELINE_BINARY;
const rounds = Number(process.env.ROUNDS ?? 3);
const only = process.env.BENCH_ONLY;  // 'http' or 'sql': one half only

async function withDaemon(binary, fn) {
  const d = await startDaemon({ args: binary ? baseArgs : daemonArgs, binary });
  try {
    return await fn(d);
  } catch (e) {
    console.error(d.logs.map((l) => JSON.stringify(l)).filter((l) => /warn|error/i.test(l)).slice(0, 30).join('\n'));
    throw e;
  } finally {
    await stopDaemon(d);
  }
}

// new/old ratio per scenario and round; the summary lines give every ratio and their median.
const ratios = new Map();
function record(key, round, side, rate) {
  if (!ratios.has(key)) ratios.set(key, new Map());
  const byRound = ratios.get(key);
  if (!byRound.has(round)) byRound.set(round, {});
  byRound.get(round)[side] = rate;
}

// Old and new alternate scenario by scenario (the first of the two swaps every round), each with
// a fresh daemon: the new publish with today's evstreamd listening, the old one with the
// baseline evstreamd when given (the system as it was: NOTIFY payloads, no outbox reads).
try {
  for (let round = 1; round <= rounds; round++) {
    const sides = round % 2 ? [false, true] : [true, false];
    if (only !== 'sql') {
      for (const [streams, inflight] of [[1, 1], [1, 16], [100, 1]]) {
        for (const old of sides) {
          if (old && !baseline) continue;
          const r = await withDaemon(old ? baseline : undefined, (d) => scenario(d, streams, inflight));
          console.log(JSON.stringify({ round, path: 'http', daemon: old ? 'baseline (NOTIFY payloads)' : 'outbox', coalesce_ms: coalesce, ...r }));
          record(`http ${streams} stream(s), ${inflight} in flight`, round, old ? 'old' : 'new', r.chunks_per_s);
        }
      }
    }
    if (only !== 'http') {
      for (const clients of [1, 8]) {
        for (const old of sides) {
          const r = await withDaemon(old ? baseline : undefined, (d) => sqlPublish(d, clients, old));
          console.log(JSON.stringify({ round, ...r, listening: old && baseline ? 'baseline evstreamd' : 'evstreamd' }));
          record(`sql ${clients} client(s)`, round, old ? 'old' : 'new', r.chunks_per_s);
        }
      }
    }
  }
  for (const [key, byRound] of ratios) {
    const rs = [...byRound.values()].filter((x) => x.new && x.old).map((x) => +(x.new / x.old).toFixed(2));
    const sorted = [...rs].sort((x, y) => x - y);
    const median = sorted.length ? sorted[Math.floor((sorted.length - 1) / 2)] : null;
    console.log(JSON.stringify({ summary: key, new_per_s: [...byRound.values()].map((x) => x.new),
                                 old_per_s: [...byRound.values()].map((x) => x.old), ratios: rs, median_ratio: median }));
  }
} finally {
  agent.destroy();
}
