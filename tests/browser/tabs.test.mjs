// One stream per browser (web/tabs.js) in Debian's Chromium over HTTP/1.1, against a real
// cluster and a real evstreamd serving the demo page: 10 tabs of one browser share one server
// stream (Web Locks leader, BroadcastChannel) and all receive an event posted from an 11th; all
// can POST (the 6-connection limit is no longer used up by streams); the leader tab closes and
// the others go on with nothing lost and nothing twice; tabs of other users never share; a tab's
// own channels are respected; `#share=0` (share: false) gives every tab its own stream.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import pg from 'pg';
import { chromium } from 'playwright-core';
import { CHROMIUM_OPTIONS } from './lib/chromium.mjs';
import { request, startDaemon, stopDaemon, token, waitFor } from '../e2e/lib/daemon.mjs';

const DB = 'evstream_browser_tabs';
let admin, db, daemon, browser;

before(async () => {
  admin = new pg.Client({ database: 'postgres' });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${DB}`);
  db = new pg.Client({ database: DB });
  await db.connect();
  await db.query('CREATE EXTENSION evstream');
  await db.query(fs.readFileSync('web/demo/schema.sql', 'utf8'));
  daemon = await startDaemon({ args: ['--web-root', 'web'], env: { PGDATABASE: DB } });
  browser = await chromium.launch(CHROMIUM_OPTIONS); // a fresh profile each run
});

after(async () => {
  await browser?.close();
  await stopDaemon(daemon);
  await db?.end();
  await admin?.query(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`).catch(() => {});
  await admin?.end();
});

// Open SSE streams on the daemon (its /metrics gauge).
async function streams() {
  const r = await request(daemon, '/metrics');
  const m = /^evstream_sse_connections (\d+)/m.exec(r.body);
  assert.ok(m, 'the daemon reports evstream_sse_connections');
  return Number(m[1]);
}

// The suite's daemon serves only this file's tabs: each test starts once the streams of the
// previous test's (closed) browser context are gone on the server, which may take a while on a
// loaded machine, so its baseline is 0 and never a count of streams still closing.
async function noStreams() {
  await waitFor(async () => (await streams()) === 0, { timeout: 30000, what: 'no server stream left from an earlier test' });
  return 0;
}

// A demo tab with a recorder of every stored "probe" event its client's subscribers see.
async function openTab(context, jwt, { share = true } = {}) {
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${daemon.url}/#token=${jwt}${share ? '' : '&share=0'}`);
  await page.waitForFunction(() => window.evstreamClient?.connectionState === 'open', null, { timeout: 20000 });
  await page.evaluate(() => {
    window.probes = [];
    window.evstreamClient.subscribe('probe:*', (e) => window.probes.push(e.position));
  });
  return { page, errors };
}

const roleOf = (tab) => tab.page.evaluate(() => window.evstreamClient.role);
const probesOf = (tab) => tab.page.evaluate(() => window.probes);

// Posts a probe event from a tab through its own client (POST /api/events); returns its position.
function postFrom(tab, id) {
  return tab.page.evaluate((aggregateId) => window.evstreamClient.post({
    channel: 'project:demo', aggregate_type: 'probe', aggregate_id: aggregateId, event_type: 'probe.sent', data: {},
  }).then((e) => e.position), id);
}

// The probe positions in the log's gap-free order (the order the stream delivers).
async function logOrder() {
  const { rows } = await db.query("SELECT position FROM evstream.events WHERE aggregate_type = 'probe' ORDER BY order_key, position");
  return rows.map((r) => Number(r.position));
}

// Every tab saw exactly the log's probes after `since` (a count of probes already in the log),
// once each, in the log's order.
async function assertExactly(tabs, since, what) {
  const want = (await logOrder()).slice(since);
  for (const [i, tab] of tabs.entries()) {
    await waitFor(async () => (await probesOf(tab)).filter((p) => want.includes(p)).length >= want.length,
      { timeout: 20000, what: `${what}: tab ${i} to receive ${want.length} probes` });
  }
  for (const [i, tab] of tabs.entries()) {
    const seen = (await probesOf(tab)).filter((p) => want.includes(p));
    assert.deepEqual(seen, want, `${what}: tab ${i} saw each probe once, in the log's order`);
  }
}

test('10 tabs share one stream, all receive an event posted from an 11th and all can POST; the leader closes and nothing is lost or repeated', async () => {
  const context = await browser.newContext();
  const jwt = token({ sub: 'tabs-user', projects: ['demo', 'other'] });
  const before = await noStreams();
  const tabs = await Promise.all(Array.from({ length: 10 }, () => openTab(context, jwt)));
  const roles = await Promise.all(tabs.map(roleOf));
  assert.equal(roles.filter((r) => r === 'leader').length, 1, `one leader: ${roles}`);
  assert.equal(roles.filter((r) => r === 'follower').length, 9);
  await waitFor(async () => (await streams()) === before + 1, { timeout: 30000, what: 'one server stream for 10 tabs' });

  // An 11th tab posts; every tab (and the 11th) receives the event once.
  const eleventh = await openTab(context, jwt);
  const position = await postFrom(eleventh, 'from-11th');
  for (const tab of [...tabs, eleventh]) {
    await waitFor(async () => (await probesOf(tab)).includes(position), { what: 'the 11th tab\'s event in every tab' });
  }
  // (the stream count settles: it must come back to, and stay at, one stream for the 11 tabs)
  await waitFor(async () => (await streams()) === before + 1, { timeout: 30000, what: 'still one server stream for 11 tabs' });

  // All 10 tabs POST at once: all succeed, every tab gets all 10 exactly once.
  const already = (await logOrder()).length;
  const posted = await Promise.all(tabs.map((tab, i) => postFrom(tab, `tab-${i}`)));
  assert.equal(new Set(posted).size, 10, 'every tab posted');
  await assertExactly([...tabs, eleventh], already, 'concurrent POSTs');

  // The leader closes while events are being posted; twice, so a tab that took over hands over too.
  let live = [...tabs, eleventh];
  for (let round = 0; round < 2; round++) {
    const from = (await logOrder()).length;
    const leaderIndex = (await Promise.all(live.map(roleOf))).indexOf('leader');
    assert.ok(leaderIndex >= 0, 'a leader exists');
    const leader = live[leaderIndex];
    live = live.filter((t) => t !== leader);
    const poster = live[live.length - 1];
    const posting = (async () => {
      for (let i = 0; i < 20; i++) await postFrom(poster, `round-${round}-${i}`);
    })();
    await waitFor(async () => (await logOrder()).length >= from + 5, { what: 'posting under way' });
    await leader.page.close();
    await posting;
    await assertExactly(live, from, `leader closed (round ${round})`);
    const after = await Promise.all(live.map(roleOf));
    assert.equal(after.filter((r) => r === 'leader').length, 1, `a new leader: ${after}`);
    await waitFor(async () => (await streams()) === before + 1, { timeout: 30000, what: 'one server stream after the takeover' });
  }
  for (const tab of live) assert.equal(await tab.page.evaluate(() => window.evstreamClient.connectionState), 'open');
  for (const tab of [...tabs, eleventh]) assert.deepEqual(tab.errors, []);
  await context.close();
  await waitFor(async () => (await streams()) === before, { timeout: 30000, what: 'the stream closed with the last tab' });
});

test('a tab sees only what its own client asked for; other users do not share', async () => {
  const context = await browser.newContext();
  const jwt = token({ sub: 'tabs-filter', projects: ['demo', 'other'] });
  const before = await noStreams();
  const a = await openTab(context, jwt);
  const b = await openTab(context, jwt);
  assert.deepEqual([await roleOf(a), await roleOf(b)].sort(), ['follower', 'leader']);
  // A second client in tab b asks for project:other only: the shared stream grows to the union.
  await b.page.evaluate(async (t) => {
    const { connect } = await import('/evstream.js');
    window.otherClient = connect({ url: '', token: t, channels: ['project:other'] });
    window.otherSeen = [];
    window.otherClient.subscribe('*', (e) => { if (e.position !== undefined) window.otherSeen.push(e.channel); });
    await new Promise((resolve) => {
      if (window.otherClient.connectionState === 'open') resolve();
      window.otherClient.onStateChange((s) => s === 'open' && resolve());
    });
  }, jwt);
  await db.query(`SELECT evstream.post_event('project:other', 'probe', 'o1', 'probe.sent')`);
  const demoPos = Number((await db.query(`SELECT position FROM evstream.post_event('project:demo', 'probe', 'd1', 'probe.sent')`)).rows[0].position);
  await waitFor(() => b.page.evaluate(() => window.otherSeen.length >= 1), { what: 'the project:other client to get its event' });
  for (const tab of [a, b]) await waitFor(async () => (await probesOf(tab)).includes(demoPos), { what: 'demo tabs get the demo event' });
  // A later demo event proves the stream has passed the project:other one too.
  const demoPos2 = Number((await db.query(`SELECT position FROM evstream.post_event('project:demo', 'probe', 'd2', 'probe.sent')`)).rows[0].position);
  for (const tab of [a, b]) await waitFor(async () => (await probesOf(tab)).includes(demoPos2), { what: 'the second demo event' });
  assert.deepEqual(await b.page.evaluate(() => window.otherSeen), ['project:other'], 'no project:demo event for the project:other client');
  for (const tab of [a, b]) {
    const channels = await tab.page.evaluate(() => window.probes.length);
    assert.equal(channels, 2, 'the demo clients saw no project:other event');
  }
  // The leader's stream was reopened for the union of channels: the old one may still be closing
  // on the server, so wait for the count to settle at one (two streams would never settle there).
  await waitFor(async () => (await streams()) === before + 1, { timeout: 30000, what: 'the two tabs and three clients still use one stream' });

  // Another user in the same browser gets a stream of their own.
  const c = await openTab(context, token({ sub: 'someone-else', projects: ['demo'] }));
  assert.equal(await roleOf(c), 'leader');
  await waitFor(async () => (await streams()) === before + 2, { timeout: 30000, what: 'a second stream for the second user' });
  await context.close();
  await waitFor(async () => (await streams()) === before, { timeout: 30000, what: 'the streams closed with the context' });
});

test('share: false (#share=0) gives each tab its own stream', async () => {
  const context = await browser.newContext();
  const jwt = token({ sub: 'tabs-own', projects: ['demo'] });
  const before = await noStreams();
  const tabs = await Promise.all(Array.from({ length: 3 }, () => openTab(context, jwt, { share: false })));
  assert.deepEqual(await Promise.all(tabs.map(roleOf)), ['single', 'single', 'single']);
  await waitFor(async () => (await streams()) === before + 3, { timeout: 30000, what: 'three streams for three tabs' });
  const from = (await logOrder()).length;
  await postFrom(tabs[0], 'own');
  await assertExactly(tabs, from, 'opt-out');
  await context.close();
  await waitFor(async () => (await streams()) === before, { timeout: 30000, what: 'the streams closed with the context' });
});
