'use strict';
// Who may read what, through the clients users have (DESIGN "Trust and authorization"): without --insecure every
// channel needs a grant on /ws, /events and the Centrifuge endpoints; a namespace may be anonymous, admin-only or
// without history. Every refusal carries its documented code, and a refused client reads nothing published after.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { execFileSync } = require('node:child_process');
const WebSocket = require('ws');
const { Centrifuge } = require('centrifuge');
const { startServer, BIN } = require('./lib/server');
const { publishOk } = require('./lib/http');
const { WsClient } = require('./lib/ws');
const { SseClient } = require('./lib/sse');
const { sleep, uniq, waitFor, withTimeout } = require('./lib/util');

const SECRET = 'e2e-secret-0123456789abcdef';
const NAMESPACES = [
  { pattern: 'public.>', anonymous: true },
  { pattern: 'ops.>', admin_only: true },
  { pattern: 'quiet.>', anonymous: true, history: false },
];
const cli = (...args) => execFileSync(BIN, ['token', '--secret', SECRET, ...args], { encoding: 'utf8' }).trim();
/** An HS256 JWT signed here, for claims the CLI does not make. */
function jwt(claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${head}.${crypto.createHmac('sha256', SECRET).update(head).digest('base64url')}`;
}
const ev = (channels) => ({ type: 'incident.created', channels, data: { severity: 'SEV-1' } });
/** Time given to a refused client to show an event it must not get. */
const QUIET_MS = 300;

describe('channel grants and namespaces (no --insecure)', { timeout: 90000 }, () => {
  let srv;
  let admin;
  let reader; // subscribe: incidents.*
  before(async () => {
    srv = await startServer({ secure: true, flags: { tokenSecret: SECRET, apiKeys: 'grants-key', namespaces: JSON.stringify(NAMESPACES) } });
    admin = cli('--sub', 'ops', '--admin');
    reader = jwt({ sub: 'alice', subscribe: ['incidents.*', 'ops.*'] });
  });
  after(async () => {
    if (srv)
      await srv.stop();
  });

  it('`realtime token` prints a three-part JWT', () => {
    assert.match(admin, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    const claims = JSON.parse(Buffer.from(admin.split('.')[1], 'base64url').toString());
    assert.equal(claims.sub, 'ops');
    assert.equal(claims.admin, true);
  });

  it('SSE: an anonymous client gets 403 permission_denied for any channel or pattern outside anonymous namespaces', async () => {
    for (const channels of ['incidents', 'incidents.*', '>', 'all', 'public.a,incidents', 'ops.x']) {
      const s = await SseClient.connect(srv.port, `/events?channels=${channels}`);
      assert.equal(s.status, 403, `${channels}: ${s.status} ${s.body}`);
      assert.equal(s.json.error.code, 'permission_denied', s.body);
    }
    // The refused request is over: nothing published afterwards reaches it; an anonymous namespace streams.
    const refused = await SseClient.connect(srv.port, '/events?channels=incidents');
    const open = await SseClient.connect(srv.port, '/events?channels=public.*');
    try {
      assert.equal(open.status, 200);
      await waitFor(() => open.retry !== null);
      const hidden = await publishOk(srv, ev(['incidents']));
      const shown = await publishOk(srv, ev(['public.status']));
      await open.waitFor((m) => m.id === shown.id);
      assert.equal(refused.status, 403);
      assert.ok(!refused.body.includes(hidden.id), refused.body);
      assert.deepEqual(open.events().map((e) => e.id), [shown.id]);
    } finally {
      open.close();
    }
  });

  it('/ws: a refused subscribe is permission_denied, the connection and its other subscriptions stay, and it reads nothing', async () => {
    const w = await WsClient.connect(`${srv.ws}/ws?channels=incidents`);
    try {
      const err = await w.waitType('error');
      assert.equal(err.id, 'query');
      assert.equal(err.error.code, 'permission_denied');
      assert.equal((await w.subscribe({ id: 'pub', channels: ['public.>'] })).type, 'subscribed');
      for (const [id, ch] of [['a', 'incidents.*'], ['b', '>'], ['c', 'all'], ['d', 'timeline.INC-1']]) {
        const r = await w.subscribe({ id, channels: [ch] });
        assert.equal(r.type, 'error', ch);
        assert.equal(r.error.code, 'permission_denied', ch);
      }
      const hidden = await publishOk(srv, ev(['incidents', 'timeline.INC-1']));
      const shown = await publishOk(srv, ev(['public.status']));
      await w.waitFor((m) => m.type === 'event' && m.event.id === shown.id);
      await sleep(QUIET_MS);
      assert.deepEqual(w.events().map((e) => e.id), [shown.id], `must not read ${hidden.id}`);
    } finally {
      w.terminate();
    }
  });

  it('a subscribe claim grants what it covers: incidents.* covers incidents.INC-1, not incidents.> or timeline', async () => {
    const w = await WsClient.connect(`${srv.ws}/ws?token=${reader}`);
    try {
      await w.waitType('welcome');
      assert.equal((await w.subscribe({ id: 'p', channels: ['incidents.*'] })).type, 'subscribed');
      assert.equal((await w.subscribe({ id: 'c', channels: ['incidents.INC-1'] })).type, 'subscribed');
      for (const [id, ch] of [['deep', 'incidents.>'], ['bare', 'incidents'], ['tl', 'timeline.INC-1'], ['all', 'all'], ['ops', 'ops.x']]) {
        const r = await w.subscribe({ id, channels: [ch] });
        assert.equal(r.type === 'error' && r.error.code, 'permission_denied', `${ch}: ${JSON.stringify(r)}`);
      }
      const hidden = await publishOk(srv, ev(['incidents', 'timeline.INC-1', 'ops.x']));
      const shown = await publishOk(srv, ev(['incidents.INC-1']));
      await w.waitFor((m) => m.type === 'event' && m.event.id === shown.id);
      await sleep(QUIET_MS);
      assert.deepEqual(w.events().map((e) => e.id), [shown.id], `must not read ${hidden.id}`);
    } finally {
      w.terminate();
    }
    // The same token as Authorization: Bearer on /events.
    const ok = await SseClient.connect(srv.port, '/events?channels=incidents.INC-2', { headers: { Authorization: `Bearer ${reader}` } });
    const no = await SseClient.connect(srv.port, '/events?channels=timeline.INC-2', { headers: { Authorization: `Bearer ${reader}` } });
    try {
      assert.equal(ok.status, 200);
      assert.equal(no.status, 403);
      assert.equal(no.json.error.code, 'permission_denied');
      await waitFor(() => ok.retry !== null);
      const r = await publishOk(srv, ev(['incidents.INC-2']));
      await ok.waitFor((m) => m.id === r.id);
    } finally {
      ok.close();
    }
  });

  it('`all`, `>` and admin-only namespaces need an admin token', async () => {
    const a = await WsClient.connect(`${srv.ws}/ws?token=${admin}`);
    try {
      await a.waitType('welcome');
      for (const [id, ch] of [['all', 'all'], ['gt', '>'], ['ops', 'ops.x']])
        assert.equal((await a.subscribe({ id, channels: [ch] })).type, 'subscribed', ch);
      const r = await publishOk(srv, ev(['ops.x']));
      await a.waitFor((m) => m.type === 'event' && m.event.id === r.id);
    } finally {
      a.terminate();
    }
    const sse = await SseClient.connect(srv.port, `/events?channels=all&token=${admin}`);
    try {
      assert.equal(sse.status, 200);
      await waitFor(() => sse.retry !== null);
      const r = await publishOk(srv, ev([uniq('any')]));
      await sse.waitFor((m) => m.id === r.id);
    } finally {
      sse.close();
    }
  });

  it('a token that does not verify is refused (401 unauthorized), not read as anonymous', async () => {
    const forged = `${reader.split('.').slice(0, 2).join('.')}.${Buffer.from('nope').toString('base64url')}`;
    for (const t of ['garbage', forged]) {
      const s = await SseClient.connect(srv.port, `/events?channels=public.a&token=${t}`);
      assert.equal(s.status, 401, `${t}: ${s.status} ${s.body}`);
      assert.equal(s.json.error.code, 'unauthorized');
      const w = await WsClient.connect(`${srv.ws}/ws?channels=public.a&token=${t}`);
      try {
        const e = await w.waitFor((m) => m.type === 'error');
        assert.equal(e.error.code, 'unauthorized', JSON.stringify(e));
        const r = await publishOk(srv, ev(['public.a']));
        await sleep(QUIET_MS);
        assert.ok(!w.events().some((x) => x.id === r.id), 'a refused token subscribes nothing');
      } finally {
        w.terminate();
      }
    }
  });

  it('a namespace without history says so: /ws and SSE resume get reset "history_disabled"', async () => {
    const first = await publishOk(srv, ev(['quiet.a']));
    const w = await WsClient.connect(`${srv.ws}/ws`);
    const s = await SseClient.connect(srv.port, '/events?channels=quiet.a', { headers: { 'Last-Event-ID': first.id } });
    try {
      await w.waitType('welcome');
      assert.equal((await w.subscribe({ id: 'q', channels: ['quiet.*'], last_event_id: first.id })).type, 'subscribed');
      const reset = await w.waitType('reset');
      assert.deepEqual(reset, { type: 'reset', id: 'q', reason: 'history_disabled' });
      const m = await s.waitFor((x) => x.event === 'reset');
      assert.deepEqual(m.json, { reason: 'history_disabled' });
      // live events still flow
      const next = await publishOk(srv, ev(['quiet.a']));
      await w.waitFor((x) => x.type === 'event' && x.event.id === next.id);
      await s.waitFor((x) => x.id === next.id);
    } finally {
      w.terminate();
      s.close();
    }
  });

  describe('Centrifuge (centrifuge-js)', () => {
    function client(opts = {}) {
      const c = new Centrifuge(`${srv.ws}/connection/websocket`, { websocket: WebSocket, timeout: 5000, ...opts });
      c.errors = [];
      c.on('error', (ctx) => c.errors.push(ctx));
      return c;
    }
    function sub(c, channel, opts = {}) {
      const s = c.newSubscription(channel, opts);
      s.pubs = [];
      s.unsub = [];
      s.on('publication', (ctx) => s.pubs.push(ctx.data));
      s.on('unsubscribed', (ctx) => s.unsub.push(ctx));
      s.subscribe();
      return s;
    }

    it('anonymous (an anonymous namespace exists): other channels are 103 and read nothing', async () => {
      const c = client();
      c.connect();
      await withTimeout(c.ready(), 5000, 'anonymous connect');
      try {
        const open = sub(c, 'public.room');
        const closed = sub(c, 'incidents');
        await withTimeout(open.ready(), 5000, 'subscribe public.room');
        await waitFor(() => closed.unsub.length === 1, { message: 'refusal of incidents' });
        assert.equal(closed.unsub[0].code, 103, JSON.stringify(closed.unsub[0]));
        const hidden = await publishOk(srv, ev(['incidents']));
        const shown = await publishOk(srv, ev(['public.room']));
        await waitFor(() => open.pubs.length === 1, { message: 'publication on public.room' });
        await sleep(QUIET_MS);
        assert.equal(open.pubs[0].id, shown.id);
        assert.equal(closed.pubs.length, 0, `must not read ${hidden.id}`);
      } finally {
        c.disconnect();
      }
    });

    it('a connection token grants by subscribe; a subscription token grants its one channel', async () => {
      const c = client({ token: reader });
      c.connect();
      await withTimeout(c.ready(), 5000, 'connect with token');
      try {
        const ok = sub(c, 'incidents.INC-7');
        const no = sub(c, 'timeline.INC-7');
        const byToken = sub(c, 'private.room', { getToken: async () => jwt({ sub: 'alice', channel: 'private.room' }) });
        await withTimeout(ok.ready(), 5000, 'subscribe incidents.INC-7');
        await withTimeout(byToken.ready(), 5000, 'subscribe private.room with a subscription token');
        await waitFor(() => no.unsub.length === 1, { message: 'refusal of timeline.INC-7' });
        assert.equal(no.unsub[0].code, 103);
        const r = await publishOk(srv, ev(['incidents.INC-7', 'timeline.INC-7', 'private.room']));
        await waitFor(() => ok.pubs.length === 1 && byToken.pubs.length === 1, { message: 'the granted publications' });
        await sleep(QUIET_MS);
        assert.equal(ok.pubs[0].id, r.id);
        assert.equal(no.pubs.length, 0);
      } finally {
        c.disconnect();
      }
    });

    it('a channel in a namespace without history is not recoverable', async () => {
      const c = client();
      c.connect();
      await withTimeout(c.ready(), 5000, 'anonymous connect');
      try {
        const s = c.newSubscription('quiet.room');
        const got = new Promise((resolve) => s.on('subscribed', resolve));
        s.subscribe();
        const ctx = await withTimeout(got, 5000, 'subscribe quiet.room');
        assert.equal(ctx.recoverable, false);
        assert.equal(ctx.positioned, false);
      } finally {
        c.disconnect();
      }
    });
  });
});
