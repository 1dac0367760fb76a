'use strict';
// Publishing through the redis broker never blocks a worker's loop. A one-worker node talks to a real redis-server
// through a small TCP proxy that delays every chunk by 50 ms each way, so each publish takes at least one 100 ms
// round trip. While a source publishes 20 events/s through that node, a /ws client's ping→pong round trip on the
// same (only) worker stays under 10 ms at p99, and every event is delivered. A publisher that hangs up while its
// publish waits for Redis leaves the node unharmed (run it against the ASan build too).

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { startRedis } = require('./lib/redis');
const { startServer, pickPort } = require('./lib/server');
const { startDelayProxy } = require('./lib/proxy');
const { request, publish, rawExchange, parseResponses } = require('./lib/http');
const WebSocket = require('ws');
const { WsClient } = require('./lib/ws');
const { uniq, sleep, waitFor, withTimeout } = require('./lib/util');

const DELAY_MS = 50;
const RATE = 20; // publishes per second
const MEASURE_MS = 3000;

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** One native ping→pong round trip on c, in ms (bounded). */
function pingPong(c, timeout = 5000) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const timer = setTimeout(() => {
      c.ws.off('message', onMsg);
      reject(new Error(`no pong within ${timeout} ms`));
    }, timeout);
    const onMsg = (data) => {
      let m;
      try {
        m = JSON.parse(data.toString('utf8'));
      } catch {
        return;
      }
      if (m.type !== 'pong')
        return;
      clearTimeout(timer);
      c.ws.off('message', onMsg);
      resolve(Number(process.hrtime.bigint() - t0) / 1e6);
    };
    c.ws.on('message', onMsg);
    c.send({ type: 'ping' });
  });
}

describe('redis broker: publishing does not block the loop', { timeout: 60000 }, () => {
  let redis;
  let proxy;
  let node;

  before(async () => {
    const redisPort = await pickPort();
    redis = await startRedis(redisPort);
    proxy = await startDelayProxy(redisPort, DELAY_MS);
    node = await startServer({ workers: 1, flags: {
      broker: 'redis', redisUrl: `redis://127.0.0.1:${proxy.port}`,
      namespaces: JSON.stringify([{ pattern: 'cpub.>', client_publish: true }]),
      clientCommandRate: 0, // the ping client sends a ping as soon as it has its pong: far over the default 50/s
    } });
    await waitFor(async () => (await request(node.port, { path: '/readyz', timeout: 2000 })).status === 200,
      { timeout: 10000, message: 'node ready' });
  });

  after(async () => {
    if (node)
      await node.stop();
    if (proxy)
      await proxy.close();
    if (redis)
      await redis.stop();
  });

  it(`keeps /ws ping→pong under 10 ms p99 while ${RATE} events/s are published through a ${DELAY_MS} ms-away Redis`, async () => {
    const ch = uniq('loop');
    const sub = await WsClient.connect(`${node.ws}/ws?channels=${ch}`);
    const pinger = await WsClient.connect(`${node.ws}/ws`);
    try {
      await sub.waitType('subscribed');
      for (let i = 0; i < 5; i++) // warm up
        await pingPong(pinger);
      const ids = [];
      const answers = [];
      const t0 = Date.now();
      const publisher = (async () => {
        for (let i = 0; Date.now() - t0 < MEASURE_MS; i++) {
          const id = `${ch}-${i}`;
          ids.push(id);
          answers.push(publish(node, { id, type: 'incident.updated', channels: [ch], data: { i } })
            .catch((e) => ({ status: 0, text: e.message })));
          await sleep(Math.max(0, t0 + ((i + 1) * 1000) / RATE - Date.now()));
        }
      })();
      const rtts = [];
      while (Date.now() - t0 < MEASURE_MS) {
        rtts.push(await pingPong(pinger));
        await sleep(5);
      }
      await publisher;
      const results = await withTimeout(Promise.all(answers), 15000, 'the publish answers');
      rtts.sort((x, y) => x - y);
      const p50 = percentile(rtts, 50);
      const p99 = percentile(rtts, 99);
      console.log(`# ${rtts.length} ping round trips: p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms, max ${rtts[rtts.length - 1].toFixed(2)} ms; ${ids.length} publishes`);
      const failed = results.filter((r) => r.status !== 200);
      assert.equal(failed.length, 0, `publishes not answered 200: ${JSON.stringify(failed.slice(0, 3))}`);
      assert.ok(ids.length >= (RATE * MEASURE_MS) / 1000 - 2, `only ${ids.length} publishes were sent`);
      assert.ok(p99 < 10, `ping→pong p99 ${p99.toFixed(2)} ms (p50 ${p50.toFixed(2)} ms), want < 10 ms`);
      assert.ok(rtts.length >= 50, `only ${rtts.length} round trips measured`);
      await sub.waitEvents(ids.length, { timeout: 10000 });
      await sleep(200);
      // The publishes overlap (one connection each), so Redis orders them: every one delivered once, in seq order,
      // with the seq its publisher was answered.
      const got = sub.events();
      assert.deepEqual(got.map((e) => e.id).sort(), [...ids].sort(), 'every event delivered exactly once');
      for (let i = 1; i < got.length; i++)
        assert.ok(got[i].seq > got[i - 1].seq, `seq ${got[i].seq} after ${got[i - 1].seq}`);
      const answered = new Map(results.map((r, i) => [ids[i], r.json.seq]));
      for (const e of got)
        assert.equal(e.seq, answered.get(e.id), `${e.id}: delivered with the seq it was answered`);
    } finally {
      sub.close();
      pinger.close();
    }
  });

  it('survives a publisher that hangs up while its publish waits for Redis; the event still goes out', async () => {
    const ch = uniq('gone');
    const sub = await WsClient.connect(`${node.ws}/ws?channels=${ch}`);
    try {
      await sub.waitType('subscribed');
      const ids = [];
      for (let i = 0; i < 5; i++) {
        const id = `${ch}-${i}`;
        ids.push(id);
        const body = JSON.stringify({ id, type: 'incident.updated', channels: [ch], data: { i } });
        await new Promise((resolve, reject) => {
          const s = net.connect({ host: '127.0.0.1', port: node.port }, () => {
            s.write(`POST /api/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
            // Gone well before Redis (100 ms away) answers.
            setTimeout(() => {
              s.destroy();
              resolve();
            }, 20);
          });
          s.on('error', reject);
        });
      }
      // The same id again, answered: the original seq (idempotent), once Redis has it.
      await sub.waitEvents(ids.length, { timeout: 5000 });
      const again = await publish(node, { id: ids[0], type: 'incident.updated', channels: [ch] });
      assert.equal(again.status, 200, again.text);
      assert.equal(again.json.seq, sub.events()[0].seq);
      await sleep(200);
      assert.deepEqual(sub.events().map((e) => e.id), ids);
      assert.equal((await request(node.port, { path: '/healthz' })).status, 200);
    } finally {
      sub.close();
    }
  });

  it('answers a batch and Centrifugo /api/publish through the same parked path', async () => {
    const ch = uniq('batch');
    const sub = await WsClient.connect(`${node.ws}/ws?channels=${ch}`);
    try {
      await sub.waitType('subscribed');
      const events = [0, 1, 2].map((i) => ({ id: `${ch}-${i}`, type: 'incident.updated', channels: [ch], data: { i } }));
      const r = await publish(node, { events });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.json.events.map((e) => e.id), events.map((e) => e.id));
      const cf = await request(node.port, {
        method: 'POST', path: '/api/publish', headers: { 'Content-Type': 'application/json' },
        body: { channel: ch, data: { hello: 1 } },
      });
      assert.equal(cf.status, 200, cf.text);
      assert.ok(cf.json.result.offset >= 4, cf.text);
      const bc = await request(node.port, {
        method: 'POST', path: '/api/broadcast', headers: { 'Content-Type': 'application/json' },
        body: { channels: [ch, 'bad channel!'], data: { hello: 2 } },
      });
      assert.equal(bc.status, 200, bc.text);
      assert.ok(bc.json.result.responses[0].result.offset >= 5, bc.text);
      assert.ok(bc.json.result.responses[1].error, bc.text);
      await sub.waitEvents(5, { timeout: 5000 });
      const got = sub.events();
      for (let i = 1; i < got.length; i++)
        assert.ok(got[i].seq > got[i - 1].seq);
    } finally {
      sub.close();
    }
  });

  it('answers a Centrifuge client publish once Redis has it, and drops the answer of a client that left', async () => {
    const ch = `cpub.${uniq('c')}`;
    const sub = await WsClient.connect(`${node.ws}/ws?channels=${ch}`);
    const open = () => new Promise((resolve, reject) => {
      const ws = new WebSocket(`${node.ws}/connection/websocket`);
      const msgs = [];
      ws.on('message', (d) => msgs.push(JSON.parse(d.toString())));
      ws.once('open', () => resolve({ ws, msgs }));
      ws.once('error', reject);
    });
    try {
      await sub.waitType('subscribed');
      const a = await open();
      a.ws.send(JSON.stringify({ id: 1, connect: {} }));
      await waitFor(() => a.msgs.find((m) => m.id === 1), { message: 'connect reply' });
      const t0 = Date.now();
      a.ws.send(JSON.stringify({ id: 2, publish: { channel: ch, data: { n: 1 } } }));
      const rep = await waitFor(() => a.msgs.find((m) => m.id === 2), { message: 'publish reply' });
      assert.deepEqual(rep, { id: 2, publish: {} });
      assert.ok(Date.now() - t0 >= 2 * DELAY_MS, 'answered after Redis');
      // Another client publishes and leaves at once: its answer has nobody to go to; the event goes out.
      const b = await open();
      b.ws.send(JSON.stringify({ id: 1, connect: {} }));
      await waitFor(() => b.msgs.find((m) => m.id === 1), { message: 'connect reply' });
      b.ws.send(JSON.stringify({ id: 2, publish: { channel: ch, data: { n: 2 } } }));
      setTimeout(() => b.ws.terminate(), 10);
      await sub.waitEvents(2, { timeout: 5000 });
      assert.deepEqual(sub.events().map((e) => e.data), [{ n: 1 }, { n: 2 }]);
      a.ws.close();
      assert.equal((await request(node.port, { path: '/healthz' })).status, 200);
    } finally {
      sub.close();
    }
  });

  it('answers pipelined publishes in order, each after the one before it is answered', async () => {
    const ch = uniq('pipe');
    const one = (i) => {
      const b = JSON.stringify({ id: `${ch}-${i}`, type: 'incident.updated', channels: [ch] });
      return `POST /api/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(b)}\r\n\r\n${b}`;
    };
    const got = await rawExchange(node.port, [`${one(0)}${one(1)}${one(2)}GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`],
      { timeout: 5000 });
    const rs = parseResponses(got.data).responses;
    assert.deepEqual(rs.map((r) => r.status), [200, 200, 200, 200]);
    const ans = rs.slice(0, 3).map((r) => JSON.parse(r.body.toString()));
    assert.deepEqual(ans.map((a) => a.id), [0, 1, 2].map((i) => `${ch}-${i}`));
    assert.ok(ans[0].seq < ans[1].seq && ans[1].seq < ans[2].seq);
  });
});
