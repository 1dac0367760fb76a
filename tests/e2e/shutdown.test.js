'use strict';
// Graceful shutdown: SIGTERM while events stream exits 0, tells /ws clients (close 1001) and ends SSE streams;
// clients received a gap-free prefix of what was published. SIGINT on an idle server exits 0 as well.

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { startServer } = require('./lib/server');
const { publishOk } = require('./lib/http');
const { WsClient } = require('./lib/ws');
const { SseClient } = require('./lib/sse');
const { uniq, sleep, waitFor } = require('./lib/util');

describe('shutdown', { timeout: 60000 }, () => {
  it('SIGTERM mid-stream: exit 0, /ws clients get close 1001, SSE streams end', { timeout: 30000 }, async () => {
    const srv = await startServer();
    const ch = uniq('bye');
    const ws = await WsClient.connect(`${srv.ws}/ws?channels=${ch}`);
    const idle = await WsClient.connect(`${srv.ws}/ws`);
    const sse = await SseClient.connect(srv.port, `/events?channels=${ch}`);
    try {
      await ws.waitType('subscribed');
      await idle.waitType('welcome');
      await waitFor(() => sse.retry !== null);
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      let stop = false;
      let published = 0;
      const publisher = (async () => {
        for (let i = 0; i < 100000 && !stop; i++) {
          try {
            await publishOk(srv, { id: `${ch}-${i}`, type: 'timeline.updated', channels: [ch], data: { i } }, { agent });
            published = i + 1;
          } catch {
            break; // the server is going away
          }
          await sleep(1);
        }
      })();
      await ws.waitEvents(50, { timeout: 10000 });
      await sse.waitEvents(50, { timeout: 10000 });
      const t0 = Date.now();
      await srv.stop({ timeout: 12000 }); // asserts exit code 0
      const took = Date.now() - t0;
      stop = true;
      await publisher;
      agent.destroy();
      assert.ok(took < 5000, `shutdown took ${took} ms with 3 clients connected`);
      const wsClose = await ws.waitClose(3000);
      assert.equal(wsClose.code, 1001, `close code ${JSON.stringify(wsClose)}`);
      assert.equal((await idle.waitClose(3000)).code, 1001);
      await sse.waitEnd(3000);
      for (const [name, got] of [['ws', ws.events()], ['sse', sse.events()]]) {
        const ids = got.map((e) => e.id);
        assert.deepEqual(ids, Array.from({ length: ids.length }, (_, i) => `${ch}-${i}`), `${name} got a gap-free prefix`);
        assert.ok(ids.length <= published + 1);
      }
    } finally {
      ws.terminate();
      idle.terminate();
      sse.close();
      await srv.stop({ expectCode: null }).catch(() => {});
    }
  });

  it('SIGINT on an idle server exits 0', { timeout: 20000 }, async () => {
    const srv = await startServer();
    await sleep(300); // the start-up race is the next test's subject
    await srv.stop({ signal: 'SIGINT' });
  });

  it('a signal as soon as /healthz answers still shuts down gracefully (exit 0)', {
    timeout: 60000,
  }, async () => {
    const results = [];
    for (let i = 0; i < 12; i++) {
      const srv = await startServer({ workers: 1 });
      results.push(await srv.stop({ signal: i % 2 ? 'SIGTERM' : 'SIGINT', expectCode: null }));
    }
    assert.deepEqual(results.filter((r) => r.code !== 0), [], 'every run exited 0');
  });

  it('SIGTERM with a half-sent request and a keep-alive connection still exits 0 promptly', { timeout: 20000 }, async () => {
    const net = require('node:net');
    const srv = await startServer();
    const a = net.connect({ host: '127.0.0.1', port: srv.port });
    const b = net.connect({ host: '127.0.0.1', port: srv.port });
    a.on('error', () => {});
    b.on('error', () => {});
    try {
      await Promise.all([new Promise((r) => a.on('connect', r)), new Promise((r) => b.on('connect', r))]);
      a.write('GET /healthz HTTP/1.1\r\nHost: x\r\n'); // never finished
      b.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'); // answered, then idle keep-alive
      await sleep(100);
      const t0 = Date.now();
      await srv.stop({ timeout: 12000 });
      assert.ok(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms`);
    } finally {
      a.destroy();
      b.destroy();
    }
  });
});

describe('port ownership', { timeout: 30000 }, () => {
  it('a second server on a port already served exits 1 instead of sharing it (SO_REUSEPORT)', { timeout: 20000 }, async () => {
    const { spawnSync } = require('node:child_process');
    const { BIN } = require('./lib/server');
    const srv = await startServer();
    try {
      const r = spawnSync(BIN, ['serve', '--listen', `127.0.0.1:${srv.port}`, '--workers', '1'], { timeout: 10000, encoding: 'utf8' });
      assert.equal(r.status, 1);
      assert.match(r.stderr, /Address already in use/);
      const res = await fetch(`http://127.0.0.1:${srv.port}/healthz`);
      assert.equal(res.status, 200);
    } finally {
      await srv.stop();
    }
  });
});
