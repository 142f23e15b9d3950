// Ephemeral events: what rate of token chunks one stream and 100 concurrent streams sustain
// through POST /api/publish (publish-side coalescing, one NOTIFY transaction per round trip),
// and, as the baseline beside it, evstream.publish called straight from SQL (one NOTIFY
// transaction per chunk). A real evstreamd and a real subscriber that checks every stream's text
// arrives complete and in order. Prints one JSON line per scenario.
//   node bench/ephemeral/bench.mjs [seconds=5]
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

async function sqlBaseline(clients) {
  const p = uniq('bench');
  const deadline = Date.now() + seconds * 1000;
  let sent = 0;
  await Promise.all(Array.from({ length: clients }, async (_, i) => {
    const db = pgClient();
    await db.connect();
    while (Date.now() < deadline) {
      await db.query(`SELECT evstream.publish($1, 'ai_chat_chunk', jsonb_build_object('streamId', $2::text, 'text', 'x '))`,
        [`project:${p}`, `s${i}`]);
      sent++;
    }
    await db.end();
  }));
  return { path: 'sql evstream.publish (autocommit, one NOTIFY per chunk)', clients, chunks_per_s: Math.round(sent / seconds) };
}

const d = await startDaemon({ args: ['--max-connections', '5000', '--coalesce-ms', process.env.COALESCE_MS ?? '5'] });
try {
  console.log(JSON.stringify({ path: "http", coalesce_ms: Number(process.env.COALESCE_MS ?? 5), ...(await scenario(d, 1, 1)) }));
  console.log(JSON.stringify({ path: "http", coalesce_ms: Number(process.env.COALESCE_MS ?? 5), ...(await scenario(d, 1, 16)) }));
  console.log(JSON.stringify({ path: "http", coalesce_ms: Number(process.env.COALESCE_MS ?? 5), ...(await scenario(d, 100, 1)) }));
  console.log(JSON.stringify(await sqlBaseline(1)));
  console.log(JSON.stringify(await sqlBaseline(8)));
} finally {
  await stopDaemon(d);
  agent.destroy();
}
