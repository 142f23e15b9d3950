// evstreamd under load: a client that stops reading is dropped (event: overflow) while others
// keep receiving, and resumes without loss; 1 000 concurrent clients all receive a burst.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import {
  SseParser, openReady, pgClient, request, startDaemon, stopDaemon, token, uniq, waitFor,
} from './lib/daemon.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
let db;
before(async () => { db = pgClient(); await db.connect(); });
after(async () => { await db.end(); });

const metric = (body, name) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(body)[1]);

// Posts n events of about `size` bytes each in one statement; returns positions in log order.
async function burst(channel, n, size = 10) {
  const r = await db.query(
    `SELECT (evstream.post_event($1, 'blob', 'b' || g, 'blob.added',
        jsonb_build_object('g', g, 'pad', repeat('x', $3)))).position
       FROM generate_series(1, $2) g`, [channel, n, size]);
  return r.rows.map((x) => Number(x.position));
}

describe('evstreamd load', () => {
  test('a client that stops reading is dropped while others receive, then resumes without loss', async () => {
    // A 5 s stall timeout: the never-reading client is dropped after it, while the fast client,
    // which lags during the 16 MiB burst and catches up from the log, is never stalled that long
    // even when this process or an ASan daemon is slowed down (with 500 ms it could be dropped too).
    const d = await startDaemon({ args: ['--max-queue-bytes', '65536', '--stall-timeout-ms', '5000'] });
    try {
      const p = uniq('p');
      const t = token({ projects: [p] });
      const fast = await openReady(d, { tokenValue: t });
      // The slow client: a raw socket that stops reading after the response head.
      const slow = net.connect({ host: '127.0.0.1', port: d.port });
      let slowText = '';
      slow.setEncoding('utf8');
      await new Promise((resolve) => slow.on('connect', resolve));
      slow.write(`GET /api/events/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${t}\r\n\r\n`);
      const onData = (c) => { slowText += c; };
      slow.on('data', onData);
      await waitFor(() => slowText.includes('event: connected'), { timeout: 30000, what: 'slow client connected' });
      slow.pause();
      const ended = new Promise((resolve) => slow.on('end', resolve));

      const posting = burst(`project:${p}`, 2000, 8192);  // ~16 MiB: more than socket buffers
      await waitFor(async () => metric((await request(d, '/metrics')).body, 'evstream_slow_client_drops_total') >= 1,
        { what: 'slow client dropped', timeout: 60000 });
      // Read what the slow client was sent: events in order, then event: overflow, then EOF.
      slow.resume();
      await ended;
      const positions = await posting;
      await fast.until((evs) => evs.filter((e) => e.event === 'blob.added').length === 2000, 60000, 'fast client burst');
      assert.deepEqual(fast.positions(), positions, 'the fast client got everything, in order');
      assert.equal(fast.ended, false, 'the fast client was not dropped');
      // It passed the queue limit during the burst and caught up from the log instead.
      assert.ok(metric((await request(d, '/metrics')).body, 'evstream_lagging_total') >= 1);
      assert.equal(metric((await request(d, '/metrics')).body, 'evstream_slow_client_drops_total'), 1);
      const got = [];
      const parser = new SseParser((ev) => got.push(ev));
      parser.push(slowText.slice(slowText.indexOf('\r\n\r\n') + 4));
      assert.equal(got.at(-1).event, 'overflow');
      const seen = got.filter((e) => e.event === 'blob.added').map((e) => Number(e.id));
      assert.ok(seen.length < positions.length, 'the slow client did not get everything before the drop');
      assert.deepEqual(seen, positions.slice(0, seen.length));

      // Resume by Last-Event-ID: the rest, exactly once.
      const resumed = await openReady(d, { tokenValue: t, lastEventId: seen.at(-1) ?? 0 });
      await resumed.until((evs) => evs.some((e) => e.id === String(positions.at(-1))), 60000, 'resumed to the end');
      const rest = resumed.positions();
      assert.deepEqual(seen.length ? [...seen, ...rest] : rest.filter((x) => positions.includes(x)), positions);
      fast.close(); resumed.close(); slow.destroy();
    } finally {
      await stopDaemon(d);
    }
  });

  test('1 000 concurrent clients all receive a burst, in order', { timeout: 300000 }, async () => {
    // One address and one token for every client: lift the per-address and per-sub limits.
    const d = await startDaemon({ args: ['--max-connections-per-address', '5000', '--max-connections-per-sub', '5000'] });
    try {
      const p = uniq('p');
      const N = 1000, EVENTS = 50;
      // The client side needs more than 1 024 descriptors too: raise the soft limit in its shell.
      const child = spawn('bash', ['-c', 'ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$0" "$@"',
        process.execPath, path.join(here, 'lib', 'load_client.mjs'),
        `${d.url}/api/events/stream?channel=project:${p}`, token({ projects: [p] }), String(N), String(EVENTS)],
      { stdio: ['ignore', 'pipe', 'inherit'] });
      const lines = readline.createInterface({ input: child.stdout });
      const it = lines[Symbol.asyncIterator]();
      const first = await it.next();
      assert.equal(first.value, 'ready');
      const m = await request(d, '/metrics');
      assert.ok(metric(m.body, 'evstream_sse_connections') >= N);
      const positions = await burst(`project:${p}`, EVENTS, 100);
      const result = JSON.parse((await it.next()).value);
      assert.equal(result.connected, N);
      assert.equal(result.complete, N, `only ${result.complete} of ${N} clients got all ${EVENTS} events`);
      assert.equal(result.failed, 0);
      assert.equal(result.same, true);
      assert.deepEqual(result.ids, positions);
      await new Promise((resolve) => child.on('exit', resolve));
    } finally {
      await stopDaemon(d);
    }
  });
});
