// Debian's Chromium over HTTP/2 (TLS with a self-signed certificate made here with openssl,
// --ignore-certificate-errors): 10 tabs of the demo, each with its own server stream (share=0,
// so the shared-stream leader does not hide the transport), all receive an event posted from an
// 11th. Over HTTP/1.1 only 6 of them would get a connection; over HTTP/2 they are streams of one.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { chromium } from 'playwright-core';
import { CHROMIUM_OPTIONS } from './lib/chromium.mjs';
import { startDaemon, stopDaemon, token, waitFor } from '../e2e/lib/daemon.mjs';

const DB = 'evstream_browser_h2';
let admin, db, daemon, browser, dir, base;

before(async () => {
  admin = new pg.Client({ database: 'postgres' });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${DB}`);
  db = new pg.Client({ database: DB });
  await db.connect();
  await db.query('CREATE EXTENSION evstream');
  await db.query(fs.readFileSync('web/demo/schema.sql', 'utf8'));
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'evstream-browser-h2-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost',
    '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], { stdio: 'ignore' });
  daemon = await startDaemon({
    args: ['--web-root', 'web', '--tls-cert', path.join(dir, 'cert.pem'), '--tls-key', path.join(dir, 'key.pem')],
    env: { PGDATABASE: DB }, healthy: false,
  });
  base = `https://localhost:${daemon.port}`;
  await waitFor(async () => (await metrics().catch(() => '')).includes('evstream_sse_connections'), { what: 'metrics over TLS' });
  browser = await chromium.launch({ ...CHROMIUM_OPTIONS, args: [...CHROMIUM_OPTIONS.args, '--ignore-certificate-errors'] });
});

after(async () => {
  await browser?.close();
  await stopDaemon(daemon);
  await db?.end();
  await admin?.query(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`).catch(() => {});
  await admin?.end();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

function metrics() {
  return new Promise((resolve, reject) => {
    https.get(`${base}/metrics`, { rejectUnauthorized: false, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}
const gauge = async (name) => Number(new RegExp(`^${name} (\\d+)`, 'm').exec(await metrics())?.[1]);

async function openTab(context, jwt) {
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${base}/#token=${jwt}&share=0`);
  await page.waitForFunction(() => window.evstreamClient?.connectionState === 'open', null, { timeout: 20000 });
  await page.evaluate(() => {
    window.probes = [];
    window.evstreamClient.subscribe('probe:*', (e) => window.probes.push(e.position));
  });
  return { page, errors };
}

test('10 tabs over HTTP/2, each with its own stream, all receive an event posted from an 11th', async () => {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const jwt = token({ sub: 'h2-tabs', projects: ['demo'] });
  const before = await gauge('evstream_sse_connections');
  const tabs = [];
  for (let i = 0; i < 10; i++) tabs.push(await openTab(context, jwt));
  await waitFor(async () => (await gauge('evstream_sse_connections')) === before + 10, { what: '10 server streams' });
  for (const tab of tabs)
    assert.equal(await tab.page.evaluate(() => performance.getEntriesByType('navigation')[0].nextHopProtocol), 'h2');
  assert.ok((await gauge('evstream_h2_streams')) >= 10, 'the streams are HTTP/2 streams');

  const eleventh = await openTab(context, jwt);
  const position = await eleventh.page.evaluate(() => window.evstreamClient.post({
    channel: 'project:demo', aggregate_type: 'probe', aggregate_id: 'from-11th', event_type: 'probe.sent', data: {},
  }).then((e) => e.position));
  for (const [i, tab] of [...tabs, eleventh].entries())
    await waitFor(async () => (await tab.page.evaluate(() => window.probes)).includes(position), { what: `tab ${i} got the event` });
  for (const tab of [...tabs, eleventh]) {
    assert.deepEqual(await tab.page.evaluate(() => window.probes), [position], 'once each');
    assert.deepEqual(tab.errors, []);
  }
  await context.close();
  await waitFor(async () => (await gauge('evstream_sse_connections')) === before, { what: 'the streams closed with the tabs' });
});
