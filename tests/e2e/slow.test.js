'use strict';
// A slow reader (a raw TCP WebSocket client that never reads) with a small --client-queue-bytes is cut off and
// counted in /api/stats clients.slow_disconnects; a healthy client on the same channel gets everything; the
// server's RSS stays bounded while megabytes are published.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { startServer } = require('./lib/server');
const { publishOk, getJson } = require('./lib/http');
const { WsClient, RawWs } = require('./lib/ws');
const { SseClient } = require('./lib/sse');
const { uniq, sleep, waitFor } = require('./lib/util');

// Small publishes (4 × 8 kB, under the 64 kB queue) so that readers that do read keep up; bounded at 64 MB in all.
const BATCH = 4;
const DATA_BYTES = 8000;
const MAX_BATCHES = 2000;

describe('slow consumers', { timeout: 120000 }, () => {
  let srv;
  before(async () => {
    srv = await startServer({ flags: { clientQueueBytes: 65536, historySize: 100, maxBodyBytes: 4 << 20 } });
  });
  after(async () => {
    if (srv)
      await srv.stop();
  });

  for (const kind of ['ws', 'sse']) {
    it(`a ${kind} reader that never reads is disconnected and counted; RSS stays bounded`, { timeout: 90000 }, async () => {
      const ch = uniq(`slow-${kind}`);
      const before = await getJson(srv, '/api/stats');
      let slowEnded;
      let slow;
      if (kind === 'ws') {
        slow = await RawWs.connect(srv.port, `/ws?channels=${ch}`, { readable: false });
        slowEnded = () => slow.isEnded;
      } else {
        // a raw socket that sends the request and never reads the response
        const net = require('node:net');
        slow = net.connect({ host: '127.0.0.1', port: srv.port });
        slow.on('error', () => {});
        let ended = false;
        slow.on('close', () => { ended = true; });
        await new Promise((r) => slow.on('connect', r));
        slow.write(`GET /events?channels=${ch} HTTP/1.1\r\nHost: x\r\n\r\n`);
        slow.pause();
        slowEnded = () => ended;
      }
      const healthy = await WsClient.connect(`${srv.ws}/ws?channels=${ch}`).catch(() => null);
      const healthySse = await SseClient.connect(srv.port, `/events?channels=${ch}`);
      if (healthy)
        await healthy.waitType('subscribed');
      await waitFor(async () => (await getJson(srv, '/api/stats')).connections[kind] >= before.connections[kind] + 1, { message: `the slow ${kind} client is connected` });
      const rss0 = srv.rss();
      let rssMax = rss0;
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const pad = 'p'.repeat(DATA_BYTES);
      let published = 0;
      let stats;
      try {
        for (let b = 0; b < MAX_BATCHES; b++) {
          const events = Array.from({ length: BATCH }, (_, i) => ({ type: 'timeline.updated', channels: [ch], data: { n: published + i, pad } }));
          await publishOk(srv, { events }, { agent });
          published += BATCH;
          rssMax = Math.max(rssMax, srv.rss());
          stats = await getJson(srv, '/api/stats');
          if (stats.clients.slow_disconnects > before.clients.slow_disconnects)
            break;
          // let the healthy readers keep up so that only the slow one falls behind
          await waitFor(() => healthySse.events().length >= published && (!healthy || healthy.events().length >= published),
            { timeout: 10000, interval: 1, message: 'the healthy readers keep up' });
        }
      } finally {
        agent.destroy();
      }
      try {
        assert.equal(stats.clients.slow_disconnects, before.clients.slow_disconnects + 1,
          `slow_disconnects after ${published} events of ${DATA_BYTES} B: ${JSON.stringify(stats.clients)}`);
        await waitFor(async () => (await getJson(srv, '/api/stats')).connections[kind] === before.connections[kind] + (kind === 'sse' ? 1 : (healthy ? 1 : 0)),
          { message: `the slow ${kind} client's connection is gone from stats` });
        // the kernel has buffered what was sent; once we drain it, the socket must be closed by the server
        if (kind === 'ws') {
          slow.sock.on('data', (d) => slow.onData(d));
          slow.sock.resume();
          await waitFor(() => slowEnded(), { timeout: 10000, message: 'the server closed the slow ws connection' });
          if (slow.closeCode !== null)
            assert.equal(slow.closeCode, 1008, `close ${slow.closeCode} ${slow.closeReason}`);
        } else {
          slow.on('data', () => {});
          slow.resume();
          await waitFor(() => slowEnded(), { timeout: 10000, message: 'the server closed the slow SSE connection' });
        }
        const growthKb = rssMax - rss0;
        assert.ok(growthKb < 64 * 1024, `RSS grew ${growthKb} kB (from ${rss0} kB) while ${published} events (${(published * DATA_BYTES / 1e6).toFixed(0)} MB) went out`);
        // the healthy readers got every event, in order
        const all = await healthySse.waitEvents(published, { timeout: 20000 });
        assert.deepEqual(all.map((e) => e.data.n), Array.from({ length: published }, (_, i) => i));
        if (healthy) {
          const got = await healthy.waitEvents(published, { timeout: 20000 });
          assert.equal(got.length, published);
          assert.equal(healthy.closeInfo, null);
        }
        assert.ok(healthy, '/ws is available for the healthy reader');
      } finally {
        if (kind === 'ws')
          slow.destroy();
        else
          slow.destroy();
        healthySse.close();
        if (healthy)
          healthy.terminate();
        await sleep(50);
      }
    });
  }
});
