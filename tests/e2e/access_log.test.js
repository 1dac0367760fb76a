'use strict';
// The access log (access_log: true): a line per HTTP request answered (method, path without its query, status,
// bytes, duration, client) and one per stream when it closes (transport, duration, bytes in/out, close code and
// reason), never one per delivered event, and never the query string: a ?token= stays out of the log. Both layouts:
// text (RFC 3339 timestamps) and json (one object per line). Without access_log, none of these lines.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const WebSocket = require('ws');
const { Centrifuge } = require('centrifuge');
const { startServer, BIN } = require('./lib/server');
const { request, publishOk } = require('./lib/http');
const { WsClient } = require('./lib/ws');
const { SseClient } = require('./lib/sse');
const { waitFor, uniq, sleep } = require('./lib/util');

const SECRET = 'access-log-secret-0123456789abcdef';
const TS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const token = () => execFileSync(BIN, ['token', '--secret', SECRET, '--sub', 'ops', '--subscribe', 'incidents,incidents.>'],
  { encoding: 'utf8' }).trim();

/** The access lines of a text log: {ts, level, msg}. */
function textAccess(log) {
  return log.split('\n').map((l) => /^(\S+) (\S+)\s+access: (.*)$/.exec(l)).filter(Boolean)
    .map((m) => ({ ts: m[1], level: m[2], msg: m[3] }));
}

/** Every line of a JSON log, parsed (asserting each one parses). */
function jsonLines(log) {
  return log.split('\n').filter((l) => l !== '').map((l) => {
    try {
      return JSON.parse(l);
    } catch (e) {
      assert.fail(`not a JSON line: ${l}`);
    }
  });
}

/** Connects, publishes and closes on each transport; resolves what was done, for the assertions. */
async function exercise(srv, t) {
  const channel = `incidents.${uniq('AL')}`;
  const stats = await request(srv.port, { path: `/api/stats?token=${t}&x=1`, headers: srv.apiHeaders });
  assert.equal(stats.status, 200);
  const missing = await request(srv.port, { path: `/no/such/path?token=${t}` });
  assert.equal(missing.status, 404);

  const ws = await WsClient.connect(`${srv.ws}/ws?token=${encodeURIComponent(t)}&channels=${channel}`);
  await ws.waitType('subscribed');
  const sse = await SseClient.connect(srv.port, `/events?channels=${channel}&token=${encodeURIComponent(t)}`);
  const cf = new Centrifuge(`${srv.ws}/connection/websocket`, { websocket: WebSocket, token: t, timeout: 5000 });
  const connected = new Promise((resolve) => cf.once('connected', resolve));
  cf.connect();
  await connected;
  const sub = cf.newSubscription(channel);
  const subscribed = new Promise((resolve) => sub.once('subscribed', resolve));
  sub.subscribe();
  await subscribed;
  let cfGot = 0;
  sub.on('publication', () => { cfGot++; });

  const EVENTS = 25;
  for (let i = 0; i < EVENTS; i++)
    await publishOk(srv, { type: 'incident.updated', channels: [channel], data: { i } }, { headers: srv.apiHeaders });
  await ws.waitEvents(EVENTS);
  await sse.waitEvents(EVENTS);
  await waitFor(() => cfGot === EVENTS, { message: 'the Centrifuge client\'s publications' });

  ws.close(1000);
  await ws.waitClose();
  sse.close();
  cf.disconnect();
  return { channel, events: EVENTS, statsBytes: stats.raw ? stats.raw.length : null };
}

describe('access log, text layout', { timeout: 60000 }, () => {
  let srv;
  let t;
  before(async () => {
    srv = await startServer({ flags: { accessLog: true, tokenSecret: SECRET } });
    t = token();
  });
  after(async () => {
    if (srv)
      await srv.stop();
  });

  it('logs requests and stream closes, one line each, never the query string or the token', async () => {
    const { events } = await exercise(srv, t);
    await waitFor(() => textAccess(srv.logs()).filter((l) => l.msg.startsWith('stream ')).length >= 3,
      { timeout: 5000, message: 'three stream lines (ws, sse, centrifuge)' });
    await sleep(100);
    const log = srv.logs();
    const lines = textAccess(log);
    for (const l of lines) {
      assert.match(l.ts, TS);
      assert.equal(l.level, 'info');
    }
    // every line of the log has the new timestamp
    for (const l of log.split('\n').filter(Boolean))
      assert.match(l.split(' ')[0], TS, l);

    const stats = lines.find((l) => l.msg.startsWith('GET /api/stats '));
    assert.ok(stats, log);
    assert.match(stats.msg, /^GET \/api\/stats 200 bytes=\d+ duration_ms=\d+\.\d{3} client=127\.0\.0\.1:\d+$/);
    const missing = lines.find((l) => l.msg.startsWith('GET /no/such/path '));
    assert.match(missing.msg, /^GET \/no\/such\/path 404 bytes=\d+ /);
    const publishes = lines.filter((l) => l.msg.startsWith('POST /api/events 200 '));
    assert.equal(publishes.length, events, 'one line per publish request');

    const ws = lines.find((l) => / transport=ws /.test(l.msg));
    assert.ok(ws, log);
    assert.match(ws.msg, /^stream transport=ws duration_ms=\d+\.\d{3} bytes_in=\d+ bytes_out=\d+ code=1000 reason="client close frame" client=127\.0\.0\.1:\d+$/);
    const bytesOut = Number(/bytes_out=(\d+)/.exec(ws.msg)[1]);
    assert.ok(bytesOut > events * 50, `the events went out on it (${bytesOut} bytes)`);
    const sse = lines.find((l) => / transport=sse /.test(l.msg));
    assert.match(sse.msg, /^stream transport=sse duration_ms=\S+ bytes_in=\d+ bytes_out=\d+ code=0 reason="client closed the connection" client=/);
    const cf = lines.find((l) => / transport=centrifuge /.test(l.msg));
    assert.ok(cf, log);
    assert.match(cf.msg, /code=\d+ reason="[^"]*"/);

    // one line per request and per stream: nothing per delivered event (25 events went to three clients)
    assert.ok(lines.length <= events + 8, `${lines.length} access lines`);
    assert.ok(!log.includes(t), 'the token never appears in the log');
    assert.ok(!log.includes('token='), 'no query string in the log');
    assert.ok(!log.includes('channels='), 'no query string in the log');
  });
});

describe('access log, json layout', { timeout: 60000 }, () => {
  let srv;
  let t;
  before(async () => {
    srv = await startServer({ flags: { accessLog: true, logFormat: 'json', tokenSecret: SECRET } });
    t = token();
  });
  after(async () => {
    if (srv)
      await srv.stop();
  });

  it('writes one JSON object per line with the access fields', async () => {
    await exercise(srv, t);
    await waitFor(() => jsonLines(srv.logs()).filter((l) => l.kind === 'stream').length >= 3,
      { timeout: 5000, message: 'three stream lines' });
    const lines = jsonLines(srv.logs());
    for (const l of lines) {
      assert.match(l.ts, TS);
      assert.ok(['error', 'warn', 'info', 'debug'].includes(l.level), JSON.stringify(l));
      assert.equal(typeof l.module, 'string');
      assert.equal(typeof l.msg, 'string');
    }
    assert.ok(lines.some((l) => l.module === 'server' && /^listening on /.test(l.msg)));
    const stats = lines.find((l) => l.kind === 'http' && l.path === '/api/stats');
    assert.deepEqual(Object.keys(stats), ['ts', 'level', 'module', 'msg', 'kind', 'method', 'path', 'status', 'bytes', 'duration_ms', 'client']);
    assert.equal(stats.module, 'access');
    assert.equal(stats.method, 'GET');
    assert.equal(stats.status, 200);
    assert.ok(stats.bytes > 100 && typeof stats.duration_ms === 'number');
    assert.match(stats.client, /^127\.0\.0\.1:\d+$/);
    const ws = lines.find((l) => l.kind === 'stream' && l.transport === 'ws');
    assert.equal(ws.code, 1000);
    assert.equal(ws.reason, 'client close frame');
    assert.ok(ws.bytes_in > 0 && ws.bytes_out > 0 && ws.duration_ms > 0);
    assert.ok(lines.some((l) => l.kind === 'stream' && l.transport === 'sse'));
    assert.ok(lines.some((l) => l.kind === 'stream' && l.transport === 'centrifuge'));
    assert.ok(!srv.logs().includes(t), 'the token never appears in the log');
  });
});

describe('access log off (the default)', { timeout: 60000 }, () => {
  it('writes no access lines', async () => {
    const srv = await startServer({ flags: { tokenSecret: SECRET } });
    try {
      await exercise(srv, token());
      await sleep(200);
      assert.deepEqual(textAccess(srv.logs()), []);
    } finally {
      await srv.stop();
    }
  });
});
