'use strict';
// Server-Sent Events on /events: headers, retry, id/event/data lines, 400 without channels, heartbeat comments,
// at-most-once delivery, patterns, `all`, and the eventsource npm client (Last-Event-ID via custom fetch).

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { EventSource } = require('eventsource');
const { startServer } = require('./lib/server');
const { publishOk, rawExchange } = require('./lib/http');
const { SseClient } = require('./lib/sse');
const { uniq, sleep, waitFor } = require('./lib/util');

describe('/events (SSE)', { timeout: 90000 }, () => {
  let srv;
  const open = [];
  const connect = async (path, opts) => {
    const c = await SseClient.connect(srv.port, path, opts);
    open.push(c);
    return c;
  };
  before(async () => {
    srv = await startServer({ flags: { heartbeat: 1 } });
  });
  after(async () => {
    for (const c of open)
      c.close();
    if (srv)
      await srv.stop();
  });

  it('answers 200 text/event-stream, no-cache, X-Accel-Buffering: no, then retry: 3000', { timeout: 10000 }, async () => {
    const c = await connect(`/events?channels=${uniq('h')}`);
    assert.equal(c.status, 200);
    assert.match(c.headers['content-type'], /^text\/event-stream(;|$)/);
    assert.equal(c.headers['cache-control'], 'no-cache');
    assert.equal(c.headers['x-accel-buffering'], 'no');
    await waitFor(() => c.retry !== null, { message: 'retry: line' });
    assert.equal(c.retry, 3000);
    assert.ok(c.raw.startsWith('retry: 3000\n'), `stream starts with retry: ${JSON.stringify(c.raw.slice(0, 40))}`);
  });

  it('each event is id: <event id>, event: <type>, data: <event JSON>', { timeout: 10000 }, async () => {
    const ch = uniq('lines');
    const c = await connect(`/events?channels=${ch}`);
    await waitFor(() => c.retry !== null);
    const ev = { id: uniq('evt'), type: 'incident.created', timestamp: '2026-11-28T04:00:00.123Z', channels: [ch], data: { id: 'INC-9', severity: 'SEV-2' } };
    const r = await publishOk(srv, ev);
    const m = await c.waitFor((x) => x.id === ev.id);
    assert.equal(m.event, 'incident.created');
    assert.deepEqual(m.json, { ...ev, seq: r.seq });
    const block = `id: ${ev.id}\nevent: incident.created\ndata: ${m.data}\n\n`;
    assert.ok(c.raw.includes(block), `exact block in ${JSON.stringify(c.raw.slice(-300))}`);
    assert.ok(!m.data.includes('\n'), 'data is one line');
  });

  it('400 without channels (JSON error), and for a bad channel', { timeout: 10000 }, async () => {
    for (const p of ['/events', '/events?channels=', '/events?foo=bar']) {
      const c = await connect(p);
      assert.equal(c.status, 400, p);
      assert.equal(c.json.error.code, 'bad_request', `${p}: ${c.body}`);
    }
    const bad = await connect('/events?channels=ok,bad..name');
    assert.equal(bad.status, 400);
    assert.ok(['invalid_channel', 'bad_request'].includes(bad.json.error.code), bad.body);
  });

  it('sends ": ping" every heartbeat (--heartbeat 1)', { timeout: 10000 }, async () => {
    const c = await connect(`/events?channels=${uniq('hb')}`);
    const times = [];
    const t0 = Date.now();
    const line = c.line.bind(c);
    c.line = (l) => {
      if (l === ': ping')
        times.push(Date.now() - t0);
      line(l);
    };
    await sleep(3600);
    assert.ok(times.length >= 2 && times.length <= 5, `pings at ${JSON.stringify(times)} ms; raw ${JSON.stringify(c.raw)}`);
    assert.ok(times[0] <= 2300, `first ping after ${times[0]} ms`);
    for (let i = 1; i < times.length; i++) {
      const gap = times[i] - times[i - 1];
      assert.ok(gap >= 600 && gap <= 1600, `gap between pings ${gap} ms (${JSON.stringify(times)})`);
    }
    assert.ok(c.raw.includes('\n: ping\n'), 'a comment line of its own');
  });

  it('at most once per event, whatever the channels; patterns and filters in the query', { timeout: 10000 }, async () => {
    const root = uniq('s').replace(/-/g, '_');
    const c = await connect(`/events?channels=${root}.a,${root}.b,${root}.*,${root}.t.>`);
    await waitFor(() => c.retry !== null);
    const r1 = await publishOk(srv, { type: 'incident.created', channels: [`${root}.a`, `${root}.b`] });
    const r2 = await publishOk(srv, { type: 'incident.created', channels: [`${root}.c`] });
    const r3 = await publishOk(srv, { type: 'incident.created', channels: [`${root}.c.d`] }); // matches nothing
    const r4 = await publishOk(srv, { type: 'incident.created', channels: [`${root}.t.x.y`] });
    await c.waitFor((m) => m.id === r4.id);
    assert.deepEqual(c.events().map((e) => e.id), [r1.id, r2.id, r4.id]);
    assert.ok(!c.events().some((e) => e.id === r3.id));
  });

  it('`all` in insecure mode receives every event', { timeout: 10000 }, async () => {
    const c = await connect('/events?channels=all');
    assert.equal(c.status, 200);
    await waitFor(() => c.retry !== null);
    const r = await publishOk(srv, { type: 'connector.sync', channels: [uniq('anything'), uniq('else')] });
    await c.waitFor((m) => m.id === r.id);
    assert.equal(c.events().filter((e) => e.id === r.id).length, 1);
  });

  it('works with the eventsource package, resuming with a Last-Event-ID header', { timeout: 15000 }, async () => {
    const ch = uniq('es');
    const evs = Array.from({ length: 5 }, (_, i) => ({ id: `${ch}-${i}`, type: 'timeline.updated', channels: [ch], data: { i } }));
    await publishOk(srv, { events: evs });
    const got = [];
    const es = new EventSource(`${srv.base}/events?channels=${ch}`, {
      fetch: (url, init) => fetch(url, { ...init, headers: { ...init.headers, 'Last-Event-ID': `${ch}-1` } }),
    });
    try {
      es.addEventListener('timeline.updated', (e) => got.push({ id: e.lastEventId, data: JSON.parse(e.data) }));
      await waitFor(() => got.length >= 3, { message: '3 replayed events via eventsource' });
      assert.deepEqual(got.map((g) => g.id), [`${ch}-2`, `${ch}-3`, `${ch}-4`]);
      const r = await publishOk(srv, { id: `${ch}-5`, type: 'timeline.updated', channels: [ch], data: { i: 5 } });
      await waitFor(() => got.length >= 4);
      assert.equal(got[3].id, r.id);
      assert.equal(got[3].data.seq, r.seq);
    } finally {
      es.close();
    }
  });

  it('resumes from last_event_id in the query, and the header wins over nothing', { timeout: 10000 }, async () => {
    const ch = uniq('q');
    await publishOk(srv, { events: [0, 1, 2].map((i) => ({ id: `${ch}-${i}`, type: 'timeline.updated', channels: [ch] })) });
    const c = await connect(`/events?channels=${ch}&last_event_id=${ch}-0`);
    await c.waitEvents(2);
    assert.deepEqual(c.events().map((e) => e.id), [`${ch}-1`, `${ch}-2`]);
    assert.deepEqual(c.messages.map((m) => m.id), [`${ch}-1`, `${ch}-2`]);
  });

  it('closing the client removes the subscription (connections.sse drops)', { timeout: 10000 }, async () => {
    const base = (await (await fetch(`${srv.base}/api/stats`)).json()).connections.sse;
    const c = await connect(`/events?channels=${uniq('gone')}`);
    await waitFor(async () => (await (await fetch(`${srv.base}/api/stats`)).json()).connections.sse === base + 1, { message: 'sse +1' });
    c.close();
    await waitFor(async () => (await (await fetch(`${srv.base}/api/stats`)).json()).connections.sse === base, { message: 'sse back' });
  });

  it('a raw HTTP/1.1 request gets a stream head without Content-Length', { timeout: 10000 }, async () => {
    const ch = uniq('raw');
    const { data } = await rawExchange(srv.port, [`GET /events?channels=${ch} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n`], {
      timeout: 3000, until: (b) => b.includes('retry: 3000\n'),
    });
    const text = data.toString();
    assert.match(text, /^HTTP\/1\.1 200 /);
    assert.ok(!/content-length/i.test(text.split('\r\n\r\n')[0]), 'a stream has no Content-Length');
  });
});
