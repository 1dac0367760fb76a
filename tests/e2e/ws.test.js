'use strict';
// The native WebSocket protocol on /ws: welcome, subscribe/unsubscribe, ping/pong, events, errors, query
// subscriptions, at-most-once delivery, patterns, `all`, ordering, heartbeats.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startServer } = require('./lib/server');
const { publishOk } = require('./lib/http');
const { WsClient, RawWs } = require('./lib/ws');
const { uniq, sleep } = require('./lib/util');

/** Publishes the events, then a marker on markerCh; waits for the marker on c so everything before it arrived. */
async function settle(srv, c, markerCh) {
  const m = await publishOk(srv, { type: 'system.notification', channels: [markerCh], data: 'marker' });
  await c.waitFor((x) => x.type === 'event' && x.event.id === m.id, { message: 'the marker event' });
  return m.id;
}

describe('/ws native protocol', { timeout: 120000 }, () => {
  let srv;
  const clients = [];
  const connect = async (path = '/ws') => {
    const c = await WsClient.connect(`${srv.ws}${path}`);
    clients.push(c);
    await c.waitType('welcome');
    return c;
  };
  before(async () => {
    srv = await startServer();
  });
  after(async () => {
    for (const c of clients)
      c.terminate();
    if (srv)
      await srv.stop();
  });

  it('welcome comes first with client_id and heartbeat_s', { timeout: 10000 }, async () => {
    const a = await connect();
    const b = await connect();
    const w = a.msgs[0];
    assert.equal(w.type, 'welcome');
    assert.match(w.client_id, /^c-./);
    assert.equal(w.heartbeat_s, 25);
    assert.notEqual(b.msgs[0].client_id, w.client_id);
  });

  it('subscribe → subscribed, then events carrying seq', { timeout: 10000 }, async () => {
    const c = await connect();
    const ch = uniq('incidents');
    const reply = await c.subscribe({ id: 's1', channels: [ch, 'system'] });
    assert.deepEqual(reply, { type: 'subscribed', id: 's1', channels: [ch, 'system'] });
    const ev = { id: uniq('e'), type: 'incident.created', timestamp: '2026-11-28T04:00:00.123Z', channels: [ch], data: { id: 'INC-123', severity: 'SEV-1', status: 'open' } };
    const r = await publishOk(srv, ev);
    const m = await c.waitFor((x) => x.type === 'event');
    assert.deepEqual(Object.keys(m).sort(), ['event', 'type']);
    assert.deepEqual(m.event, { ...ev, seq: r.seq });
    assert.equal(typeof m.event.seq, 'number');
  });

  it('unsubscribe → unsubscribed, and its events stop', { timeout: 10000 }, async () => {
    const c = await connect();
    const ch = uniq('unsub');
    const other = uniq('keep');
    await c.subscribe({ id: 'a', channels: [ch] });
    await c.subscribe({ id: 'b', channels: [other] });
    const first = await publishOk(srv, { type: 'incident.created', channels: [ch] });
    await c.waitFor((x) => x.type === 'event' && x.event.id === first.id);
    c.send({ type: 'unsubscribe', id: 'a' });
    assert.deepEqual(await c.waitType('unsubscribed'), { type: 'unsubscribed', id: 'a' });
    await publishOk(srv, { type: 'incident.created', channels: [ch] });
    const marker = await settle(srv, c, other);
    assert.deepEqual(c.events().map((e) => e.id), [first.id, marker]);
  });

  it('ping → pong', { timeout: 10000 }, async () => {
    const c = await connect();
    c.send({ type: 'ping' });
    assert.deepEqual(await c.waitType('pong'), { type: 'pong' });
  });

  it('errors keep the connection open: invalid_json, unknown_type, invalid_channel, invalid_filter', { timeout: 15000 }, async () => {
    const c = await connect();
    const errors = () => c.msgs.filter((m) => m.type === 'error');
    const expectError = async (send, code, id) => {
      const n = errors().length;
      c.send(send);
      const e = await c.waitFor(() => errors().length > n && errors()[n], { message: `error ${code}` }).then(() => errors()[n]);
      assert.equal(e.error.code, code, JSON.stringify(e));
      assert.equal(typeof e.error.message, 'string');
      if (id !== undefined)
        assert.equal(e.id, id, JSON.stringify(e));
    };
    await expectError('{"type":', 'invalid_json');
    await expectError('not json at all', 'invalid_json');
    await expectError({ type: 'frobnicate', id: 'u1' }, 'unknown_type');
    await expectError({ type: 'subscribe', id: 's-bad', channels: ['bad..name'] }, 'invalid_channel', 's-bad');
    await expectError({ type: 'subscribe', id: 's-bad2', channels: ['ok', 'sp ace'] }, 'invalid_channel', 's-bad2');
    await expectError({ type: 'subscribe', id: 's-f1', channels: ['ok'], filters: { severity: { nested: 1 } } }, 'invalid_filter', 's-f1');
    await expectError({ type: 'subscribe', id: 's-f2', channels: ['ok'], filter: { op: 'xor', nodes: [] } }, 'invalid_filter', 's-f2');
    await expectError({ type: 'subscribe', id: 's-f3', channels: ['ok'], filter: { key: 'severity', cmp: 'like', val: 'x' } }, 'invalid_filter', 's-f3');
    assert.equal(c.closeInfo, null, 'still open');
    c.send({ type: 'ping' });
    await c.waitType('pong');
    // a failed subscribe did not half-subscribe
    const ch = uniq('after');
    await c.subscribe({ id: 'good', channels: [ch] });
    const r = await publishOk(srv, { type: 'incident.created', channels: ['ok', ch] });
    await c.waitFor((x) => x.type === 'event' && x.event.id === r.id);
    assert.equal(c.events().length, 1);
  });

  it('query-string subscription is id "query", removable by unsubscribe', { timeout: 10000 }, async () => {
    const a = uniq('qa');
    const b = uniq('qb');
    const c = await connect(`/ws?channels=${a},${b}`);
    const sub = await c.waitType('subscribed');
    assert.deepEqual(sub, { type: 'subscribed', id: 'query', channels: [a, b] });
    const idx = c.msgs.indexOf(sub);
    assert.equal(c.msgs[idx - 1].type, 'welcome');
    const r = await publishOk(srv, { type: 'incident.created', channels: [b] });
    await c.waitFor((x) => x.type === 'event' && x.event.id === r.id);
    c.send({ type: 'unsubscribe', id: 'query' });
    assert.deepEqual(await c.waitType('unsubscribed'), { type: 'unsubscribed', id: 'query' });
    const other = uniq('qo');
    await c.subscribe({ id: 'o', channels: [other] });
    await publishOk(srv, { type: 'incident.created', channels: [a] });
    const marker = await settle(srv, c, other);
    assert.deepEqual(c.events().map((e) => e.id), [r.id, marker]);
  });

  it('/ws without channels is allowed: welcome only', { timeout: 10000 }, async () => {
    const c = await connect('/ws');
    await sleep(200);
    assert.deepEqual(c.msgs.map((m) => m.type), ['welcome']);
  });

  it('an event on two channels reaches a client subscribed to both exactly once', { timeout: 10000 }, async () => {
    const a = uniq('two-a');
    const b = uniq('two-b');
    const one = await connect(`/ws?channels=${a},${b}`);
    await one.waitType('subscribed');
    const two = await connect();
    await two.subscribe({ id: 'x', channels: [a] });
    await two.subscribe({ id: 'y', channels: [b] });
    await two.subscribe({ id: 'z', channels: [a, b] });
    const r = await publishOk(srv, { type: 'incident.created', channels: [a, b] });
    const r2 = await publishOk(srv, { type: 'incident.updated', channels: [b, a] });
    await one.waitEvents(2);
    await two.waitEvents(2);
    await sleep(200);
    assert.deepEqual(one.events().map((e) => e.id), [r.id, r2.id]);
    assert.deepEqual(two.events().map((e) => e.id), [r.id, r2.id]);
  });

  it('patterns: `*` is one segment, `>` one or more (last)', { timeout: 10000 }, async () => {
    const root = uniq('p').replace(/-/g, '_');
    const c = await connect();
    assert.equal((await c.subscribe({ id: 'star', channels: [`${root}.inc.*`] })).type, 'subscribed');
    assert.equal((await c.subscribe({ id: 'gt', channels: [`${root}.tl.>`] })).type, 'subscribed');
    const mk = (ch) => ({ id: `${root}:${ch}`, type: 'timeline.updated', channels: [`${root}.${ch}`] });
    const list = ['inc', 'inc.A', 'inc.A.B', 'incx.A', 'tl', 'tl.A', 'tl.A.B', 'tlx.A', 'inc.B'];
    await publishOk(srv, { events: list.map(mk) });
    const other = uniq('pm');
    await c.subscribe({ id: 'm', channels: [other] });
    const marker = await settle(srv, c, other);
    assert.deepEqual(c.events().map((e) => e.id), ['inc.A', 'tl.A', 'tl.A.B', 'inc.B'].map((x) => `${root}:${x}`).concat([marker]));
  });

  it('`all` receives every event (open in insecure mode)', { timeout: 10000 }, async () => {
    const c = await connect();
    assert.deepEqual(await c.subscribe({ id: 'all', channels: ['all'] }), { type: 'subscribed', id: 'all', channels: ['all'] });
    const r1 = await publishOk(srv, { type: 'incident.created', channels: [uniq('any')] });
    const r2 = await publishOk(srv, { type: 'sla.breach', channels: [uniq('x'), uniq('y')] });
    await c.waitFor((x) => x.type === 'event' && x.event.id === r2.id);
    const ids = c.events().map((e) => e.id);
    assert.ok(ids.includes(r1.id));
    assert.equal(ids.filter((id) => id === r2.id).length, 1, 'once, although two channels');
  });

  it('events arrive in seq order per connection', { timeout: 15000 }, async () => {
    const ch = uniq('order');
    const c = await connect(`/ws?channels=${ch}`);
    await c.waitType('subscribed');
    const batches = [];
    for (let i = 0; i < 10; i++)
      batches.push(publishOk(srv, { events: Array.from({ length: 20 }, (_, j) => ({ type: 'timeline.updated', channels: [ch], data: i * 20 + j })) }));
    const res = await Promise.all(batches);
    const seqs = res.flatMap((r) => r.events.map((e) => e.seq)).sort((x, y) => x - y);
    const got = await c.waitEvents(200);
    assert.deepEqual(got.map((e) => e.seq), seqs);
  });

  it('a bad subscribe id/type shape is a bad request, not a disconnect', { timeout: 10000 }, async () => {
    const c = await connect();
    c.send({ type: 'subscribe', id: 'nochan' });
    const e = await c.waitType('error');
    assert.ok(['bad_request', 'invalid_channel'].includes(e.error.code), JSON.stringify(e));
    c.send({ type: 'ping' });
    await c.waitType('pong');
  });
});

describe('/ws heartbeats', { timeout: 60000 }, () => {
  let srv;
  before(async () => {
    srv = await startServer({ flags: { heartbeat: 1, pongTimeout: 1 } });
  });
  after(async () => {
    if (srv)
      await srv.stop();
  });

  it('ping frames every heartbeat; a client that answers stays', { timeout: 15000 }, async () => {
    const c = await WsClient.connect(`${srv.ws}/ws`);
    try {
      const w = await c.waitType('welcome');
      assert.equal(w.heartbeat_s, 1);
      await sleep(3300);
      assert.ok(c.pings >= 2 && c.pings <= 5, `pings in 3.3 s: ${c.pings}`);
      assert.equal(c.closeInfo, null);
    } finally {
      c.terminate();
    }
  });

  it('a client that never pongs is closed 1008 "pong timeout"', { timeout: 15000 }, async () => {
    const raw = await RawWs.connect(srv.port, '/ws', { autoPong: false });
    try {
      const t0 = Date.now();
      const close = await raw.waitCloseFrame(6000);
      assert.deepEqual(close, { code: 1008, reason: 'pong timeout' });
      assert.ok(Date.now() - t0 >= 900, 'not before heartbeat + pong_timeout');
      assert.ok(raw.frames.some((f) => f.opcode === 0x9), 'a ping frame came first');
      await Promise.race([raw.ended, sleep(3000)]);
      assert.ok(raw.isEnded, 'TCP connection closed after the close frame');
    } finally {
      raw.destroy();
    }
  });
});
