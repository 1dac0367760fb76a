'use strict';
// Centrifuge work that crosses workers is delivered at once: with --workers 2, join and leave pushes and the
// server API's disconnect, subscribe and unsubscribe reach connections owned by the other worker within
// LIMIT_MS, not at that worker's next once-a-second tick.
//
// SO_REUSEPORT spreads connections over the two workers by a hash of their addresses, so every scenario uses
// enough connections that both workers surely own some (all N on one worker: 1 in 2^(N-1)), and repeats over
// ROUNDS rounds: mail left for a tick waited a uniform 0-1000 ms, so a round passed by chance 30% of the time.

const { test, describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { performance } = require('node:perf_hooks');
const WebSocket = require('ws');
const { Centrifuge } = require('centrifuge');
const { startServer } = require('./lib/server');
const { request } = require('./lib/http');
const { SseClient } = require('./lib/sse');
const { waitFor, withTimeout, uniq } = require('./lib/util');

const SECRET = 'e2e-centrifuge-workers-secret';
const LIMIT_MS = 300;
const ROUNDS = 4;
const MEMBERS = 12;

function jwt(claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${head}.${crypto.createHmac('sha256', SECRET).update(head).digest('base64url')}`;
}

/** A connected centrifuge-js client of user; records when it was disconnected and server-side (un)subscribed. */
async function connect(srv, user) {
  const c = new Centrifuge(`${srv.ws}/connection/websocket`, { websocket: WebSocket, timeout: 5000, token: jwt({ sub: user }) });
  c.log = { disconnected: [], subscribed: [], unsubscribed: [] };
  c.on('disconnected', (ctx) => c.log.disconnected.push({ ctx, at: performance.now() }));
  c.on('subscribed', (ctx) => c.log.subscribed.push({ ctx, at: performance.now() }));
  c.on('unsubscribed', (ctx) => c.log.unsubscribed.push({ ctx, at: performance.now() }));
  const connected = new Promise((resolve) => c.once('connected', resolve));
  c.connect();
  c.clientId = (await withTimeout(connected, 5000, `connect of ${user}`)).client;
  return c;
}

/** A subscription to channel with join/leave pushes, recording when each arrived. */
async function member(c, channel) {
  const s = c.newSubscription(channel, { joinLeave: true });
  s.log = { joins: [], leaves: [] };
  s.on('join', (ctx) => s.log.joins.push({ client: ctx.info.client, at: performance.now() }));
  s.on('leave', (ctx) => s.log.leaves.push({ client: ctx.info.client, at: performance.now() }));
  s.subscribe();
  await withTimeout(s.ready(), 5000, `subscribe ${channel}`);
  return s;
}

/**
 * Waits (generously, so a late delivery is measured rather than missed) until got(item) gives the arrival time
 * for every item, and asserts the latest came within LIMIT_MS of t0.
 */
async function assertPrompt(items, got, t0, what) {
  const times = await waitFor(() => {
    const t = items.map(got);
    return t.every((x) => x !== undefined) && t;
  }, { timeout: 3000, message: `${what} on all ${items.length} connections` });
  const worst = Math.max(...times.map((t) => t - t0));
  assert.ok(worst < LIMIT_MS, `${what}: the last of ${items.length} connections got it after ${worst.toFixed(0)} ms`);
}

async function apiOk(srv, method, body) {
  const r = await request(srv.port, { method: 'POST', path: `/api/${method}`, body, headers: { 'Content-Type': 'application/json', ...srv.apiHeaders } });
  assert.equal(r.status, 200, `${method}: ${r.status} ${r.text}`);
  assert.ok(r.json && r.json.result, `${method}: ${r.text}`);
  return r.json.result;
}

describe('Centrifuge mail across workers (--workers 2)', () => {
  let srv;
  const open = [];
  before(async () => {
    srv = await startServer({ workers: 2, flags: { tokenSecret: SECRET } });
  });
  after(async () => {
    for (const c of open)
      c.disconnect();
    await srv.stop();
  });

  test('join and leave pushes reach every member at once', async () => {
    const ch = uniq('jl');
    const members = [];
    for (let i = 0; i < MEMBERS; i++) {
      const c = await connect(srv, `member${i}`);
      open.push(c);
      members.push(await member(c, ch));
    }
    for (let round = 0; round < ROUNDS; round++) {
      const j = await connect(srv, `joiner${round}`);
      const js = j.newSubscription(ch);
      js.subscribe();
      await withTimeout(js.ready(), 5000, 'joiner subscribe');
      const joined = performance.now();
      await assertPrompt(members, (s) => s.log.joins.find((x) => x.client === j.clientId)?.at, joined, `join (round ${round})`);
      j.disconnect();
      const left = performance.now();
      await assertPrompt(members, (s) => s.log.leaves.find((x) => x.client === j.clientId)?.at, left, `leave (round ${round})`);
    }
  });

  test('server API disconnect reaches all of a user\'s connections at once (WebSocket and uni_sse)', async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const user = uniq('gone');
      const conns = [];
      for (let i = 0; i < 8; i++)
        conns.push(await connect(srv, user));
      const q = encodeURIComponent(JSON.stringify({ token: jwt({ sub: user }) }));
      const sses = [];
      for (let i = 0; i < 4; i++) {
        const s = await SseClient.connect(srv.port, `/connection/uni_sse?cf_connect=${q}`);
        await s.waitFor((m) => m.json && m.json.connect, { message: 'uni_sse connect push' });
        s.pushAt = []; // when each message arrived (this listener runs after the client's own parser)
        s.res.on('data', () => {
          while (s.pushAt.length < s.messages.length)
            s.pushAt.push(performance.now());
        });
        sses.push(s);
      }
      await apiOk(srv, 'disconnect', { user });
      const t0 = performance.now();
      await assertPrompt(conns, (c) => c.log.disconnected[0]?.at, t0, `WebSocket disconnect (round ${round})`);
      for (const c of conns)
        assert.equal(c.log.disconnected[0].ctx.code, 3503);
      await assertPrompt(sses, (s) => s.pushAt[s.messages.findIndex((m) => m.json && m.json.disconnect)], t0,
        `uni_sse disconnect push (round ${round})`);
      for (const s of sses)
        s.close();
    }
  });

  test('server API subscribe and unsubscribe reach all of a user\'s connections at once', async () => {
    const user = uniq('subbed');
    const conns = [];
    for (let i = 0; i < MEMBERS; i++) {
      const c = await connect(srv, user);
      open.push(c);
      conns.push(c);
    }
    for (let round = 0; round < ROUNDS; round++) {
      const ch = uniq('srv');
      await apiOk(srv, 'subscribe', { user, channel: ch });
      const t0 = performance.now();
      await assertPrompt(conns, (c) => c.log.subscribed.find((x) => x.ctx.channel === ch)?.at, t0, `subscribe (round ${round})`);
      await apiOk(srv, 'unsubscribe', { user, channel: ch });
      const t1 = performance.now();
      await assertPrompt(conns, (c) => c.log.unsubscribed.find((x) => x.ctx.channel === ch)?.at, t1, `unsubscribe (round ${round})`);
    }
  });
});
