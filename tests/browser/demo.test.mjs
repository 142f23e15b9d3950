// The live chat-thread demo in Debian's Chromium (playwright-core), against a real cluster, a
// real evstreamd and the real demo worker: submit a job, watch bubbles, progress and status
// arrive over SSE with no reload; cut the daemon's database connections and see the page recover.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { chromium } from 'playwright-core';
import { CHROMIUM_OPTIONS } from './lib/chromium.mjs';
import { startDaemon, stopDaemon, token, waitFor } from '../e2e/lib/daemon.mjs';

const DB = 'evstream_browser';
const OUT = path.resolve('tests/output/browser');
let admin, db, daemon, worker, browser, profile;

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
  daemon = await startDaemon({ args: ['--web-root', 'web'], env });
  worker = spawn(process.execPath, ['web/demo/worker.mjs'], {
    env: { ...process.env, ...env, DEMO_STEP_MS: '60' }, stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise((resolve, reject) => {
    worker.stdout.on('data', (d) => String(d).includes('ready') && resolve());
    worker.on('exit', (code) => reject(new Error(`demo worker exited ${code}`)));
  });
  profile = fs.mkdtempSync(path.join(os.tmpdir(), 'evstream-chromium-'));
  // A fresh profile each run.
  browser = await chromium.launchPersistentContext(profile, { ...CHROMIUM_OPTIONS, viewport: { width: 1200, height: 760 } });
});

after(async () => {
  await browser?.close();
  worker?.kill('SIGTERM');
  await stopDaemon(daemon);
  await db?.end();
  await admin?.query(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`).catch(() => {});
  await admin?.end();
  if (profile) fs.rmSync(profile, { recursive: true, force: true });
});

async function bubbles(page) {
  return page.$$eval('[data-testid="bubble"]', (els) => els.map((el) => {
    const r = el.getBoundingClientRect();
    const parent = el.parentElement.getBoundingClientRect();
    return {
      type: el.dataset.type, role: el.dataset.role, text: el.querySelector('.content').textContent,
      side: r.left + r.width / 2 > parent.left + parent.width / 2 ? 'right' : 'left',
    };
  }));
}

async function submissionState(page, title) {
  return page.$$eval('[data-testid="submission"]', (els, t) => {
    const el = els.find((e) => e.querySelector('.title').textContent === t);
    return el ? { status: el.querySelector('.status').textContent, progress: el.querySelector('.value').textContent } : null;
  }, title);
}

test('submit a job and watch it run live; recover after the daemon loses its database connections', async () => {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  let loads = 0;
  page.on('load', () => loads++);
  const jwt = token({ sub: 'browser-user', projects: ['demo'] });
  await page.goto(`${daemon.url}/#token=${jwt}`);
  await page.waitForSelector('[data-testid="connection"][data-state="open"]');

  await page.fill('[data-testid="job-title"]', 'Launch teaser');
  await page.click('[data-testid="submit-job"]');

  // Live: bubbles in order, user on the right, assistant on the left; progress to 100; completed.
  await page.waitForFunction(() =>
    [...document.querySelectorAll('[data-testid="bubble"]')].some((b) => b.dataset.type === 'submission.completed'));
  await page.waitForSelector('[data-testid="thread-progress"][data-value="100"]');
  const thread = await bubbles(page);
  assert.deepEqual(thread.map((b) => [b.type, b.role, b.side]), [
    ['submission.created', 'user', 'right'],
    ['submission.processing', 'assistant', 'left'],
    ['submission.completed', 'assistant', 'left'],
  ]);
  assert.match(thread[0].text, /Launch teaser/);
  await waitFor(async () => (await submissionState(page, 'Launch teaser'))?.status === 'completed',
    { what: 'status completed' });
  assert.equal((await submissionState(page, 'Launch teaser')).progress, '100%');
  const { rows } = await db.query("SELECT status, progress FROM demo.submissions WHERE title = 'Launch teaser'");
  assert.deepEqual(rows, [{ status: 'completed', progress: 100 }], 'the page agrees with the projection');

  // Cut every connection the daemon has to the database, then post while it reconnects.
  const cut = await db.query(
    "SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE application_name = 'evstreamd' AND datname = $1",
    [DB]);
  assert.ok(cut.rows[0].n >= 1, 'the daemon had database connections to cut');
  await db.query(`SELECT evstream.post_event('project:demo', 'submission', 'job_sql', 'submission.created',
      '{"title": "Posted during the outage"}', display => '{"role": "user", "content": "Posted during the outage"}')`);

  await waitFor(async () => (await submissionState(page, 'Posted during the outage'))?.status === 'completed',
    { timeout: 60000, what: 'the job posted during the outage to complete on the page' });
  assert.equal(loads, 1, 'no page reload happened');
  assert.equal(await page.getAttribute('[data-testid="connection"]', 'data-state'), 'open');
  await page.click('[data-testid="submission"][data-id="job_sql"]');
  await page.waitForSelector('[data-testid="thread-progress"][data-value="100"]');
  await page.screenshot({ path: path.join(OUT, 'demo.png') });
  assert.deepEqual(errors, []);
});

test('opened without a token, the page says how to get one (not "HTTP 401")', async () => {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${daemon.url}/`);
  await page.waitForSelector('[data-testid="token-help"]', { state: 'visible' });
  assert.equal(await page.textContent('[data-testid="thread-title"]'), 'This demo needs a token');
  const help = await page.textContent('[data-testid="token-help"]');
  assert.match(help, /make demo/);
  assert.match(help, /#token=/);
  assert.match(help, /scripts\/jwt\.mjs/);
  assert.match(await page.textContent('[data-testid="token-reason"]'), /without a token/);
  assert.doesNotMatch(await page.textContent('body'), /HTTP 401/);
  assert.equal(await page.getAttribute('[data-testid="connection"]', 'data-state'), 'closed');
  await page.screenshot({ path: path.join(OUT, 'demo-no-token.png') });

  // An expired token: the page says the token was refused, with the server's reason.
  const expired = token({ sub: 'late', projects: ['demo'], exp: Math.floor(Date.now() / 1000) - 60 });
  const page2 = await browser.newPage();
  page2.on('pageerror', (e) => errors.push(e.message));
  await page2.goto(`${daemon.url}/#token=${expired}`);
  await page2.waitForSelector('[data-testid="token-help"]', { state: 'visible' });
  assert.equal(await page2.textContent('[data-testid="thread-title"]'), 'The token was refused');
  assert.match(await page2.textContent('[data-testid="token-reason"]'), /The server said: .+/);
  assert.deepEqual(errors, []);
  await page.close();
  await page2.close();
});
