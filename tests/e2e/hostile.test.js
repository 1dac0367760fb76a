'use strict';
// Hostile input. Each case runs while an SSE observer and a /ws observer stay connected; after each case a beacon
// event is published and must reach both, and at the end each observer has every beacon exactly once, in order.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startServer } = require('./lib/server');
const { publishOk, rawExchange, parseResponses, request } = require('./lib/http');
const { WsClient, RawWs } = require('./lib/ws');
const { SseClient } = require('./lib/sse');
const { uniq, waitFor } = require('./lib/util');

describe('hostile input', { timeout: 120000 }, () => {
  let srv;
  let sse;
  let wsObs = null;
  let wsObsError = null;
  const beacons = [];
  const ch = uniq('watch');

  /** Publishes a beacon and checks the server still serves everyone. */
  async function beacon(label) {
    const r = await publishOk(srv, { type: 'system.notification', channels: [ch], data: { after: label } });
    beacons.push(r.id);
    await sse.waitFor((m) => m.id === r.id, { message: `SSE observer gets the beacon after ${label}` });
    if (wsObs)
      await wsObs.waitFor((m) => m.type === 'event' && m.event.id === r.id, { message: `/ws observer gets the beacon after ${label}` });
    assert.equal((await request(srv.port, { path: '/healthz' })).status, 200);
  }

  before(async () => {
    srv = await startServer({ flags: { maxMessageBytes: 1024 } });
    sse = await SseClient.connect(srv.port, `/events?channels=${ch}`);
    await waitFor(() => sse.retry !== null);
    try {
      wsObs = await WsClient.connect(`${srv.ws}/ws?channels=${ch}`);
      await wsObs.waitType('subscribed');
    } catch (e) {
      wsObs = null;
      wsObsError = e;
    }
  });
  after(async () => {
    if (sse)
      sse.close();
    if (wsObs)
      wsObs.terminate();
    if (srv)
      await srv.stop();
  });

  it('garbage HTTP gets 400 and the connection closes; the server keeps serving', { timeout: 15000 }, async () => {
    const garbage = [
      'GARBAGE\r\n\r\n',
      'GET / HTTP/9.9\r\n\r\n',
      'GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n',
      'GET /healthz HTTP/1.1\r\nbad header line\r\n\r\n',
      Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0x0d, 0x0a, 0x0d, 0x0a]), // a TLS hello
      'POST /api/events HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    ];
    for (const g of garbage) {
      const { data, closed } = await rawExchange(srv.port, [g], { timeout: 3000 });
      const { responses } = parseResponses(data);
      assert.equal(responses.length, 1, `one response to ${JSON.stringify(g.toString())}: ${JSON.stringify(data.toString())}`);
      assert.equal(responses[0].status, 400, `${JSON.stringify(g.toString())} → ${responses[0].status}`);
      assert.ok(closed, `connection closed after ${JSON.stringify(g.toString())}`);
    }
    await beacon('garbage http');
  });

  it('a WebSocket handshake without Upgrade or with a wrong version is refused', { timeout: 15000 }, async () => {
    const cases = [
      'GET /ws HTTP/1.1\r\nHost: x\r\n\r\n',
      'GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n',
      'GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n',
    ];
    for (const c of cases) {
      const { data } = await rawExchange(srv.port, [c], { timeout: 2000, until: (b) => b.includes('\r\n\r\n') });
      const status = Number(data.toString().slice(9, 12));
      assert.ok(status === 400 || status === 426, `${JSON.stringify(c)} → ${JSON.stringify(data.toString().slice(0, 80))}`);
    }
    await beacon('bad handshake');
  });

  it('an unmasked client frame is closed 1002', { timeout: 10000 }, async () => {
    const raw = await RawWs.connect(srv.port, '/ws');
    try {
      raw.sendText('{"type":"ping"}', { mask: false });
      const { code } = await raw.waitCloseFrame();
      assert.equal(code, 1002);
    } finally {
      raw.destroy();
    }
    await beacon('unmasked');
  });

  it('an unknown opcode and reserved bits are closed 1002', { timeout: 10000 }, async () => {
    for (const send of [(r) => r.sendFrame(0x3, 'x'), (r) => r.sendFrame(0x1, '{"type":"ping"}', { rsv: 4 }),
      (r) => r.sendFrame(0x9, 'x'.repeat(126)), (r) => r.sendFrame(0x9, 'x', { fin: false })]) {
      const raw = await RawWs.connect(srv.port, '/ws');
      try {
        send(raw);
        const { code } = await raw.waitCloseFrame();
        assert.equal(code, 1002, send.toString());
      } finally {
        raw.destroy();
      }
    }
    await beacon('bad opcode');
  });

  it('invalid UTF-8 in a text frame is closed 1007', { timeout: 10000 }, async () => {
    const raw = await RawWs.connect(srv.port, '/ws');
    try {
      raw.sendFrame(0x1, Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]));
      const { code } = await raw.waitCloseFrame();
      assert.equal(code, 1007);
    } finally {
      raw.destroy();
    }
    await beacon('bad utf-8');
  });

  it('a message over max_message_bytes is closed 1009 (whole and fragmented)', { timeout: 10000 }, async () => {
    const big = JSON.stringify({ type: 'ping', pad: 'x'.repeat(2000) });
    const raw = await RawWs.connect(srv.port, '/ws');
    try {
      raw.sendText(big);
      assert.equal((await raw.waitCloseFrame()).code, 1009);
    } finally {
      raw.destroy();
    }
    const frag = await RawWs.connect(srv.port, '/ws');
    try {
      frag.sendFrame(0x1, big.slice(0, 800), { fin: false });
      frag.sendFrame(0x0, big.slice(800, 1600), { fin: false });
      frag.sendFrame(0x0, big.slice(1600), { fin: true });
      assert.equal((await frag.waitCloseFrame()).code, 1009);
    } finally {
      frag.destroy();
    }
    // just under the limit is fine
    const ok = await RawWs.connect(srv.port, '/ws');
    try {
      ok.sendText(JSON.stringify({ type: 'ping', pad: 'y'.repeat(900) }));
      await waitFor(() => ok.texts().some((m) => m.type === 'pong'), { message: 'pong for a 930-byte message' });
    } finally {
      ok.destroy();
    }
    await beacon('oversize');
  });

  it('invalid JSON and unknown types get errors; the connection stays open', { timeout: 10000 }, async () => {
    const c = await WsClient.connect(`${srv.ws}/ws`);
    try {
      await c.waitType('welcome');
      for (const bad of ['{', '[]', '"str"', '42', 'null', '{"type":"subscribe"', '\u0000']) {
        const n = c.msgs.length;
        c.send(bad);
        const e = await c.waitFor((m, i) => c.msgs.indexOf(m) >= n && m.type === 'error', { message: `error for ${JSON.stringify(bad)}` });
        assert.ok(['invalid_json', 'bad_request', 'unknown_type'].includes(e.error.code), `${JSON.stringify(bad)} → ${JSON.stringify(e)}`);
      }
      c.send('{');
      const inv = await c.waitFor((m) => m.type === 'error' && m.error.code === 'invalid_json');
      assert.ok(inv);
      c.send({ type: 'shout', id: 'x1' });
      const unk = await c.waitFor((m) => m.type === 'error' && m.error.code === 'unknown_type');
      assert.equal(unk.error.code, 'unknown_type');
      c.send({ type: 'ping' });
      await c.waitType('pong');
      assert.equal(c.closeInfo, null);
    } finally {
      c.terminate();
    }
    await beacon('invalid json');
  });

  it('bad channel names are invalid_channel, each naming the subscription', { timeout: 15000 }, async () => {
    const c = await WsClient.connect(`${srv.ws}/ws`);
    try {
      await c.waitType('welcome');
      const bad = ['', '.', 'a..b', '.a', 'a.', 'a b', 'a/b', 'é', 'x'.repeat(256), 'a.*.>.b', 'a.>.b', 42, null];
      for (const [i, name] of bad.entries()) {
        const r = await c.subscribe({ id: `b${i}`, channels: [name] });
        assert.equal(r.type, 'error', `${JSON.stringify(name)} → ${JSON.stringify(r)}`);
        assert.ok(['invalid_channel', 'bad_request'].includes(r.error.code), `${JSON.stringify(name)} → ${JSON.stringify(r)}`);
      }
      // the string ones are invalid_channel precisely
      for (const [i, name] of bad.entries()) {
        if (typeof name === 'string') {
          const r = c.msgs.find((m) => m.type === 'error' && m.id === `b${i}`);
          assert.equal(r.error.code, 'invalid_channel', JSON.stringify(name));
        }
      }
      // a NUL inside a JSON string: refused as invalid JSON (no id can be trusted) or as a bad channel
      const n = c.msgs.length;
      c.send({ type: 'subscribe', id: 'nul', channels: ['a\u0000b'] });
      const nul = await c.waitFor((m) => c.msgs.indexOf(m) >= n && m.type === 'error', { message: 'an error for a NUL in a channel name' });
      assert.ok(['invalid_json', 'invalid_channel'].includes(nul.error.code), JSON.stringify(nul));
      const okName = `${'x'.repeat(250)}.y_:@-`;
      assert.equal((await c.subscribe({ id: 'ok', channels: [okName.slice(0, 255)] })).type, 'subscribed');
      // SSE too
      const s = await SseClient.connect(srv.port, '/events?channels=a..b');
      assert.equal(s.status, 400);
      assert.equal(s.json.error.code, 'invalid_channel', s.body);
      // and the query form on /ws: refused with an error (after the handshake) or a 400 — never a crash
      try {
        const q = await WsClient.connect(`${srv.ws}/ws?channels=a..b`);
        const e = await q.waitFor((m) => m.type === 'error');
        assert.equal(e.error.code, 'invalid_channel');
        q.terminate();
      } catch (e) {
        assert.equal(e.status, 400, e.message);
      }
    } finally {
      c.terminate();
    }
    await beacon('bad channels');
  });

  it('both observers received every beacon exactly once, in order', { timeout: 10000 }, async () => {
    assert.ok(beacons.length >= 1);
    assert.deepEqual(sse.events().map((e) => e.id), beacons);
    assert.ok(wsObs, `the /ws observer could not connect: ${wsObsError && wsObsError.message}`);
    assert.deepEqual(wsObs.events().map((e) => e.id), beacons);
    assert.equal(wsObs.closeInfo, null);
    assert.ok(!sse.isEnded);
  });
});
