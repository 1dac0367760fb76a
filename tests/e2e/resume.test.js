'use strict';
// Resume: SSE (Last-Event-ID) and /ws (last_event_id) clients that disconnect and reconnect while 1,000 events
// are published lose nothing and see nothing twice; a resume point that is too old or unknown gives a reset.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { startServer } = require('./lib/server');
const { publishOk } = require('./lib/http');
const { WsClient } = require('./lib/ws');
const { SseClient } = require('./lib/sse');
const { uniq, sleep, waitFor, describeSeqProblem } = require('./lib/util');

const N = 1000;

/**
 * Publishes N events (ids `${ch}-${i}`) one request at a time, pacing ~1 ms, while the client is repeatedly cut
 * and resumed from the last event it completely received. Asserts the concatenated stream is exactly the
 * published sequence. connect(lastId) resolves an adapter {received(): [event], close()}.
 */
async function churn(srv, ch, connect) {
  const ids = Array.from({ length: N }, (_, i) => `${ch}-${i}`);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const received = [];
  let client = await connect(null);
  let published = 0;
  let done = false;
  const publisher = (async () => {
    try {
      for (let i = 0; i < N; i++) {
        await publishOk(srv, { id: ids[i], type: 'timeline.updated', channels: [ch], data: { i } }, { agent });
        published = i + 1;
        await sleep(1);
      }
    } finally {
      done = true;
      agent.destroy();
    }
  })();
  let reconnectsWhilePublishing = 0;
  try {
    for (let cycle = 0; cycle < 12 && !done; cycle++) {
      const have = client.received().length;
      await waitFor(() => done || client.received().length >= have + 40, { timeout: 10000, message: 'progress before a disconnect' });
      if (done)
        break;
      const got = client.received();
      client.close();
      received.push(...got);
      await sleep(25 + Math.floor(Math.random() * 40)); // events published meanwhile come back from history
      const last = received.length > 0 ? received[received.length - 1].id : null;
      assert.ok(last, 'some events arrived before the first disconnect');
      client = await connect(last);
      if (!done)
        reconnectsWhilePublishing += 1;
    }
    await publisher;
    await waitFor(() => received.length + client.received().length >= N, {
      timeout: 15000, message: `all ${N} events (have ${received.length} + ${client.received().length})`,
    });
    await sleep(200); // anything extra (a duplicate) would show up now
    received.push(...client.received());
  } finally {
    client.close();
    await publisher.catch(() => {});
  }
  assert.equal(published, N);
  assert.ok(reconnectsWhilePublishing >= 3, `only ${reconnectsWhilePublishing} reconnects happened while publishing`);
  const got = received.map((e) => e.id);
  const problem = describeSeqProblem(got, ids);
  assert.equal(problem, null, problem);
  for (let i = 1; i < received.length; i++)
    assert.ok(received[i].seq > received[i - 1].seq, `seq order at ${i}`);
}

describe('resume under load', { timeout: 120000 }, () => {
  let srv;
  before(async () => {
    srv = await startServer();
  });
  after(async () => {
    if (srv)
      await srv.stop();
  });

  it('SSE with Last-Event-ID: 1,000 events, repeated disconnects, no gap, no duplicate', { timeout: 60000 }, async () => {
    const ch = uniq('sse-resume');
    await churn(srv, ch, async (lastId) => {
      const c = await SseClient.connect(srv.port, `/events?channels=${ch}`, { headers: lastId ? { 'Last-Event-ID': lastId } : {} });
      assert.equal(c.status, 200);
      await waitFor(() => c.retry !== null, { message: 'SSE stream start' });
      return {
        received: () => {
          assert.ok(!c.messages.some((m) => m.event === 'reset'), `unexpected reset after ${lastId}`);
          return c.messages.map((m) => m.json);
        },
        close: () => c.close(),
      };
    });
  });

  it('/ws with last_event_id (query and subscribe message): 1,000 events, no gap, no duplicate', { timeout: 60000 }, async () => {
    const ch = uniq('ws-resume');
    let n = 0;
    await churn(srv, ch, async (lastId) => {
      n += 1;
      const viaQuery = n % 2 === 0;
      const q = viaQuery && lastId ? `&last_event_id=${encodeURIComponent(lastId)}` : '';
      const c = await WsClient.connect(`${srv.ws}/ws${viaQuery ? `?channels=${ch}${q}` : ''}`);
      if (viaQuery) {
        await c.waitType('subscribed');
      } else {
        const r = await c.subscribe({ id: 'r', channels: [ch], ...(lastId ? { last_event_id: lastId } : {}) });
        assert.equal(r.type, 'subscribed', JSON.stringify(r));
      }
      return {
        received: () => {
          assert.ok(!c.msgs.some((m) => m.type === 'reset'), `unexpected reset after ${lastId}`);
          return c.events();
        },
        close: () => c.terminate(),
      };
    });
  });
});

describe('reset on a resume point that is too old (--history-size 10)', { timeout: 60000 }, () => {
  let srv;
  let ch;
  before(async () => {
    srv = await startServer({ flags: { historySize: 10 } });
    ch = uniq('old');
    await publishOk(srv, { events: Array.from({ length: 30 }, (_, i) => ({ id: `${ch}-${i}`, type: 'timeline.updated', channels: [ch], data: { i } })) });
  });
  after(async () => {
    if (srv)
      await srv.stop();
  });

  it('history keeps only the newest 10', { timeout: 10000 }, async () => {
    const h = await (await fetch(`${srv.base}/api/history?channel=${ch}&limit=100`)).json();
    assert.deepEqual(h.events.map((e) => e.id), Array.from({ length: 10 }, (_, i) => `${ch}-${i + 20}`));
  });

  it('/ws query last_event_id evicted → reset (id "query"), then live events only', { timeout: 10000 }, async () => {
    const c = await WsClient.connect(`${srv.ws}/ws?channels=${ch}&last_event_id=${ch}-0`);
    try {
      const reset = await c.waitType('reset');
      assert.deepEqual(reset, { type: 'reset', id: 'query', reason: 'history_unavailable' });
      const live = await publishOk(srv, { type: 'timeline.updated', channels: [ch] });
      await c.waitFor((m) => m.type === 'event' && m.event.id === live.id);
      assert.deepEqual(c.events().map((e) => e.id), [live.id]);
      assert.ok(c.msgs.indexOf(reset) < c.msgs.findIndex((m) => m.type === 'event'), 'reset before live events');
    } finally {
      c.terminate();
    }
  });

  it('/ws subscribe with a garbage last_event_id → reset with the sub id', { timeout: 10000 }, async () => {
    const c = await WsClient.connect(`${srv.ws}/ws`);
    try {
      await c.waitType('welcome');
      c.send({ type: 'subscribe', id: 's9', channels: [ch], last_event_id: 'no-such-event-ever' });
      const reset = await c.waitType('reset');
      assert.deepEqual(reset, { type: 'reset', id: 's9', reason: 'history_unavailable' });
      await sleep(100);
      assert.deepEqual(c.events(), []);
    } finally {
      c.terminate();
    }
  });

  it('/ws resume from an id still in history replays exactly what followed it', { timeout: 10000 }, async () => {
    const after25 = (await (await fetch(`${srv.base}/api/history?channel=${ch}&since=${ch}-25`)).json()).events.map((e) => e.id);
    assert.deepEqual(after25.slice(0, 4), [26, 27, 28, 29].map((i) => `${ch}-${i}`));
    const c = await WsClient.connect(`${srv.ws}/ws?channels=${ch}&last_event_id=${ch}-25`);
    try {
      await c.waitEvents(after25.length);
      await sleep(100);
      assert.deepEqual(c.events().map((e) => e.id), after25);
      assert.ok(!c.msgs.some((m) => m.type === 'reset'));
    } finally {
      c.terminate();
    }
  });

  it('SSE Last-Event-ID evicted → event: reset {"reason":"history_unavailable"}, then live events', { timeout: 10000 }, async () => {
    const c = await SseClient.connect(srv.port, `/events?channels=${ch}`, { headers: { 'Last-Event-ID': `${ch}-3` } });
    try {
      assert.equal(c.status, 200);
      const reset = await c.waitFor((m) => m.event === 'reset');
      assert.deepEqual(reset.json, { reason: 'history_unavailable' });
      const live = await publishOk(srv, { type: 'timeline.updated', channels: [ch] });
      await c.waitFor((m) => m.id === live.id);
      assert.deepEqual(c.messages.map((m) => m.event), ['reset', 'timeline.updated']);
      assert.ok(c.raw.includes('event: reset\n'));
    } finally {
      c.close();
    }
  });

  it('SSE last_event_id garbage in the query → reset; a recent one replays', { timeout: 10000 }, async () => {
    // earlier tests may have published live events on ch: the replay is whatever history holds after ch-27
    const after27 = (await (await fetch(`${srv.base}/api/history?channel=${ch}&since=${ch}-27`)).json()).events.map((e) => e.id);
    assert.deepEqual(after27.slice(0, 2), [`${ch}-28`, `${ch}-29`]);
    const g = await SseClient.connect(srv.port, `/events?channels=${ch}&last_event_id=garbage`);
    const r = await SseClient.connect(srv.port, `/events?channels=${ch}&last_event_id=${ch}-27`);
    try {
      await g.waitFor((m) => m.event === 'reset');
      await r.waitEvents(after27.length);
      await sleep(100);
      assert.deepEqual(r.events().map((e) => e.id), after27);
      assert.ok(!r.messages.some((m) => m.event === 'reset'));
    } finally {
      g.close();
      r.close();
    }
  });
});
