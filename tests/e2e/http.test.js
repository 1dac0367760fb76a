'use strict';
// HTTP/1.1 behaviour: keep-alive, pipelining, chunked request bodies, 431, 404/405, HTTP/1.0, Connection: close,
// and the header timeout.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startServer } = require('./lib/server');
const { rawExchange, parseResponses, request } = require('./lib/http');
const { uniq } = require('./lib/util');

const get = (path, extra = '') => `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${extra}\r\n`;
const untilResponses = (n) => (buf) => parseResponses(buf).responses.length >= n;

describe('HTTP/1.1', { timeout: 60000 }, () => {
  let srv;
  before(async () => {
    srv = await startServer();
  });
  after(async () => {
    if (srv)
      await srv.stop();
  });

  it('keep-alive: two requests on one connection, one after the other', { timeout: 10000 }, async () => {
    const { data, closed } = await rawExchange(srv.port, [get('/healthz'), 200, get('/readyz')], { until: untilResponses(2) });
    const { responses } = parseResponses(data);
    assert.equal(responses.length, 2);
    assert.equal(closed, false, 'the connection stays open');
    assert.deepEqual(responses.map((r) => r.status), [200, 200]);
    assert.deepEqual(JSON.parse(responses[0].body), { status: 'ok' });
    assert.deepEqual(JSON.parse(responses[1].body), { status: 'ready' });
  });

  it('pipelining: requests in one write are answered in order', { timeout: 10000 }, async () => {
    const ch = uniq('pipe');
    const body = JSON.stringify({ id: `${ch}-1`, type: 'incident.created', channels: [ch] });
    const post = `POST /api/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    const all = get('/healthz') + post + get(`/api/history?channel=${ch}`) + get('/nope') + get('/readyz');
    const { data } = await rawExchange(srv.port, [all], { until: untilResponses(5) });
    const { responses } = parseResponses(data);
    assert.deepEqual(responses.map((r) => r.status), [200, 200, 200, 404, 200]);
    assert.deepEqual(JSON.parse(responses[0].body), { status: 'ok' });
    assert.equal(JSON.parse(responses[1].body).id, `${ch}-1`);
    assert.deepEqual(JSON.parse(responses[2].body).events.map((e) => e.id), [`${ch}-1`]);
    assert.deepEqual(JSON.parse(responses[4].body), { status: 'ready' });
    // and split at awkward places
    const bytes = Buffer.from(get('/healthz') + get('/readyz'));
    const pieces = [];
    for (let i = 0; i < bytes.length; i += 7)
      pieces.push(bytes.subarray(i, i + 7), 2);
    const split = await rawExchange(srv.port, pieces, { until: untilResponses(2) });
    assert.deepEqual(parseResponses(split.data).responses.map((r) => r.status), [200, 200]);
  });

  it('a chunked request body is accepted', { timeout: 10000 }, async () => {
    const ch = uniq('chunked');
    const body = JSON.stringify({ id: `${ch}-1`, type: 'incident.created', channels: [ch], data: { note: 'sent in chunks' } });
    const head = 'POST /api/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n';
    const chunks = [];
    for (let i = 0; i < body.length; i += 10) {
      const part = body.slice(i, i + 10);
      chunks.push(`${Buffer.byteLength(part).toString(16)}\r\n${part}\r\n`, 5);
    }
    const { data } = await rawExchange(srv.port, [head, ...chunks, '0\r\n\r\n'], { until: untilResponses(1) });
    const [r] = parseResponses(data).responses;
    assert.equal(r.status, 200, r.body.toString());
    assert.equal(JSON.parse(r.body).id, `${ch}-1`);
    const h = await request(srv.port, { path: `/api/history?channel=${ch}` });
    assert.deepEqual(h.json.events[0].data, { note: 'sent in chunks' });
  });

  it('431 for headers over max_header_bytes', { timeout: 10000 }, async () => {
    const { data } = await rawExchange(srv.port, [get('/healthz', `X-Big: ${'a'.repeat(20000)}\r\n`)], { until: untilResponses(1) });
    const [r] = parseResponses(data).responses;
    assert.equal(r.status, 431);
    const many = Array.from({ length: 1000 }, (_, i) => `X-H${i}: ${'v'.repeat(20)}\r\n`).join('');
    const m = parseResponses((await rawExchange(srv.port, [get('/healthz', many)], { until: untilResponses(1) })).data).responses[0];
    assert.equal(m.status, 431);
    const longUrl = parseResponses((await rawExchange(srv.port, [get(`/healthz?${'q'.repeat(20000)}`)], { until: untilResponses(1) })).data).responses[0];
    assert.ok(longUrl.status === 431 || longUrl.status === 414, `long request line: ${longUrl.status}`);
    assert.equal((await request(srv.port, { path: '/healthz' })).status, 200);
  });

  it('404 for unknown paths, 405 for a wrong method, as JSON errors', { timeout: 10000 }, async () => {
    const nf = await request(srv.port, { path: '/no/such/thing' });
    assert.equal(nf.status, 404);
    assert.equal(nf.json.error.code, 'not_found');
    for (const [method, path] of [['GET', '/api/events'], ['DELETE', '/healthz'], ['PUT', '/api/events'], ['POST', '/healthz'], ['POST', '/api/stats']]) {
      const r = await request(srv.port, { method, path, body: method === 'GET' ? undefined : '{}', headers: { 'Content-Type': 'application/json' } });
      assert.equal(r.status, 405, `${method} ${path} → ${r.status} ${r.text}`);
      assert.ok(r.json && r.json.error, `${method} ${path}: JSON error body`);
    }
  });

  it('HTTP/1.0 and Connection: close end the connection after the response', { timeout: 10000 }, async () => {
    const a = await rawExchange(srv.port, ['GET /healthz HTTP/1.0\r\n\r\n'], { timeout: 3000 });
    assert.equal(parseResponses(a.data).responses[0].status, 200);
    assert.equal(a.closed, true, 'HTTP/1.0 closes');
    const b = await rawExchange(srv.port, [get('/healthz', 'Connection: close\r\n')], { timeout: 3000 });
    assert.equal(parseResponses(b.data).responses[0].status, 200);
    assert.equal(b.closed, true, 'Connection: close closes');
  });

  it('responses carry Content-Length and a JSON Content-Type', { timeout: 10000 }, async () => {
    const { data } = await rawExchange(srv.port, [get('/api/stats')], { until: untilResponses(1) });
    const [r] = parseResponses(data).responses;
    assert.equal(Number(r.headers['content-length']), r.body.length);
    assert.match(r.headers['content-type'], /^application\/json/);
  });
});

describe('HTTP timeouts', { timeout: 30000 }, () => {
  let srv;
  before(async () => {
    srv = await startServer({ flags: { headerTimeout: 1, idleTimeout: 1 } });
  });
  after(async () => {
    if (srv)
      await srv.stop();
  });

  it('a request whose headers never finish is dropped after header_timeout', { timeout: 10000 }, async () => {
    const t0 = Date.now();
    const { closed } = await rawExchange(srv.port, ['GET /healthz HTTP/1.1\r\nHost: x\r\n'], { timeout: 5000 });
    assert.equal(closed, true, 'closed by the server');
    const took = Date.now() - t0;
    assert.ok(took >= 800 && took < 4000, `closed after ${took} ms`);
  });

  it('an idle keep-alive connection is closed after idle_timeout', { timeout: 10000 }, async () => {
    const t0 = Date.now();
    const { data, closed } = await rawExchange(srv.port, [get('/healthz')], { timeout: 5000 });
    assert.equal(parseResponses(data).responses[0].status, 200);
    assert.equal(closed, true);
    const took = Date.now() - t0;
    assert.ok(took >= 800 && took < 4000, `closed after ${took} ms`);
  });
});
