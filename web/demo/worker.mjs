// The demo worker: a process that takes new submissions from the log with evstream.consume,
// "works" on them (paced progress events), and posts progress and completion events. It is also
// the chat room's deterministic demo "AI": each chat.message gets a reply streamed token by token
// as ephemeral ai_chat_chunk events (evstream.publish), then stored as one ai_chat event.
// Usage: node web/demo/worker.mjs   (libpq environment: PGHOST, PGPORT, PGDATABASE, PGUSER)
import pg from 'pg';

const CONSUMER = process.env.DEMO_WORKER_NAME ?? 'demo-worker';
const STEP_MS = Number(process.env.DEMO_STEP_MS ?? 250);
const STEPS = [10, 25, 40, 55, 70, 85, 100];
const TOKEN_MS = Number(process.env.DEMO_TOKEN_MS ?? 60);

const db = new pg.Client();
let stopping = false;
let wake = null;

const post = (e, args) =>
  db.query(
    `SELECT * FROM evstream.post_event($1, 'submission', $2, $3, $4, '{"source": "demo-worker"}',
       correlation_id => $5, causation_id => $6, display => $7, created_by => 'agent:demo-worker')`,
    [e.channel, e.aggregate_id, args.type, args.data ?? {}, e.correlation_id ?? e.id, e.id, args.display ?? null],
  );

async function work(e) {
  const title = e.data?.title ?? e.aggregate_id;
  await post(e, {
    type: 'submission.processing',
    display: { role: 'assistant', content: `Working on “${title}”`, icon: '⚙', color: '#2563eb' },
  });
  for (const progress of STEPS) {
    await new Promise((r) => setTimeout(r, STEP_MS)); // simulated work
    await post(e, { type: 'submission.progress', data: { progress } });
  }
  await post(e, {
    type: 'submission.completed',
    data: { progress: 100, result: `${title}.mp4` },
    display: { role: 'assistant', content: `Done: ${title}.mp4 is ready`, icon: '✓', color: '#16a34a' },
  });
}

// Ephemeral: delivered to the channel's current subscribers by every evstreamd, never stored.
const publish = (channel, type, data) => db.query('SELECT evstream.publish($1, $2, $3)', [channel, type, data]);

function reply(text) {
  const words = text.split(/\s+/).filter(Boolean).length;
  return `Demo AI here. You wrote “${text}” (${words} word${words === 1 ? '' : 's'}). ` +
    'This answer is deterministic, streamed token by token as ephemeral events, ' +
    'and then stored once as an ai_chat event that replaces the preview.';
}

async function answer(e) {
  const text = reply(String(e.data?.text ?? ''));
  const streamId = e.id;
  const tokens = text.match(/\S+\s*/g) ?? [];
  for (const [i, token] of tokens.entries()) {
    await publish(e.channel, 'ai_chat_chunk', { streamId, text: token, done: i === tokens.length - 1 });
    await new Promise((r) => setTimeout(r, TOKEN_MS));
  }
  await db.query(
    `SELECT * FROM evstream.post_event($1, $2, $3, 'ai_chat', $4, '{"source": "demo-ai"}',
       correlation_id => $5, causation_id => $5, display => $6, created_by => 'agent:demo-ai')`,
    [e.channel, e.aggregate_type, e.aggregate_id, { streamId, text }, e.id,
     { role: 'assistant', content: text, icon: '🤖' }],
  );
}

async function drain() {
  for (;;) {
    const { rows } = await db.query('SELECT * FROM evstream.consume($1, 20)', [CONSUMER]);
    if (rows.length === 0) return;
    for (const e of rows) {
      try {
        if (e.event_type === 'submission.created') await work(e);
        if (e.event_type === 'chat.message') await answer(e);
        await db.query('SELECT evstream.ack($1, $2)', [CONSUMER, e.position]);
      } catch (err) {
        await db.query('SELECT evstream.fail($1, $2, $3)', [CONSUMER, e.position, String(err.message)]);
      }
    }
  }
}

async function main() {
  await db.connect();
  db.on('notification', () => wake?.());
  await db.query('LISTEN evstream');
  process.on('SIGTERM', () => { stopping = true; wake?.(); });
  process.on('SIGINT', () => { stopping = true; wake?.(); });
  console.log(JSON.stringify({ msg: 'demo worker ready', consumer: CONSUMER }));
  while (!stopping) {
    await drain();
    // Sleep until the doorbell rings (or a 1 s safety net for held-back events).
    await new Promise((r) => {
      wake = r;
      setTimeout(r, 1000);
    });
    wake = null;
  }
  await db.end();
}

main().catch((e) => {
  console.error(JSON.stringify({ msg: 'demo worker failed', error: e.message }));
  process.exit(1);
});
