// The demo chat room in Debian's Chromium with two browser contexts (alice, bob), against a real
// cluster, a real evstreamd and the real demo worker (its deterministic "AI"): the online list,
// typing indicators, a stored message on both pages, and the AI reply streamed token by token
// then replaced by the stored ai_chat event; bob leaving drops him from alice's list.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { chromium } from 'playwright-core';
import { CHROMIUM_OPTIONS } from './lib/chromium.mjs';
import { startDaemon, stopDaemon, token } from '../e2e/lib/daemon.mjs';

const DB = 'evstream_browser_chat';
const OUT = path.resolve('tests/output/browser');
let admin, db, daemon, worker, browser;

before(async () => {
  fs.mkdirSync(OUT, { recursive: true });
  admin = new pg.Client({ database: 'postgres' });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${DB}`);
  db = new pg.Client({ database: DB });
  await db.connect();
  await db.query('CREATE EXTENSION evstream');
  await db.query(fs.readFileSync('web/demo/schema.sql', 'utf8'));
  const env = { PGDATABASE: DB };
  // A typing ttl far longer than a slow page needs to see the indicator (with 3 s, a page slowed
  // down on a loaded machine could miss it between set and expiry); sending clears it anyway.
  daemon = await startDaemon({ args: ['--web-root', 'web', '--presence-leave-grace-ms', '200', '--typing-ttl-ms', '10000'], env });
  worker = spawn(process.execPath, ['web/demo/worker.mjs'], {
    env: { ...process.env, ...env, DEMO_STEP_MS: '30', DEMO_TOKEN_MS: '25' }, stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise((resolve, reject) => {
    worker.stdout.on('data', (d) => String(d).includes('ready') && resolve());
    worker.on('exit', (code) => reject(new Error(`demo worker exited ${code}`)));
  });
  browser = await chromium.launch(CHROMIUM_OPTIONS); // a fresh profile each run
});

after(async () => {
  await browser?.close();
  worker?.kill('SIGTERM');
  await stopDaemon(daemon);
  await db?.end();
  await admin?.query(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`).catch(() => {});
  await admin?.end();
});

async function open(user) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 760 } });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${daemon.url}/#token=${token({ sub: user, projects: ['demo'] })}`);
  await page.waitForFunction(() => document.querySelector('[data-testid="connection"]')?.dataset.state === 'open');
  return { context, page, errors };
}

const onlineOf = (page) => page.$$eval('[data-testid="online-user"]', (els) => els.map((e) => e.textContent));

test('two users: online list, typing, a stored message, and a streamed AI reply replaced by the stored one', async () => {
  const alice = await open('alice');
  const bob = await open('bob');
  for (const { page } of [alice, bob])
    await page.waitForFunction(() => [...document.querySelectorAll('[data-testid="online-user"]')].map((e) => e.textContent).join() === 'alice,bob',
      null, { timeout: 30000 });

  // alice types: bob sees it
  await alice.page.fill('[data-testid="chat-input"]', 'How are');
  await alice.page.type('[data-testid="chat-input"]', ' you?');
  await bob.page.waitForFunction(() => document.querySelector('[data-testid="typing"]').textContent === 'alice is typing…', null, { timeout: 30000 });
  assert.equal(await alice.page.textContent('[data-testid="typing"]'), '', 'no indicator for oneself');

  // alice sends: the message is stored and shown on both pages, the indicator goes away
  await alice.page.click('[data-testid="chat-send"]');
  for (const { page } of [alice, bob])
    await page.waitForFunction(() => [...document.querySelectorAll('[data-testid="chat-message"]')].some((m) => m.querySelector('.text').textContent === 'How are you?'),
      null, { timeout: 30000 });
  await bob.page.waitForFunction(() => document.querySelector('[data-testid="typing"]').textContent === '', null, { timeout: 30000 });
  const stored = await db.query(`SELECT created_by, data->>'text' AS text FROM evstream.events WHERE event_type = 'chat.message'`);
  assert.deepEqual(stored.rows, [{ created_by: 'user:alice', text: 'How are you?' }]);

  // the demo AI's answer: many chunks, then the stored ai_chat event replaces the preview
  for (const { page } of [alice, bob])
    await page.waitForFunction(() => document.querySelector('[data-testid="chat-answer"]')?.dataset.state === 'final', null, { timeout: 60000 });
  const finalText = (await db.query(`SELECT data->>'text' AS text, id FROM evstream.events WHERE event_type = 'ai_chat'`)).rows[0];
  for (const { page } of [alice, bob]) {
    const shown = await page.$eval('[data-testid="chat-answer"]', (el) => ({ text: el.textContent, eventId: el.dataset.eventId }));
    assert.deepEqual(shown, { text: finalText.text, eventId: finalText.id });
    const order = await page.$$eval('#chat-messages > li', (els) => els.map((el) => el.dataset.testid));
    assert.deepEqual(order, ['chat-message', 'chat-answer'], 'the reply below the message it answers');
    const stats = await page.evaluate(() => window.chatStats);
    assert.ok(stats.chunks >= 10, `streamed token by token: ${stats.chunks} chunks`);
    assert.equal(stats.finals, 1);
  }
  assert.equal(await db.query(`SELECT count(*)::int AS n FROM evstream.events WHERE event_type = 'ai_chat_chunk'`).then((r) => r.rows[0].n), 0,
    'chunks are never stored');
  await bob.page.screenshot({ path: path.join(OUT, 'chat.png') });

  // bob leaves: alice's online list drops him
  await bob.context.close();
  await alice.page.waitForFunction(() => [...document.querySelectorAll('[data-testid="online-user"]')].map((e) => e.textContent).join() === 'alice',
    null, { timeout: 30000 });
  assert.deepEqual(await onlineOf(alice.page), ['alice']);
  assert.deepEqual(alice.errors, []);
  assert.deepEqual(bob.errors, []);
  await alice.context.close();
});
