'use strict';
// Lingering close: a reply that ends the connection (413 with Connection: close, a WebSocket close frame 1009)
// reaches a client that is still sending, instead of being destroyed by the reset that closing a socket with
// unread input causes; the server reads and drops that input only up to lingering_bytes / lingering_timeout, or
// until the peer closes, and keeps serving everyone else meanwhile.

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { startServer } = require('./lib/server');
const { publishOk, request, getJson } = require('./lib/http');
const { WsClient, RawWs, encodeFrame } = require('./lib/ws');
const { sleep, uniq, waitFor, withTimeout } = require('./lib/util');

const MIB = 1024 * 1024;
const REPEAT = 20;

/**
 * POSTs a body of size bytes to /api/events with node's http client (which reads the response while it is still
 * writing the body). Resolves {status, json} once the response ended, or {error} when the connection failed
 * first; an error after the response is complete (the server cutting a client still sending) does not count.
 */
function postBig(port, body) {
  return request(port, { method: 'POST', path: '/api/events', body, headers: { 'Content-Type': 'application/json' } })
    .then((r) => ({ status: r.status, json: r.json !== undefined ? r.json : { unparsed: r.text } }),
      (e) => ({ error: e.code || e.message }));
}

/** Writes buf in chunks of size bytes, each after the previous one was taken; stops at the first write error. */
async function writeChunked(sock, buf, size) {
  for (let off = 0; off < buf.length && !sock.destroyed; off += size) {
    const ok = await new Promise((resolve) => sock.write(buf.subarray(off, off + size), (e) => resolve(!e)));
    if (!ok)
      return;
  }
}

/**
 * A client that sends a request head (an oversized POST, so the server answers 413 and closes) and then keeps
 * sending body bytes, chunk by chunk every pauseMs, until the server cuts the connection; it keeps its side open
 * when the server's FIN arrives. Resolves {reply, replyAt, closedAt, written, writtenAt(ms), error}: reply is the
 * text received, the times are Date.now() values, writtenAt(t) what the kernel had taken by then.
 */
function endlessSender(port, { chunk = 64 * 1024, pauseMs = 0, limitMs = 20000 } = {}) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    const log = [];
    const out = {
      reply: '', replyAt: null, closedAt: null, written: 0, error: null,
      writtenAt: (t) => log.reduce((n, [at, w]) => (at <= t ? w : n), 0),
    };
    const data = Buffer.alloc(chunk, 0x61);
    let stop = false;
    const timer = setTimeout(() => {
      stop = true;
      sock.destroy();
    }, limitMs);
    sock.on('data', (d) => {
      out.reply += d.toString('latin1');
      if (out.replyAt === null)
        out.replyAt = Date.now();
    });
    sock.on('error', (e) => { out.error = e.code || e.message; });
    sock.on('close', () => {
      stop = true;
      clearTimeout(timer);
      out.closedAt = Date.now();
      resolve(out);
    });
    sock.on('connect', async () => {
      sock.write('POST /api/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
        `Content-Length: ${100 * 1024 * MIB}\r\n\r\n`);
      while (!stop && !sock.destroyed) {
        const ok = await new Promise((r) => sock.write(data, (e) => r(!e)));
        if (!ok)
          break;
        out.written += data.length;
        log.push([Date.now(), out.written]);
        if (pauseMs > 0)
          await sleep(pauseMs);
      }
    });
  });
}

describe('lingering close', { timeout: 300000 }, () => {
  it(`POST of 2 MiB and 8 MiB bodies: the 413 and its JSON error always arrive (${REPEAT} times each)`, {
    timeout: 120000,
  }, async () => {
    const srv = await startServer();
    try {
      for (const size of [2 * MIB, 8 * MIB]) {
        const body = Buffer.alloc(size, 0x20); // whitespace: valid JSON padding, were it read
        const failures = [];
        for (let i = 0; i < REPEAT; i++) {
          const r = await postBig(srv.port, body);
          if (r.error || r.status !== 413 || !r.json.error || r.json.error.code !== 'payload_too_large')
            failures.push(`try ${i}: ${JSON.stringify(r)}`);
        }
        assert.deepEqual(failures, [], `${size} bytes: ${failures.length} of ${REPEAT} tries lost the 413`);
      }
      assert.equal((await request(srv.port, { path: '/healthz' })).status, 200);
    } finally {
      await srv.stop();
    }
  });

  it(`a 2 MiB WebSocket frame written in 64 KiB chunks: the close frame 1009 always arrives (${REPEAT} times)`, {
    timeout: 120000,
  }, async () => {
    const srv = await startServer();
    try {
      const frame = encodeFrame(0x1, Buffer.alloc(2 * MIB, 0x61));
      const failures = [];
      for (let i = 0; i < REPEAT; i++) {
        const c = await RawWs.connect(srv.port, '/ws');
        try {
          await writeChunked(c.sock, frame, 64 * 1024);
          const got = await c.waitCloseFrame(5000).catch((e) => ({ code: null, reason: e.message }));
          if (got.code !== 1009)
            failures.push(`try ${i}: ${JSON.stringify(got)} after ${c.frames.length} frames`);
        } finally {
          c.destroy();
        }
      }
      assert.deepEqual(failures, [], `${failures.length} of ${REPEAT} tries lost the close frame`);
    } finally {
      await srv.stop();
    }
  });

  it('the peer closing its side ends lingering at once', { timeout: 30000 }, async () => {
    const srv = await startServer({ workers: 1, flags: { lingeringTimeout: 20 } });
    try {
      const httpConns = async () => (await getJson(srv, '/api/stats')).connections.http;
      const base = await httpConns();
      const sock = net.connect({ host: '127.0.0.1', port: srv.port, allowHalfOpen: true });
      let reply = '';
      let ended = false;
      sock.on('data', (d) => { reply += d.toString('latin1'); });
      sock.on('end', () => { ended = true; });
      sock.on('error', () => {});
      // The 413 is decided from the head; the request after it is never answered: lingering input is dropped.
      sock.write(`POST /api/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${8 * MIB}\r\n\r\n`);
      await waitFor(() => ended, { timeout: 5000, message: 'the reply and the FIN behind it' });
      assert.match(reply, /^HTTP\/1\.1 413 /);
      assert.match(reply, /"payload_too_large"/);
      sock.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
      await sleep(300);
      assert.equal((reply.match(/HTTP\/1\.1 /g) || []).length, 1, `one reply only: ${reply}`);
      assert.equal(await httpConns(), base + 1, 'the connection lingers while the peer keeps its side open');
      const t0 = Date.now();
      sock.end();
      await waitFor(async () => (await httpConns()) === base, { timeout: 3000, message: 'the lingering connection to go' });
      assert.ok(Date.now() - t0 < 2000, `closed ${Date.now() - t0} ms after the peer's FIN`);
      sock.destroy();
    } finally {
      await srv.stop();
    }
  });

  it('a client that keeps sending is cut at lingering_timeout; the server serves others meanwhile', { timeout: 60000 }, async () => {
    const srv = await startServer({ flags: { lingeringTimeout: 1.5 } });
    const ch = uniq('linger');
    const ws = await WsClient.connect(`${srv.ws}/ws?channels=${ch}`);
    try {
      await ws.waitType('subscribed');
      // Slow senders: 4 KiB every 20 ms never reach lingering_bytes, so time ends them.
      const senders = Array.from({ length: 5 }, () => endlessSender(srv.port, { chunk: 4096, pauseMs: 20 }));
      for (let i = 0; i < 5; i++) {
        const t0 = Date.now();
        assert.equal((await request(srv.port, { path: '/healthz', timeout: 2000 })).status, 200);
        assert.ok(Date.now() - t0 < 1000, `/healthz took ${Date.now() - t0} ms while clients linger`);
        const { id } = await publishOk(srv, { type: 'system.notification', channels: [ch], data: { i } });
        await ws.waitFor((m) => m.type === 'event' && m.event.id === id, { timeout: 2000, message: `event ${i}` });
        await sleep(200);
      }
      for (const r of await withTimeout(Promise.all(senders), 15000, 'the senders to be cut')) {
        assert.match(r.reply, /^HTTP\/1\.1 413 /);
        const lingered = r.closedAt - r.replyAt;
        // The bound is checked on each read: closed after 1.5 s, not much later (a tick at worst), nor before.
        assert.ok(lingered >= 1200 && lingered < 4000, `cut ${lingered} ms after the reply (lingering_timeout 1.5 s)`);
      }
    } finally {
      ws.terminate();
      await srv.stop();
    }
  });

  it('past lingering_bytes nothing more is read, and lingering_timeout cuts the client', { timeout: 60000 }, async () => {
    const srv = await startServer({ flags: { lingeringTimeout: 3, lingeringBytes: '256K' } });
    try {
      const http1 = endlessSender(srv.port);
      // A WebSocket client that goes on sending after its close frame 1009.
      const wsCut = (async () => {
        const c = await RawWs.connect(srv.port, '/ws');
        const big = encodeFrame(0x1, Buffer.alloc(16 * MIB, 0x61));
        const t0 = Date.now();
        await writeChunked(c.sock, big, 64 * 1024);
        await withTimeout(c.ended, 10000, 'the WebSocket sender to be cut');
        return { code: c.closeCode, took: Date.now() - t0 };
      })();
      const r = await http1;
      assert.match(r.reply, /^HTTP\/1\.1 413 /);
      const lingered = r.closedAt - r.replyAt;
      assert.ok(lingered >= 2500 && lingered < 5500, `cut ${lingered} ms after the reply (lingering_timeout 3 s)`);
      // The kernel stops taking the client's bytes once the server stops reading: nothing more after the first
      // second, and what it took is the 256 KiB read plus socket buffers.
      const stalled = r.writtenAt(r.replyAt + 1000);
      assert.equal(r.written, stalled, `the client wrote ${stalled} bytes in the first second and ${r.written} in all`);
      assert.ok(r.written < 32 * MIB, `the client wrote ${r.written} bytes before the cut`);
      const w = await wsCut;
      assert.equal(w.code, 1009);
      assert.ok(w.took < 6000, `the WebSocket sender was cut after ${w.took} ms`);
      assert.equal((await request(srv.port, { path: '/healthz' })).status, 200);
    } finally {
      await srv.stop();
    }
  });

  it('graceful shutdown closes lingering connections at once', { timeout: 30000 }, async () => {
    const srv = await startServer({ flags: { lingeringTimeout: 60 } });
    const senders = Array.from({ length: 3 }, () => endlessSender(srv.port, { chunk: 1024, pauseMs: 50, limitMs: 30000 }));
    await sleep(500);
    const t0 = Date.now();
    await srv.stop({ timeout: 10000 });
    assert.ok(Date.now() - t0 < 3000, `shutdown took ${Date.now() - t0} ms with lingering connections`);
    for (const r of await withTimeout(Promise.all(senders), 5000, 'the senders to be closed'))
      assert.match(r.reply, /^HTTP\/1\.1 413 /);
  });
});
