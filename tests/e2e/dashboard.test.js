'use strict';
// The live dashboard (web/index.html, served at GET /) in a real browser: Debian's Chromium driven by playwright-core
// (never a downloaded browser). The page connects to /ws and says so, lists published events with their type and
// severity badge, publishes through its form, narrows its subscription with a filter, and shows /api/stats.
// A screenshot of the end state goes to build/dashboard.png.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { launchChromium, closeChromium } = require('./lib/browser');
const { execFileSync } = require('node:child_process');
const { startServer, BIN } = require('./lib/server');
const { publishOk, request, getJson } = require('./lib/http');
const { SseClient } = require('./lib/sse');
const { sleep, uniq, waitFor } = require('./lib/util');

const SCREENSHOT = path.resolve(__dirname, '../../build/dashboard.png');
const WAIT = 5000; // every wait for the page is bounded by this (or less)

describe('dashboard (GET /) in Chromium', { timeout: 90000 }, () => {
  let srv;
  let browser;
  let page;
  const frames = []; // every message the page received on /ws, parsed
  const sent = []; // every message the page sent on /ws, parsed
  const pageErrors = [];
  const channel = `incidents.${uniq('INC')}`;
  let sse; // another client, so that the channel list has a channel of its own and a shared one

  /** The row of the event with this id, as {type, sev, sevClass, sevColor, channels, data}, or null. */
  const row = (id) => page.evaluate((eid) => {
    const li = document.querySelector(`#events li[data-id="${CSS.escape(eid)}"]`);
    if (!li)
      return null;
    const badge = li.querySelector('.type .sev');
    return {
      type: li.querySelector('.type').firstChild.textContent,
      sev: badge ? badge.textContent : null,
      sevClass: badge ? badge.className : null,
      sevColor: badge ? getComputedStyle(badge).backgroundColor : null,
      channels: li.querySelector('.channels').textContent,
      data: li.querySelector('pre').textContent,
    };
  }, id);
  const waitRow = (id, what) => waitFor(() => row(id), { timeout: WAIT, message: `${what} (${id}) in the event list` });
  const framesOf = (type) => frames.filter((m) => m.type === type);

  before(async () => {
    srv = await startServer();
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    page.setDefaultTimeout(WAIT);
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error')
        pageErrors.push(`${m.text()} (${m.location().url})`);
    });
    page.on('websocket', (ws) => {
      if (new URL(ws.url()).pathname === '/ws') {
        ws.on('framereceived', (f) => frames.push(JSON.parse(f.payload)));
        ws.on('framesent', (f) => sent.push(JSON.parse(f.payload)));
      }
    });
  });

  after(async () => {
    sse?.close();
    await closeChromium(browser);
    if (srv)
      await srv.stop();
  });

  it('loads, connects to /ws and says "connected"', { timeout: 20000 }, async () => {
    const r = await request(srv.port, { path: '/' });
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /^text\/html/);
    assert.match(r.text, /<ul id="events">/, 'the dashboard page, not the built-in fallback');

    await page.goto(`${srv.base}/`, { waitUntil: 'load', timeout: 10000 });
    assert.equal(await page.title(), 'realtime — live events');
    await page.waitForFunction(() => /^connected\b/.test(document.getElementById('status').textContent), null,
      { timeout: WAIT });
    const status = await page.evaluate(() => ({
      text: document.getElementById('status').textContent,
      live: document.getElementById('status').classList.contains('live'),
    }));
    const welcome = framesOf('welcome')[0];
    assert.ok(welcome, 'a welcome frame');
    assert.equal(status.text, `connected · ${welcome.client_id}`);
    assert.ok(status.live, 'the status badge is styled live');
    // the page subscribes on open; events published before that would not be shown
    await waitFor(() => framesOf('subscribed').length === 1, { timeout: WAIT, message: 'the page\'s subscription' });
    assert.deepEqual(framesOf('subscribed')[0], { type: 'subscribed', id: 'dashboard',
      channels: ['incidents', 'incidents.>', 'timeline.>', 'system'] });
    await page.waitForFunction(() => document.getElementById('message').textContent.startsWith('Subscribed to'));
  });

  it('an event published with POST /api/events appears with its type and SEV badge', { timeout: 20000 }, async () => {
    const id = uniq('evt');
    const data = { id: 'INC-1', severity: 'SEV-1', status: 'open', title: 'Checkout <b>errors</b>' };
    const pub = await publishOk(srv, { id, type: 'incident.created', channels: [channel], data });
    const r = await waitRow(id, 'the API-published event');
    assert.equal(r.type, 'incident.created');
    assert.equal(r.sev, 'SEV-1');
    assert.equal(r.sevClass, 'sev sev-SEV-1');
    assert.equal(r.sevColor, 'rgb(255, 93, 93)', 'the SEV-1 badge is red');
    assert.ok(r.channels.includes(channel) && r.channels.endsWith(`#${pub.seq}`), r.channels);
    assert.deepEqual(JSON.parse(r.data), data, 'the data as text (markup not interpreted)');
    assert.equal(await page.locator('#events b').count(), 0, 'no HTML injected from event data');
    // newest first
    assert.equal(await page.locator('#events li').first().getAttribute('data-id'), id);
  });

  it('publishing through the page\'s form works', { timeout: 20000 }, async () => {
    const marker = uniq('form');
    await page.selectOption('#pub-type', 'sla.breach');
    await page.fill('#pub-channels', `${channel}, timeline.${marker}`);
    await page.fill('#pub-data', JSON.stringify({ severity: 'SEV-2', marker, minutes: 45 }));
    const [resp] = await Promise.all([
      page.waitForResponse((x) => new URL(x.url()).pathname === '/api/events' && x.request().method() === 'POST',
        { timeout: WAIT }),
      page.click('#pub-form button[type=submit]'),
    ]);
    assert.equal(resp.status(), 200);
    const j = await resp.json();
    await page.waitForFunction((t) => document.getElementById('message').textContent === t,
      `Published ${j.id} (seq ${j.seq})`, { timeout: WAIT });
    const r = await waitRow(j.id, 'the form-published event');
    assert.equal(r.type, 'sla.breach');
    assert.equal(r.sev, 'SEV-2');
    assert.equal(r.sevColor, 'rgb(255, 169, 77)', 'the SEV-2 badge is orange');
    assert.deepEqual(JSON.parse(r.data), { severity: 'SEV-2', marker, minutes: 45 });
    // delivered once, although it names two channels the page subscribes to
    assert.equal(frames.filter((m) => m.type === 'event' && m.event.id === j.id).length, 1);
    assert.equal(await page.locator(`#events li[data-id="${j.id}"]`).count(), 1);
    // and the server stored what the form sent
    const h = await getJson(srv, `/api/history?channel=timeline.${marker}`);
    assert.deepEqual(h.events.map((e) => [e.id, e.type, e.data.marker]), [[j.id, 'sla.breach', marker]]);
  });

  it('a filter subscription ({"severity":"SEV-1"}) hides a SEV-2 event', { timeout: 20000 }, async () => {
    const subscribedBefore = framesOf('subscribed').length;
    await page.fill('#filters', '{"severity":"SEV-1"}');
    await page.click('#sub-form button[type=submit]');
    await waitFor(() => framesOf('subscribed').length === subscribedBefore + 1,
      { timeout: WAIT, message: 'the filtered subscription to be confirmed' });
    assert.equal(framesOf('unsubscribed').length, 1, 'the old subscription was dropped first');
    assert.equal(framesOf('error').length, 0, JSON.stringify(framesOf('error')));

    const sev2 = uniq('sev2');
    const sev1 = uniq('sev1');
    await publishOk(srv, { id: sev2, type: 'incident.updated', channels: [channel], data: { severity: 'SEV-2' } });
    await publishOk(srv, { id: sev1, type: 'incident.updated', channels: [channel], data: { severity: 'SEV-1' } });
    // events arrive in seq order, so once the SEV-1 one is shown the SEV-2 one would have been too
    const r = await waitRow(sev1, 'the SEV-1 event after the filter');
    assert.equal(r.sev, 'SEV-1');
    assert.equal(await row(sev2), null, 'the SEV-2 event is not listed');
    assert.ok(!frames.some((m) => m.type === 'event' && m.event.id === sev2), 'the server did not send the SEV-2 event');
  });

  it('a filter that is not JSON is reported and keeps the current subscription', { timeout: 20000 }, async () => {
    const sentBefore = sent.length;
    await page.fill('#filters', '{"severity":');
    await page.click('#sub-form button[type=submit]');
    await page.waitForFunction(() => document.getElementById('message').textContent.startsWith('Filter: '), null,
      { timeout: WAIT });
    assert.deepEqual(sent.slice(sentBefore), [], 'nothing sent: no unsubscribe, no subscribe');
    const id = uniq('still');
    await publishOk(srv, { id, type: 'incident.updated', channels: [channel], data: { severity: 'SEV-1' } });
    assert.equal((await waitRow(id, 'an event on the kept subscription')).sev, 'SEV-1');
  });

  it('shows the server\'s /api/stats, polled', { timeout: 20000 }, async () => {
    const stats = await getJson(srv, '/api/stats');
    const shown = await waitFor(async () => {
      const s = await page.evaluate(() => Object.fromEntries([...document.querySelectorAll('#stats dt')]
        .map((dt) => [dt.textContent, dt.nextElementSibling.textContent])));
      return Number(s.published) >= stats.events.published ? s : null; // a poll after our five publishes
    }, { timeout: WAIT, message: 'the stats panel to show the published count' });
    assert.equal(Number(shown.published), 5);
    assert.ok(Number(shown.connections) >= 1 && Number(shown.websocket) >= 1, JSON.stringify(shown));
    assert.equal(Number(shown.subscriptions), 1);
    assert.equal(Number(shown.delivered), 4);
    assert.match(shown.uptime, /^\d+ s$/);
    assert.equal(await page.locator('#count').textContent(), '4 received');
  });

  // The charts, the channel list, the error counters and the node list, all drawn by the page from /api/stats.
  it('charts published, delivered and connections over time, matching /api/stats', { timeout: 30000 }, async () => {
    sse = await SseClient.connect(srv.port, `/events?channels=${encodeURIComponent(channel)},system`);
    const pollsBefore = await page.evaluate(() => window.realtimeDashboard.samples.length);
    // events over a few polls, so the rates are not all zero
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 4; i++)
        await publishOk(srv, { type: 'incident.updated', channels: [channel], data: { severity: 'SEV-1', round, i } });
      await sleep(1100);
    }
    const stats = await getJson(srv, '/api/stats');
    // nothing is published any more: within a poll the page's latest sample has the same totals
    const last = await waitFor(async () => {
      const l = await page.evaluate(() => window.realtimeDashboard.samples.at(-1));
      return l && l.published === stats.events.published && l.delivered === stats.events.delivered ? l : null;
    }, { timeout: 2 * 2000 + 1000, message: 'the chart\'s latest sample to match /api/stats' });
    assert.equal(last.connections, stats.connections.total, 'the page\'s socket and the SSE client');
    assert.equal(stats.connections.total, 2);
    const samples = await page.evaluate(() => window.realtimeDashboard.samples);
    assert.ok(samples.length >= pollsBefore + 2, `a sample per poll (${pollsBefore} then ${samples.length})`);
    assert.ok(samples.some((x) => x.publishedRate > 0) && samples.some((x) => x.deliveredRate > 0), JSON.stringify(samples));

    // the polylines have a point per sample (rates from the second sample on), inside the drawing
    const lines = await page.evaluate(() => Object.fromEntries([...document.querySelectorAll('svg.chart polyline')]
      .map((pl) => [pl.dataset.series, pl.getAttribute('points').trim().split(/\s+/).filter(Boolean)
        .map((xy) => xy.split(',').map(Number))])));
    assert.deepEqual(Object.keys(lines).sort(), ['connections', 'deliveredRate', 'publishedRate']);
    assert.ok(lines.connections.length >= 4, `connections points: ${lines.connections.length}`);
    assert.ok(lines.publishedRate.length >= 3 && lines.deliveredRate.length >= 3);
    for (const pts of Object.values(lines)) {
      for (const [x, y] of pts)
        assert.ok(x >= 0 && x <= 600 && y >= 0 && y <= 120, `point ${x},${y} inside the chart`);
      for (let i = 1; i < pts.length; i++)
        assert.ok(pts[i][0] >= pts[i - 1][0], 'time runs left to right');
    }
    assert.ok(lines.connections.at(-1)[0] > 550, 'the latest point is at the right edge');
    // the legend says the same totals
    assert.match(await page.locator('#legend-published').textContent(), new RegExp(` ${stats.events.published} total$`));
    assert.match(await page.locator('#legend-delivered').textContent(), new RegExp(` ${stats.events.delivered} total$`));
    assert.equal(await page.locator('#legend-connections').textContent(), String(stats.connections.total));
  });

  it('lists the subscribed channels with their subscriber counts, the error counters and the node', { timeout: 20000 }, async () => {
    const stats = await getJson(srv, '/api/stats');
    const byName = Object.fromEntries(stats.channel_list.map((c) => [c.channel, c.subscribers]));
    assert.deepEqual(byName, { system: 2, [channel]: 1, incidents: 1, 'incidents.>': 1, 'timeline.>': 1 });
    assert.equal(stats.channel_list_total, 5);
    assert.equal(stats.channel_list[0].channel, 'system', 'most subscribed first');
    const shown = await waitFor(async () => {
      const rows = await page.evaluate(() => [...document.querySelectorAll('#channel-list tr')]
        .map((tr) => [tr.dataset.channel, Number(tr.lastElementChild.textContent)]));
      return rows.length === 5 ? rows : null;
    }, { timeout: 2 * 2000 + 1000, message: 'the channel list' });
    assert.deepEqual(Object.fromEntries(shown), byName);
    assert.deepEqual(shown[0], ['system', 2]);

    const errors = await page.evaluate(() => Object.fromEntries([...document.querySelectorAll('#errors dt')]
      .map((dt) => [dt.textContent, Number(dt.nextElementSibling.textContent)])));
    assert.deepEqual(errors, { 'slow disconnects': stats.clients.slow_disconnects, 'send failures': stats.clients.send_failures,
      'dropped events': stats.events.dropped, 'refused (limits)': 0, 'queued bytes': errors['queued bytes'] });

    assert.equal(stats.nodes.length, 1);
    const node = stats.nodes[0];
    assert.equal(node.broker, 'memory');
    assert.equal(node.broker_state, 'ok');
    assert.equal(node.workers, 2);
    assert.equal(node.listen, `127.0.0.1:${srv.port}`);
    const nodes = await page.evaluate(() => [...document.querySelectorAll('#node-list tr')]
      .map((tr) => [...tr.children].map((td) => td.textContent)));
    assert.deepEqual(nodes, [[node.name, 'memory', 'ok', '2']]);
  });

  it('renders without script errors (screenshot in build/dashboard.png)', { timeout: 20000 }, async () => {
    fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true, timeout: 10000 });
    assert.ok(fs.statSync(SCREENSHOT).size > 10000, 'a real screenshot');
    const box = await page.evaluate(() => {
      const r = (sel) => document.querySelector(sel).getBoundingClientRect().toJSON();
      return { events: r('#events'), sub: r('#sub-form'), body: document.body.scrollWidth };
    });
    assert.ok(box.body <= 1280, `no horizontal overflow (body ${box.body}px wide)`);
    assert.ok(box.events.left > box.sub.right, 'the event list is beside the forms');
    assert.deepEqual(pageErrors, []);
  });
});

// A server without --insecure, as `realtime serve` runs in production: the page asks for the API key and the token
// instead of going blank, keeps them in sessionStorage (never in the URL it shows), and signs out.
describe('dashboard sign-in (no --insecure) in Chromium', { timeout: 90000 }, () => {
  const SECRET = 'dashboard-secret-0123456789';
  const KEY = 'dashboard-key';
  const LOGIN_SHOT = path.resolve(__dirname, '../../build/dashboard-login.png');
  let srv;
  let browser;
  let page;
  const pageErrors = [];
  const channel = `incidents.${uniq('LOGIN')}`;
  const token = () => execFileSync(BIN, ['token', '--secret', SECRET, '--sub', 'sre-1',
    '--subscribe', 'incidents,incidents.>,timeline.>,system'], { encoding: 'utf8' }).trim();
  const visible = (sel) => page.evaluate((s) => !document.querySelector(s).hidden, sel);

  before(async () => {
    srv = await startServer({ secure: true, flags: { apiKeys: KEY, tokenSecret: SECRET } });
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    page.setDefaultTimeout(WAIT);
    page.on('pageerror', (e) => pageErrors.push(e.message));
  });

  after(async () => {
    await closeChromium(browser);
    if (srv)
      await srv.stop();
  });

  it('asks for credentials, saying why, and shows no events meanwhile', { timeout: 20000 }, async () => {
    await page.goto(`${srv.base}/`, { waitUntil: 'load', timeout: 10000 });
    await page.waitForFunction(() => !document.getElementById('auth').hidden);
    await page.waitForFunction(() => /needs (an API key|a token)/.test(document.getElementById('auth-why').textContent));
    await publishOk(srv, { type: 'incident.created', channels: [channel], data: { severity: 'SEV-1' } }, { headers: { 'X-API-Key': KEY } });
    await sleep(300);
    assert.equal(await page.locator('#events li').count(), 0, 'nothing read without a token');
    assert.equal(await page.locator('#stats dt').count(), 0, 'no stats without the API key');
    fs.mkdirSync(path.dirname(LOGIN_SHOT), { recursive: true });
    await page.screenshot({ path: LOGIN_SHOT, timeout: 10000 });
  });

  it('signs in: reads events, shows stats and publishes with the key, which never appears in the URL', { timeout: 20000 }, async () => {
    const t = token();
    await page.fill('#auth-key', KEY);
    await page.fill('#auth-token', t);
    await page.click('#auth-form button[type=submit]');
    await page.waitForFunction(() => document.getElementById('auth').hidden);
    await page.waitForFunction(() => document.getElementById('message').textContent.startsWith('Subscribed to'));
    const id = uniq('login-evt');
    await publishOk(srv, { id, type: 'incident.created', channels: [channel], data: { severity: 'SEV-2' } }, { headers: { 'X-API-Key': KEY } });
    await page.waitForSelector(`#events li[data-id="${id}"]`);
    await page.waitForFunction(() => document.querySelectorAll('#stats dt').length > 0);
    await page.click('#pub-form button[type=submit]');
    await page.waitForFunction(() => document.getElementById('message').textContent.startsWith('Published '));
    assert.equal(page.url(), `${srv.base}/`, 'the page URL carries no credentials');
    assert.equal(await page.locator('#auth-key').inputValue(), '', 'the form is cleared');
    const stored = await page.evaluate(() => ({ key: sessionStorage.getItem('realtime.apiKey'), token: sessionStorage.getItem('realtime.token'),
      local: localStorage.length }));
    assert.deepEqual(stored, { key: KEY, token: t, local: 0 });
    assert.equal(await page.locator('#auth-toggle').textContent(), 'Sign out');
  });

  it('stays signed in across a reload of the tab, and signing out forgets the credentials', { timeout: 20000 }, async () => {
    await page.reload({ waitUntil: 'load' });
    await page.waitForFunction(() => document.getElementById('message').textContent.startsWith('Subscribed to'));
    assert.equal(await visible('#auth'), false);
    await page.click('#auth-toggle');
    await page.waitForFunction(() => !document.getElementById('auth').hidden);
    assert.deepEqual(await page.evaluate(() => [sessionStorage.getItem('realtime.apiKey'), sessionStorage.getItem('realtime.token')]),
      [null, null]);
    assert.equal(await page.locator('#auth-toggle').textContent(), 'Sign in');
    assert.deepEqual(pageErrors, []);
  });

  it('a token that does not verify is reported in the form', { timeout: 20000 }, async () => {
    await page.fill('#auth-key', KEY);
    await page.fill('#auth-token', 'not.a.jwt');
    await page.click('#auth-form button[type=submit]');
    await page.waitForFunction(() => !document.getElementById('auth').hidden
      && /token may not read/.test(document.getElementById('auth-why').textContent));
  });
});
