'use strict';
// Origin and CORS (DESIGN "Trust and authorization", Browsers) through node's http and `ws`, sending the Origin
// header a browser would: allowed_origins get CORS headers on /events, /connection/uni_sse and /api/* (errors and
// a 413 included) and a 204 preflight; a foreign Origin is refused with 403 on those and on every WebSocket
// endpoint, and what it asked for does not happen. Requests without Origin (curl, services) are not affected.
// The same in a real browser: browser-origin.test.js.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startServer } = require('./lib/server');
const { publish, publishOk, request, getJson } = require('./lib/http');
const { WsClient } = require('./lib/ws');
const { SseClient } = require('./lib/sse');
const { uniq, sleep, withTimeout } = require('./lib/util');

const ALLOWED = 'https://ops.example.com';
const FOREIGN = 'https://evil.example.net';
const KEY = 'origin-key';
const ev = (channel) => ({ type: 'incident.created', channels: [channel], data: { severity: 'SEV-1' } });

describe('Origin and CORS (no --insecure)', { timeout: 60000 }, () => {
  let srv;
  before(async () => {
    srv = await startServer({
      secure: true,
      flags: {
        apiKeys: KEY, allowedOrigins: `${ALLOWED},https://*.corp.example`,
        namespaces: JSON.stringify([{ pattern: 'public.>', anonymous: true }]),
      },
    });
  });
  after(async () => {
    if (srv)
      await srv.stop();
  });
  const key = { 'X-API-Key': KEY };

  it('SSE /events: an allowed Origin gets the stream with CORS headers', async () => {
    const ch = `public.${uniq('ok')}`;
    const c = await SseClient.connect(srv.port, `/events?channels=${ch}`, { headers: { Origin: ALLOWED } });
    try {
      assert.equal(c.status, 200);
      assert.equal(c.headers['access-control-allow-origin'], ALLOWED);
      assert.match(c.headers.vary, /Origin/);
      const { id } = await publishOk(srv, ev(ch));
      await c.waitFor((m) => m.id === id);
    } finally {
      c.close();
    }
  });

  it('SSE /events: a foreign Origin is 403 permission_denied, without CORS headers, and reads nothing', async () => {
    const ch = `public.${uniq('foreign')}`;
    const c = await SseClient.connect(srv.port, `/events?channels=${ch}`, { headers: { Origin: FOREIGN } });
    assert.equal(c.status, 403);
    assert.equal(c.json.error.code, 'permission_denied');
    assert.match(c.json.error.message, /evil\.example\.net.*allowed_origins/);
    assert.equal(c.headers['access-control-allow-origin'], undefined);
    await publishOk(srv, ev(ch), { headers: key });
    await withTimeout(c.ended, 2000, 'the refused stream ends');
    assert.equal(c.messages.length, 0);
  });

  it('a glob entry allows the subdomains it names, and only them', async () => {
    const ok = await SseClient.connect(srv.port, '/events?channels=public.x', { headers: { Origin: 'https://a.b.corp.example' } });
    assert.equal(ok.status, 200);
    assert.equal(ok.headers['access-control-allow-origin'], 'https://a.b.corp.example');
    ok.close();
    for (const origin of ['https://corp.example', 'https://corp.example.evil.net', 'http://a.corp.example']) {
      const r = await request(srv.port, { path: '/events?channels=public.x', headers: { Origin: origin } });
      assert.equal(r.status, 403, origin);
    }
  });

  it('without Origin (curl, a service) nothing changes', async () => {
    const c = await SseClient.connect(srv.port, '/events?channels=public.x');
    assert.equal(c.status, 200);
    assert.equal(c.headers['access-control-allow-origin'], undefined);
    c.close();
    const r = await request(srv.port, { path: '/api/stats', headers: key });
    assert.equal(r.status, 200);
    assert.match(r.headers.vary, /Origin/);
  });

  it('/api/*: CORS on success and on errors (401, 413), so a page can read why', async () => {
    const ch = `public.${uniq('api')}`;
    const ok = await publish(srv, ev(ch), { headers: { ...key, Origin: ALLOWED } });
    assert.equal(ok.status, 200);
    assert.equal(ok.headers['access-control-allow-origin'], ALLOWED);
    const unauth = await request(srv.port, { method: 'POST', path: '/api/events', body: ev(ch), headers: { Origin: ALLOWED } });
    assert.equal(unauth.status, 401);
    assert.equal(unauth.headers['access-control-allow-origin'], ALLOWED);
    const big = await request(srv.port, {
      method: 'POST', path: '/api/events', body: 'x'.repeat(2 << 20),
      headers: { ...key, Origin: ALLOWED, 'Content-Type': 'application/json' },
    });
    assert.equal(big.status, 413); // it arrives: the server lingers over the unread body (lingering close)
    assert.equal(big.headers['access-control-allow-origin'], ALLOWED);
    const stats = await request(srv.port, { path: '/api/stats', headers: { ...key, Origin: ALLOWED } });
    assert.equal(stats.status, 200);
    assert.equal(stats.headers['access-control-allow-origin'], ALLOWED);
  });

  it('/api/*: a foreign Origin is 403 even with the API key, and the event is not published', async () => {
    const ch = `public.${uniq('csrf')}`;
    const r = await publish(srv, ev(ch), { headers: { ...key, Origin: FOREIGN } });
    assert.equal(r.status, 403);
    assert.equal(r.json.error.code, 'permission_denied');
    assert.equal(r.headers['access-control-allow-origin'], undefined);
    const h = await getJson(srv, `/api/history?channel=${ch}`, key);
    assert.equal(h.events.length, 0);
  });

  it('OPTIONS preflight: 204 with methods and headers for an allowed Origin, 403 for a foreign one', async () => {
    const pre = await request(srv.port, {
      method: 'OPTIONS', path: '/api/events',
      headers: { Origin: ALLOWED, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'x-api-key, content-type' },
    });
    assert.equal(pre.status, 204);
    assert.equal(pre.text, '');
    assert.equal(pre.headers['content-length'], undefined);
    assert.equal(pre.headers['access-control-allow-origin'], ALLOWED);
    assert.match(pre.headers['access-control-allow-methods'], /\bPOST\b/);
    for (const h of ['Authorization', 'X-API-Key', 'Content-Type', 'Last-Event-ID'])
      assert.match(pre.headers['access-control-allow-headers'], new RegExp(h));
    assert.ok(Number(pre.headers['access-control-max-age']) > 0);
    const sse = await request(srv.port, { method: 'OPTIONS', path: '/events', headers: { Origin: ALLOWED, 'Access-Control-Request-Method': 'GET' } });
    assert.equal(sse.status, 204);
    assert.match(sse.headers['access-control-allow-methods'], /\bGET\b/);
    const foreign = await request(srv.port, { method: 'OPTIONS', path: '/api/events', headers: { Origin: FOREIGN, 'Access-Control-Request-Method': 'POST' } });
    assert.equal(foreign.status, 403);
    assert.equal(foreign.headers['access-control-allow-origin'], undefined);
    const plain = await request(srv.port, { method: 'OPTIONS', path: '/api/history' });
    assert.equal(plain.status, 204);
    assert.match(plain.headers.allow, /GET, POST, OPTIONS/);
    // not a CORS path: the method is still not allowed there
    assert.equal((await request(srv.port, { method: 'OPTIONS', path: '/ws' })).status, 405);
  });

  it('WebSocket /ws and /connection/websocket: a foreign Origin is 403 before the handshake', async () => {
    for (const path of ['/ws', '/connection/websocket']) {
      const e = await WsClient.connect(`${srv.ws}${path}`, { headers: { Origin: FOREIGN } }).then(
        (c) => { c.close(); return null; }, (err) => err);
      assert.ok(e, `${path}: opened with a foreign Origin`);
      assert.equal(e.status, 403, path);
      assert.equal(JSON.parse(e.body).error.code, 'permission_denied');
    }
  });

  it('WebSocket /ws: an allowed Origin, the server\'s own origin and no Origin all connect and read', async () => {
    const ch = `public.${uniq('ws')}`;
    for (const origin of [ALLOWED, `http://127.0.0.1:${srv.port}`, undefined]) {
      const c = await WsClient.connect(`${srv.ws}/ws`, { headers: origin ? { Origin: origin } : {} });
      try {
        c.send({ type: 'subscribe', channels: [ch] });
        await c.waitFor((m) => m.type === 'subscribed');
        const { id } = await publishOk(srv, ev(ch), { headers: key });
        await c.waitFor((m) => m.type === 'event' && m.event.id === id);
      } finally {
        c.close();
      }
    }
  });

  it('Centrifuge uni_sse: an allowed Origin gets CORS on the stream head', async () => {
    const r = await new Promise((resolve, reject) => {
      const req = require('node:http').request({
        host: '127.0.0.1', port: srv.port, method: 'GET', agent: false,
        path: `/connection/uni_sse?cf_connect=${encodeURIComponent('{}')}`, headers: { Origin: ALLOWED },
      }, (res) => { resolve(res); res.destroy(); });
      req.on('error', reject);
      req.end();
    });
    assert.equal(r.statusCode, 200);
    assert.equal(r.headers['access-control-allow-origin'], ALLOWED);
    const foreign = await request(srv.port, { path: `/connection/uni_sse?cf_connect=${encodeURIComponent('{}')}`, headers: { Origin: FOREIGN } });
    assert.equal(foreign.status, 403);
  });

  it('the dashboard\'s own origin is allowed without configuration', async () => {
    const r = await request(srv.port, { path: '/api/stats', headers: { ...key, Origin: `http://127.0.0.1:${srv.port}` } });
    assert.equal(r.status, 200);
  });
});

describe('Origin in insecure mode', { timeout: 30000 }, () => {
  let srv;
  before(async () => { srv = await startServer(); });
  after(async () => {
    if (srv)
      await srv.stop();
  });

  it('any Origin is allowed and echoed; a malformed one is still refused', async () => {
    const c = await SseClient.connect(srv.port, '/events?channels=all', { headers: { Origin: 'https://anything.example' } });
    assert.equal(c.status, 200);
    assert.equal(c.headers['access-control-allow-origin'], 'https://anything.example');
    c.close();
    const ws = await WsClient.connect(`${srv.ws}/ws`, { headers: { Origin: 'https://anything.example' } });
    ws.close();
    const bad = await request(srv.port, { path: '/events?channels=all', headers: { Origin: 'x'.repeat(400) } });
    assert.equal(bad.status, 403);
    await sleep(10);
  });
});
