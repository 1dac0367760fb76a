'use strict';
// The redis broker: two (then three) realtime nodes share one event stream through a real redis-server that this
// file starts on a random loopback port. Events published on one node reach clients of the other exactly once and
// in order; seqs are global; resume, idempotency and history work across nodes; /readyz follows Redis.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startRedis } = require('./lib/redis');
const { startServer, pickPort } = require('./lib/server');
const { request, publish, publishOk, getJson } = require('./lib/http');
const { WsClient } = require('./lib/ws');
const { SseClient } = require('./lib/sse');
const { uniq, sleep, waitFor, withTimeout, describeSeqProblem } = require('./lib/util');

async function readyStatus(srv) {
  return (await request(srv.port, { path: '/readyz', timeout: 2000 })).status;
}

function startNode(redisPort) {
  return startServer({ flags: { broker: 'redis', redisUrl: `redis://127.0.0.1:${redisPort}` } });
}

/** Asserts events are exactly want (ids), in order, with strictly increasing seqs. */
function assertExactly(events, want, what) {
  const ids = events.map((e) => e.id);
  const problem = describeSeqProblem(ids, want);
  assert.equal(problem, null, `${what}: ${problem}`);
  for (let i = 1; i < events.length; i++)
    assert.ok(events[i].seq > events[i - 1].seq, `${what}: seq ${events[i].seq} after ${events[i - 1].seq}`);
}

describe('redis broker', { timeout: 90000 }, () => {
  let redisPort;
  let redis;
  let a;
  let b;
  const started = [];

  before(async () => {
    redisPort = await pickPort();
    redis = await startRedis(redisPort);
    a = await startNode(redisPort);
    b = await startNode(redisPort);
    started.push(a, b);
    for (const n of [a, b])
      await waitFor(async () => (await readyStatus(n)) === 200, { timeout: 5000, message: `node ${n.port} ready` });
  });

  after(async () => {
    for (const n of started)
      await n.stop();
    if (redis)
      await redis.stop();
  });

  it('delivers an event published on node A to SSE and /ws clients on node B exactly once, in order', async () => {
    const ch = uniq('xnode');
    const sseB = await SseClient.connect(b.port, `/events?channels=${ch}`);
    const wsB = await WsClient.connect(`${b.ws}/ws?channels=${ch}`);
    const sseA = await SseClient.connect(a.port, `/events?channels=${ch}`);
    try {
      assert.equal(sseB.status, 200);
      await wsB.waitType('subscribed');
      const ids = [];
      for (let i = 0; i < 30; i++) {
        const id = `${ch}-${i}`;
        ids.push(id);
        // Mostly through A, some through B: one stream either way.
        const r = await publishOk(i % 3 === 2 ? b : a, { id, type: 'incident.updated', channels: [ch], data: { i } });
        assert.equal(r.id, id);
      }
      await sseB.waitEvents(30);
      await wsB.waitEvents(30);
      await sseA.waitEvents(30);
      await sleep(300); // anything delivered twice would show up by now
      assertExactly(sseB.events(), ids, 'SSE on B');
      assertExactly(wsB.events(), ids, '/ws on B');
      assertExactly(sseA.events(), ids, 'SSE on A');
      assert.deepEqual(wsB.events().map((e) => e.seq), sseA.events().map((e) => e.seq), 'same seqs on both nodes');
      assert.deepEqual(wsB.events()[0].data, { i: 0 });
    } finally {
      sseB.close();
      sseA.close();
      wsB.close();
    }
  });

  it('keeps seq order without duplicates under concurrent publishers on both nodes', async () => {
    const ch = uniq('conc');
    const ws = await WsClient.connect(`${b.ws}/ws?channels=${ch}`);
    const sse = await SseClient.connect(a.port, `/events?channels=${ch}`);
    try {
      await ws.waitType('subscribed');
      const N = 50;
      const loops = [a, b, a, b].map(async (node, k) => {
        const seqs = [];
        for (let i = 0; i < N; i++)
          seqs.push((await publishOk(node, { id: `${ch}-${k}-${i}`, type: 'timeline.updated', channels: [ch] })).seq);
        return seqs;
      });
      const all = (await Promise.all(loops)).flat().sort((x, y) => x - y);
      assert.equal(new Set(all).size, 4 * N, 'every publish got its own seq');
      await ws.waitEvents(4 * N, { timeout: 10000 });
      await sse.waitEvents(4 * N, { timeout: 10000 });
      await sleep(200);
      for (const [what, evs] of [['/ws on B', ws.events()], ['SSE on A', sse.events()]])
        assert.deepEqual(evs.map((e) => e.seq), all, `${what}: every event once, in seq order`);
    } finally {
      ws.close();
      sse.close();
    }
  });

  it('gives global, strictly increasing seqs across nodes', async () => {
    const ch = uniq('seq');
    const seqs = [];
    for (let i = 0; i < 20; i++)
      seqs.push((await publishOk(i % 2 ? a : b, { type: 'timeline.updated', channels: [ch] })).seq);
    for (let i = 1; i < seqs.length; i++)
      assert.equal(seqs[i], seqs[i - 1] + 1, `seqs ${JSON.stringify(seqs)}`);
    // A batch on B continues the same sequence.
    const batch = await publishOk(b, { events: [{ type: 'a.b', channels: [ch] }, { type: 'a.b', channels: [ch] }] });
    assert.deepEqual(batch.events.map((e) => e.seq), [seqs[19] + 1, seqs[19] + 2]);
    // Both nodes' history shows the same events with the same seqs (A's read follows its own publish at once).
    // The batch went through B: A applies it from the stream, so wait for both.
    for (const [node, name] of [[a, 'A'], [b, 'B']])
      await waitFor(async () => (await getJson(node, `/api/history?channel=${ch}&limit=100`)).events.length === 22,
        { message: `${name} history` });
    const ha = await getJson(a, `/api/history?channel=${ch}&limit=100`);
    const hb = await getJson(b, `/api/history?channel=${ch}&limit=100`);
    assert.equal(ha.events.length, 22);
    assert.deepEqual(hb.events.map((e) => [e.id, e.seq]), ha.events.map((e) => [e.id, e.seq]));
  });

  it('resumes on node B from an id published via node A', async () => {
    const ch = uniq('resume');
    const ids = [];
    for (let i = 0; i < 6; i++) {
      ids.push(`${ch}-${i}`);
      await publishOk(a, { id: ids[i], type: 'incident.updated', channels: [ch] });
    }
    await waitFor(async () => (await getJson(b, `/api/history?channel=${ch}`)).events.length === 6, { message: 'B history' });
    const sse = await SseClient.connect(b.port, `/events?channels=${ch}`, { headers: { 'Last-Event-ID': ids[2] } });
    const ws = await WsClient.connect(`${b.ws}/ws`);
    try {
      await ws.subscribe({ id: 's1', channels: [ch], last_event_id: ids[1] });
      await sse.waitEvents(3);
      await ws.waitEvents(4);
      // Then live: one more, published on A.
      await publishOk(a, { id: `${ch}-live`, type: 'incident.updated', channels: [ch] });
      await sse.waitEvents(4);
      await ws.waitEvents(5);
      await sleep(200);
      assertExactly(sse.events(), [...ids.slice(3), `${ch}-live`], 'SSE resume on B');
      assertExactly(ws.events(), [...ids.slice(2), `${ch}-live`], '/ws resume on B');
      assert.equal(sse.messages.filter((m) => m.event === 'reset').length, 0);
    } finally {
      sse.close();
      ws.close();
    }
  });

  it('is idempotent across nodes: re-publishing an id on the other node returns the original seq', async () => {
    const ch = uniq('idem');
    const sse = await SseClient.connect(b.port, `/events?channels=${ch}`);
    try {
      const id = `${ch}-once`;
      const first = await publishOk(a, { id, type: 'sla.breach', channels: [ch], data: { n: 1 } });
      const again = await publishOk(b, { id, type: 'sla.breach', channels: [ch], data: { n: 2 } });
      const third = await publishOk(a, { id, type: 'sla.breach', channels: [ch] });
      assert.equal(again.seq, first.seq);
      assert.equal(third.seq, first.seq);
      await publishOk(b, { id: `${ch}-after`, type: 'sla.breach', channels: [ch] });
      await sse.waitEvents(2);
      await sleep(200);
      assertExactly(sse.events(), [id, `${ch}-after`], 'SSE on B');
      assert.deepEqual(sse.events()[0].data, { n: 1 }, 'the original event, not the repeat');
    } finally {
      sse.close();
    }
  });

  it('backfills history on a node started later', async () => {
    const ch = uniq('late');
    const ids = [];
    for (let i = 0; i < 12; i++) {
      ids.push(`${ch}-${i}`);
      await publishOk(i % 2 ? a : b, { id: ids[i], type: 'connector.sync', channels: [ch] });
    }
    const c = await startNode(redisPort);
    started.push(c);
    await waitFor(async () => (await readyStatus(c)) === 200, { timeout: 5000, message: 'node C ready' });
    const h = await getJson(c, `/api/history?channel=${ch}&limit=100`);
    const ha = await getJson(a, `/api/history?channel=${ch}&limit=100`);
    assert.deepEqual(h.events.map((e) => e.id), ids);
    assert.deepEqual(h.events.map((e) => e.seq), ha.events.map((e) => e.seq));
    // And C follows live events too, resuming from a backfilled id.
    const ws = await WsClient.connect(`${c.ws}/ws`);
    try {
      await ws.subscribe({ id: 's', channels: [ch], last_event_id: ids[10] });
      await publishOk(a, { id: `${ch}-new`, type: 'connector.sync', channels: [ch] });
      await ws.waitEvents(2);
      await sleep(150);
      assertExactly(ws.events(), [ids[11], `${ch}-new`], '/ws on C');
    } finally {
      ws.close();
    }
  });

  it('answers /readyz 503 while Redis is down and resumes publishing after it restarts', async () => {
    const ch = uniq('outage');
    const before = await publishOk(a, { type: 'system.notification', channels: [ch] });
    const ws = await WsClient.connect(`${b.ws}/ws?channels=${ch}`);
    try {
      await ws.waitType('subscribed');
      await redis.stop();
      redis = null;
      for (const n of [a, b])
        await waitFor(async () => (await readyStatus(n)) === 503, { timeout: 5000, message: `node ${n.port} not ready` });
      const r = await publish(a, { type: 'system.notification', channels: [ch] });
      assert.equal(r.status, 503, r.text);
      assert.equal(r.json.error.code, 'unavailable');
      assert.equal(r.headers['retry-after'], '1');

      redis = await startRedis(redisPort);
      for (const n of [a, b])
        await waitFor(async () => (await readyStatus(n)) === 200, { timeout: 8000, message: `node ${n.port} ready again` });
      // Redis came back empty: a new epoch, and seqs still move forward so live connections keep their order.
      const after = await publishOk(a, { id: `${ch}-back`, type: 'system.notification', channels: [ch] });
      assert.ok(after.seq > before.seq, `seq ${after.seq} after ${before.seq}`);
      const again = await publishOk(b, { id: `${ch}-back`, type: 'system.notification', channels: [ch] });
      assert.equal(again.seq, after.seq);
      await ws.waitEvents(1);
      await sleep(200);
      assertExactly(ws.events(), [`${ch}-back`], '/ws on B after the outage');
      const hb = await getJson(b, `/api/history?channel=${ch}`);
      assert.deepEqual(hb.events.map((e) => e.id), [`${ch}-back`]);
    } finally {
      ws.close();
    }
  });
});
