'use strict';
// What a browser does with allowed_origins (DESIGN "Trust and authorization", Browsers), in Debian's Chromium: pages
// are served from two loopback ports of a small page server, one listed in allowed_origins and one not; realtime
// listens on a third. From the allowed page, EventSource on /events, a WebSocket on /ws, centrifuge-js on
// /connection/websocket and fetch() of the server API all work; from the foreign page each fails, and reads nothing
// published afterwards (the API call does not even happen).

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { startServer } = require('./lib/server');
const { publishOk, getJson } = require('./lib/http');
const { launchChromium, closeChromium } = require('./lib/browser');
const { sleep, uniq } = require('./lib/util');

const KEY = 'browser-origin-key';
const CENTRIFUGE_JS = fs.readFileSync(path.join(__dirname, 'node_modules/centrifuge/dist/centrifuge.js'));
const WAIT = 5000;
/** Time given to a refused page to show an event it must not get. */
const QUIET_MS = 500;

/** A page server on a loopback port: GET / is an empty page, /centrifuge.js the client library. */
function pageServer() {
  return new Promise((resolve) => {
    const server = http.createServer((req, res) => {
      if (req.url === '/centrifuge.js') {
        res.writeHead(200, { 'Content-Type': 'text/javascript' });
        res.end(CENTRIFUGE_JS);
        return;
      }
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      res.end('<!doctype html><title>incident console</title><body>');
    });
    server.listen(0, '127.0.0.1', () => resolve({ server, origin: `http://127.0.0.1:${server.address().port}` }));
  });
}

describe('origins in Chromium (no --insecure)', { timeout: 120000 }, () => {
  let srv;
  let browser;
  let allowed;
  let foreign;
  const pages = {};
  const ev = (ch) => ({ type: 'incident.created', channels: [ch], data: { severity: 'SEV-1' } });

  before(async () => {
    allowed = await pageServer();
    foreign = await pageServer();
    srv = await startServer({
      secure: true,
      flags: { apiKeys: KEY, allowedOrigins: allowed.origin, namespaces: JSON.stringify([{ pattern: 'public.>', anonymous: true }]) },
    });
    browser = await launchChromium();
    for (const [name, site] of [['allowed', allowed], ['foreign', foreign]]) {
      const page = await browser.newPage();
      page.setDefaultTimeout(WAIT);
      await page.goto(`${site.origin}/`, { waitUntil: 'load', timeout: 10000 });
      await page.addScriptTag({ url: '/centrifuge.js' });
      pages[name] = page;
    }
  });

  after(async () => {
    await closeChromium(browser);
    if (srv)
      await srv.stop();
    for (const site of [allowed, foreign])
      site?.server.close();
  });

  /** Opens an EventSource in the page; the page records open, errors, readyState and events in window.es. */
  const openEventSource = (page, url) => page.evaluate((u) => {
    window.es = { opened: false, errors: 0, events: [] };
    const es = new EventSource(u);
    window.es.source = es;
    es.onopen = () => { window.es.opened = true; };
    es.onerror = () => { window.es.errors += 1; };
    es.addEventListener('incident.created', (e) => window.es.events.push(JSON.parse(e.data)));
  }, url);

  it('EventSource from the allowed origin reads the stream', async () => {
    const page = pages.allowed;
    const ch = `public.${uniq('es')}`;
    await openEventSource(page, `${srv.base}/events?channels=${ch}`);
    await page.waitForFunction(() => window.es.opened);
    const { id } = await publishOk(srv, ev(ch), { headers: { 'X-API-Key': KEY } });
    await page.waitForFunction((eid) => window.es.events.some((e) => e.id === eid), id);
    await page.evaluate(() => window.es.source.close());
  });

  it('EventSource from a foreign origin fails and reads nothing', async () => {
    const page = pages.foreign;
    const ch = `public.${uniq('es-foreign')}`;
    await openEventSource(page, `${srv.base}/events?channels=${ch}`);
    // Chromium gives up on a stream it may not read: error, then CLOSED (2), never open.
    await page.waitForFunction(() => window.es.errors > 0 && window.es.source.readyState === 2);
    await publishOk(srv, ev(ch), { headers: { 'X-API-Key': KEY } });
    await sleep(QUIET_MS);
    assert.deepEqual(await page.evaluate(() => ({ opened: window.es.opened, events: window.es.events.length })),
      { opened: false, events: 0 });
  });

  /** Opens a WebSocket on /ws that subscribes to ch once open; records in window.sock. */
  const openSocket = (page, url, ch) => page.evaluate(({ u, c }) => {
    window.sock = { opened: false, closeCode: null, msgs: [] };
    const ws = new WebSocket(u);
    ws.onopen = () => {
      window.sock.opened = true;
      ws.send(JSON.stringify({ type: 'subscribe', id: 's1', channels: [c] }));
    };
    ws.onmessage = (m) => window.sock.msgs.push(JSON.parse(m.data));
    ws.onclose = (e) => { window.sock.closeCode = e.code; };
  }, { u: url, c: ch });

  it('a WebSocket on /ws from the allowed origin subscribes and reads', async () => {
    const page = pages.allowed;
    const ch = `public.${uniq('ws')}`;
    await openSocket(page, `${srv.ws}/ws`, ch);
    await page.waitForFunction(() => window.sock.msgs.some((m) => m.type === 'subscribed'));
    const { id } = await publishOk(srv, ev(ch), { headers: { 'X-API-Key': KEY } });
    await page.waitForFunction((eid) => window.sock.msgs.some((m) => m.type === 'event' && m.event.id === eid), id);
  });

  it('a WebSocket on /ws from a foreign origin is refused before it opens', async () => {
    const page = pages.foreign;
    const ch = `public.${uniq('ws-foreign')}`;
    await openSocket(page, `${srv.ws}/ws`, ch);
    await page.waitForFunction(() => window.sock.closeCode !== null);
    await publishOk(srv, ev(ch), { headers: { 'X-API-Key': KEY } });
    await sleep(QUIET_MS);
    assert.deepEqual(await page.evaluate(() => window.sock), { opened: false, closeCode: 1006, msgs: [] });
  });

  /** Connects centrifuge-js and subscribes to ch; records state and publications in window.cf. */
  const openCentrifuge = (page, url, ch) => page.evaluate(({ u, c }) => {
    window.cf = { connected: false, errors: 0, pubs: [] };
    const client = new Centrifuge(u, { minReconnectDelay: 200, maxReconnectDelay: 400 });
    window.cf.client = client;
    client.on('connected', () => { window.cf.connected = true; });
    client.on('error', () => { window.cf.errors += 1; });
    const sub = client.newSubscription(c);
    sub.on('subscribed', () => { window.cf.subscribed = true; });
    sub.on('publication', (p) => window.cf.pubs.push(p.data));
    sub.subscribe();
    client.connect();
  }, { u: url, c: ch });

  it('centrifuge-js from the allowed origin connects, subscribes and reads', async () => {
    const page = pages.allowed;
    const ch = `public.${uniq('cf')}`;
    await openCentrifuge(page, `${srv.ws}/connection/websocket`, ch);
    await page.waitForFunction(() => window.cf.subscribed === true);
    const { id } = await publishOk(srv, ev(ch), { headers: { 'X-API-Key': KEY } });
    await page.waitForFunction((eid) => window.cf.pubs.some((d) => JSON.stringify(d).includes(eid)), id);
    await page.evaluate(() => window.cf.client.disconnect());
  });

  it('centrifuge-js from a foreign origin never connects and reads nothing', async () => {
    const page = pages.foreign;
    const ch = `public.${uniq('cf-foreign')}`;
    await openCentrifuge(page, `${srv.ws}/connection/websocket`, ch);
    await page.waitForFunction(() => window.cf.errors >= 2); // refused, and refused again on its reconnect
    await publishOk(srv, ev(ch), { headers: { 'X-API-Key': KEY } });
    await sleep(QUIET_MS);
    assert.deepEqual(await page.evaluate(() => ({ connected: window.cf.connected, pubs: window.cf.pubs.length })),
      { connected: false, pubs: 0 });
    await page.evaluate(() => window.cf.client.disconnect());
  });

  /** fetch() POST /api/events with the API key; resolves {status, body} or {error}. */
  const fetchPublish = (page, url, channel) => page.evaluate(async ({ u, c, key }) => {
    try {
      const r = await fetch(u, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-API-Key': key },
        body: JSON.stringify({ type: 'incident.created', channels: [c] }),
      });
      return { status: r.status, body: await r.json() };
    } catch (e) {
      return { error: String(e) };
    }
  }, { u: url, c: channel, key: KEY });

  it('fetch() of the server API works from the allowed origin (after its preflight)', async () => {
    const ch = `public.${uniq('fetch')}`;
    const r = await fetchPublish(pages.allowed, `${srv.base}/api/events`, ch);
    assert.equal(r.status, 200, JSON.stringify(r));
    assert.ok(r.body.id);
    const h = await getJson(srv, `/api/history?channel=${ch}`, { 'X-API-Key': KEY });
    assert.equal(h.events.length, 1);
  });

  it('fetch() of the server API from a foreign origin fails, and publishes nothing even with the key', async () => {
    const ch = `public.${uniq('fetch-foreign')}`;
    const r = await fetchPublish(pages.foreign, `${srv.base}/api/events`, ch);
    assert.match(r.error || '', /TypeError|Failed to fetch/, JSON.stringify(r));
    const h = await getJson(srv, `/api/history?channel=${ch}`, { 'X-API-Key': KEY });
    assert.equal(h.events.length, 0);
  });
});
