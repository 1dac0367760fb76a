'use strict';
// Limits (DESIGN "Trust and authorization", Limits) through real clients: connections in all and per client
// address (behind a trusted proxy, per X-Forwarded-For client) are answered 429 limit_exceeded; subscriptions per
// connection and channels per subscribe are refused with limit_exceeded (Centrifuge 106) while the connection and
// its other subscriptions go on; a client flooding commands is refused (Centrifuge 111) and then cut (1008, 3013).
// Every refusal is counted in /metrics. At the open-file limit the server refuses without spinning and keeps
// serving the clients it has.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const { Centrifuge } = require('centrifuge');
const WebSocket = require('ws');
const { startServer } = require('./lib/server');
const { publish, publishOk, request } = require('./lib/http');
const { WsClient } = require('./lib/ws');
const { SseClient } = require('./lib/sse');
const { sleep, uniq, waitFor, withTimeout } = require('./lib/util');

const ev = (ch) => ({ type: 'incident.created', channels: [ch], data: { severity: 'SEV-2' } });
/** realtime_limited_total{limit="…"} from /metrics. */
async function limited(srv, limit) {
  const r = await request(srv.port, { path: '/metrics' });
  const m = r.text.match(new RegExp(`^realtime_limited_total\\{limit="${limit}"\\} (\\d+)$`, 'm'));
  assert.ok(m, `realtime_limited_total{limit="${limit}"} in /metrics`);
  return Number(m[1]);
}

describe('connection limits', { timeout: 60000 }, () => {
  it('max_connections_per_ip: the next connection gets 429 limit_exceeded; the others keep receiving', async () => {
    const srv = await startServer({ flags: { maxConnectionsPerIp: 3 } });
    const streams = [];
    try {
      const ch = `incidents.${uniq('ip')}`;
      for (let i = 0; i < 3; i++)
        streams.push(await SseClient.connect(srv.port, `/events?channels=${ch}`));
      const r = await request(srv.port, { path: `/events?channels=${ch}` });
      assert.equal(r.status, 429);
      assert.equal(r.json.error.code, 'limit_exceeded');
      assert.match(r.json.error.message, /max_connections_per_ip 3/);
      assert.equal(r.headers.connection, 'close');
      assert.equal(r.headers['retry-after'], '1');
      // a publish needs a connection too: free one first, then every stream still open gets the event
      streams.shift().close();
      let id; // the slot frees once the server sees the close (a refused connection's lingers a moment too)
      await waitFor(async () => {
        const r = await publish(srv, ev(ch));
        id = r.status === 200 ? r.json.id : undefined;
        return id;
      }, { message: 'a publish through the freed slot' });
      for (const s of streams)
        await s.waitFor((m) => m.id === id);
      assert.ok(await limited(srv, 'max_connections_per_ip') >= 1);
    } finally {
      streams.forEach((s) => s.close());
      await srv.stop();
    }
  });

  it('behind a trusted proxy each X-Forwarded-For client has its own count', async () => {
    const srv = await startServer({ flags: { maxConnectionsPerIp: 2, trustedProxies: '127.0.0.1' } });
    const streams = [];
    try {
      const as = (client) => ({ headers: { 'X-Forwarded-For': `198.51.100.1, ${client}` } });
      streams.push(await SseClient.connect(srv.port, '/events?channels=a', as('203.0.113.1')));
      streams.push(await SseClient.connect(srv.port, '/events?channels=a', as('203.0.113.1')));
      const third = await SseClient.connect(srv.port, '/events?channels=a', as('203.0.113.1'));
      assert.equal(third.status, 429);
      const other = await SseClient.connect(srv.port, '/events?channels=a', as('203.0.113.2'));
      assert.equal(other.status, 200, 'another client behind the same proxy');
      streams.push(other);
      // the leftmost entry is the client's own claim: changing it does not escape the count
      const spoof = await SseClient.connect(srv.port, '/events?channels=a', { headers: { 'X-Forwarded-For': '10.9.9.9, 203.0.113.1' } });
      assert.equal(spoof.status, 429);
    } finally {
      streams.forEach((s) => s.close());
      await srv.stop();
    }
  });

  it('max_connections: a WebSocket over it is refused with 429', async () => {
    const srv = await startServer({ flags: { maxConnections: 3 } });
    const clients = [];
    try {
      for (let i = 0; i < 3; i++)
        clients.push(await WsClient.connect(`${srv.ws}/ws`));
      const e = await WsClient.connect(`${srv.ws}/ws`).then((c) => { c.close(); return null; }, (err) => err);
      assert.ok(e && e.status === 429, `refused with 429 (got ${e && e.message})`);
      assert.equal(JSON.parse(e.body).error.code, 'limit_exceeded');
      clients.pop().close();
      await waitFor(async () => (await limited(srv, 'max_connections')) >= 1, { message: 'the refusal counted' });
    } finally {
      clients.forEach((c) => c.close());
      await srv.stop();
    }
  });
});

describe('subscription limits', { timeout: 60000 }, () => {
  let srv;
  before(async () => {
    srv = await startServer({ flags: { maxSubscriptions: 3, maxChannelsPerSubscribe: 2 } });
  });
  after(async () => {
    if (srv)
      await srv.stop();
  });

  it('/ws: the subscription over max_subscriptions is refused; the others keep delivering', async () => {
    const c = await WsClient.connect(`${srv.ws}/ws`);
    try {
      const ch = `incidents.${uniq('subs')}`;
      const tooWide = await c.subscribe({ id: 'w', channels: ['a', 'b', 'c'] });
      assert.equal(tooWide.error.code, 'limit_exceeded');
      assert.match(tooWide.error.message, /max_channels_per_subscribe/);
      for (let i = 1; i <= 3; i++)
        assert.equal((await c.subscribe({ id: `s${i}`, channels: [`${ch}.${i}`] })).type, 'subscribed');
      const over = await c.subscribe({ id: 's4', channels: [`${ch}.4`] });
      assert.equal(over.type, 'error');
      assert.equal(over.error.code, 'limit_exceeded');
      assert.match(over.error.message, /max_subscriptions/);
      await publishOk(srv, ev(`${ch}.4`)); // refused: never delivered
      const { id } = await publishOk(srv, ev(`${ch}.2`));
      await c.waitFor((m) => m.type === 'event' && m.event.id === id);
      assert.deepEqual(c.events().map((e) => e.id), [id]);
    } finally {
      c.close();
    }
    assert.ok(await limited(srv, 'max_subscriptions') >= 1);
    assert.ok(await limited(srv, 'max_channels_per_subscribe') >= 1);
  });

  it('/events: more channels than max_channels_per_subscribe is 429 limit_exceeded', async () => {
    const c = await SseClient.connect(srv.port, '/events?channels=a,b,c');
    assert.equal(c.status, 429);
    assert.equal(c.json.error.code, 'limit_exceeded');
    const ok = await SseClient.connect(srv.port, '/events?channels=a,b');
    assert.equal(ok.status, 200);
    ok.close();
  });

  it('centrifuge-js: the subscription over max_subscriptions fails with 106', async () => {
    const client = new Centrifuge(`${srv.ws}/connection/websocket`, { websocket: WebSocket });
    try {
      const refused = [];
      const subs = [1, 2, 3, 4].map((i) => {
        const s = client.newSubscription(`news.${i}`);
        s.on('unsubscribed', (ctx) => refused.push(ctx.code));
        s.subscribe();
        return s;
      });
      client.connect();
      await waitFor(() => subs.filter((s) => s.state === 'subscribed').length === 3 && refused.length > 0,
        { timeout: 5000, message: 'three subscribed, one refused' });
      assert.deepEqual(refused, [106]);
    } finally {
      client.disconnect();
    }
  });
});

describe('command rate', { timeout: 60000 }, () => {
  let srv;
  before(async () => {
    srv = await startServer({ flags: { clientCommandRate: 20, clientCommandBurst: 10 } });
  });
  after(async () => {
    if (srv)
      await srv.stop();
  });

  it('/ws: a burst passes, then limit_exceeded, then a client that keeps on is closed with 1008', async () => {
    const c = await WsClient.connect(`${srv.ws}/ws`);
    for (let i = 0; i < 40; i++)
      c.send({ type: 'ping', id: `p${i}` });
    const close = await c.waitClose();
    assert.equal(close.code, 1008);
    assert.equal(close.reason, 'message rate limit');
    const pongs = c.msgs.filter((m) => m.type === 'pong').length;
    const refused = c.msgs.filter((m) => m.type === 'error' && m.error.code === 'limit_exceeded').length;
    assert.ok(pongs >= 10 && pongs <= 12, `the burst (10) passes, and what the rate refills meanwhile: ${pongs}`);
    assert.ok(refused >= 9, `then refusals: ${refused}`);
    assert.ok(await limited(srv, 'client_command_rate') >= refused);
  });

  it('/ws: a client within the rate is never refused', async () => {
    const c = await WsClient.connect(`${srv.ws}/ws`);
    try {
      for (let i = 0; i < 15; i++) {
        c.send({ type: 'ping', id: `q${i}` });
        await sleep(60); // ~16/s, under 20/s
      }
      await c.waitFor((m) => m.id === 'q14');
      assert.equal(c.msgs.filter((m) => m.type === 'error').length, 0);
    } finally {
      c.close();
    }
  });

  it('Centrifuge: over the rate a command gets 111 (temporary), and a flood is disconnected with 3013', async () => {
    const c = await WsClient.connect(`${srv.ws}/connection/websocket`);
    c.send({ id: 1, connect: {} });
    await c.waitFor((m) => m.id === 1 && m.connect);
    // rpc is answered 104 (no RPC here) while within the rate
    c.send(Array.from({ length: 40 }, (_, i) => JSON.stringify({ id: i + 2, rpc: { method: 'x' } })).join('\n'));
    const close = await c.waitClose();
    assert.equal(close.code, 3013);
    const codes = c.msgs.filter((m) => m.error).map((m) => m.error.code);
    assert.ok(codes.includes(104) && codes.includes(111), JSON.stringify(codes));
    assert.ok(c.msgs.filter((m) => m.error && m.error.code === 111).every((m) => m.error.temporary === true));
  });
});

describe('at the open-file limit', { timeout: 60000 }, () => {
  it('refuses without spinning, keeps its clients, and recovers', async (t) => {
    const srv = await startServer({ nofile: 128, workers: 1 });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const extra = [];
    let stream;
    try {
      const ch = `incidents.${uniq('cap')}`;
      stream = await SseClient.connect(srv.port, `/events?channels=${ch}`);
      await publishOk(srv, ev(ch), { agent }); // the publisher's connection is open before the storm
      // Far more connections than descriptors, held open.
      await Promise.all(Array.from({ length: 200 }, () => new Promise((resolve) => {
        const s = net.connect({ host: '127.0.0.1', port: srv.port });
        s.on('error', () => {});
        s.on('close', resolve);
        s.on('connect', () => setTimeout(resolve, 50));
        extra.push(s);
      })));
      const cpuOf = () => fs.readFileSync(`/proc/${srv.pid}/stat`, 'utf8').split(') ')[1].split(' ').slice(11, 13).map(Number).reduce((a, b) => a + b);
      const ticks0 = cpuOf();
      const t0 = Date.now();
      // Keep knocking for a second: new connections over the cap.
      const knock = Array.from({ length: 100 }, () => new Promise((resolve) => {
        const s = net.connect({ host: '127.0.0.1', port: srv.port });
        s.on('error', resolve);
        s.on('close', resolve);
        extra.push(s);
      }));
      const { id } = await publishOk(srv, ev(ch), { agent });
      await stream.waitFor((m) => m.id === id);
      await sleep(1000);
      const cpu = (cpuOf() - ticks0) / 100 / ((Date.now() - t0) / 1000); // clock ticks are 1/100 s
      t.diagnostic(`at the 128-descriptor limit with 300 connections knocking: server CPU ${(cpu * 100).toFixed(1)}% of a core`);
      assert.ok(cpu < 0.5, `the server used ${(cpu * 100).toFixed(0)}% of a core while at the limit`);
      await withTimeout(Promise.all(knock), 5000, 'connections over the limit are closed, not left hanging');
      assert.ok((srv.logs().match(/accept: /g) || []).length <= 3, 'no line per refused client');
      extra.forEach((s) => s.destroy());
      await waitFor(async () => (await request(srv.port, { path: '/healthz' }).catch(() => ({}))).status === 200,
        { timeout: 5000, message: 'new connections accepted again' });
    } finally {
      extra.forEach((s) => s.destroy());
      stream?.close();
      agent.destroy();
      await srv.stop();
    }
  });
});
