'use strict';
// Centrifuge protocol v2 end to end, with the real centrifuge-js 5 client (unchanged, over the `ws` package):
// anonymous and token connects, token failures without a reconnect loop, per-channel publications from
// /api/events and /api/publish, history, presence, join/leave, recovery after a lost transport, an
// unrecoverable position, tags filters, the Centrifugo server API, uni_sse, app-level ping/pong, and hybrid mode
// (a native /ws client, an SSE client and a Centrifuge client all receiving one event).

const { test, describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { execFileSync } = require('node:child_process');
const WebSocket = require('ws');
const { Centrifuge } = require('centrifuge');
const { startServer, BIN } = require('./lib/server');
const { request, publishOk } = require('./lib/http');
const { WsClient } = require('./lib/ws');
const { SseClient } = require('./lib/sse');
const { sleep, waitFor, withTimeout, uniq } = require('./lib/util');

const SECRET = 'e2e-centrifuge-secret';

function cliToken(sub, extra = []) {
  return execFileSync(BIN, ['token', '--secret', SECRET, '--sub', sub, ...extra], { encoding: 'utf8' }).trim();
}

/** An HS256 JWT signed here, for claims the CLI does not make (expired, info, channel). */
function jwt(claims, secret = SECRET) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${head}.${crypto.createHmac('sha256', secret).update(head).digest('base64url')}`;
}

const now = () => Math.floor(Date.now() / 1000);

/** A centrifuge-js client; records its state changes, errors and per-channel publications. */
function client(srv, opts = {}) {
  const c = new Centrifuge(`${srv.ws}/connection/websocket`, { websocket: WebSocket, timeout: 5000, ...opts });
  c.log = { connecting: [], connected: [], disconnected: [], errors: [], pubs: {}, subscribed: [], publications: [] };
  c.on('connecting', (ctx) => c.log.connecting.push(ctx));
  c.on('connected', (ctx) => c.log.connected.push(ctx));
  c.on('disconnected', (ctx) => c.log.disconnected.push(ctx));
  c.on('error', (ctx) => c.log.errors.push(ctx));
  c.on('subscribed', (ctx) => c.log.subscribed.push(ctx));
  c.on('publication', (ctx) => c.log.publications.push(ctx));
  return c;
}

/** A subscription that records its publications, joins, leaves and state changes. */
function sub(c, channel, opts = {}) {
  const s = c.newSubscription(channel, opts);
  s.log = { pubs: [], joins: [], leaves: [], subscribed: [], unsubscribed: [], errors: [] };
  s.on('publication', (ctx) => s.log.pubs.push(ctx));
  s.on('join', (ctx) => s.log.joins.push(ctx));
  s.on('leave', (ctx) => s.log.leaves.push(ctx));
  s.on('subscribed', (ctx) => s.log.subscribed.push(ctx));
  s.on('unsubscribed', (ctx) => s.log.unsubscribed.push(ctx));
  s.on('error', (ctx) => s.log.errors.push(ctx));
  return s;
}

async function connected(c) {
  c.connect();
  await withTimeout(c.ready(), 5000, 'centrifuge connect');
}

async function subscribed(s) {
  s.subscribe();
  await withTimeout(s.ready(), 5000, `subscribe ${s.channel}`);
}

function api(srv, method, body, headers = {}) {
  return request(srv.port, { method: 'POST', path: `/api/${method}`, body, headers: { 'Content-Type': 'application/json', ...srv.apiHeaders, ...headers } });
}

async function apiOk(srv, method, body) {
  const r = await api(srv, method, body);
  assert.equal(r.status, 200, `${method}: ${r.status} ${r.text}`);
  assert.ok(r.json && r.json.result, `${method}: ${r.text}`);
  return r.json.result;
}

describe('centrifuge-js against /connection/websocket (anonymous, --insecure)', () => {
  let srv;
  before(async () => {
    srv = await startServer({ workers: 2 });
  });
  after(async () => {
    await srv.stop();
  });

  test('connects anonymously; one publication per subscribed channel with that channel\'s offset', async () => {
    const c = client(srv);
    await connected(c);
    assert.match(c.log.connected[0].client, /^[0-9a-f-]{36}$/);
    const inc = uniq('inc').replace(/-/g, '_');
    const a = sub(c, inc), b = sub(c, `${inc}.INC-123`);
    await subscribed(a);
    await subscribed(b);
    assert.equal(a.log.subscribed[0].recoverable, true);
    assert.equal(a.log.subscribed[0].positioned, true);

    const ev = await publishOk(srv, { type: 'incident.created', channels: [inc, `${inc}.INC-123`],
      data: { id: 'INC-123', severity: 'SEV-1', priority: 1, ack: false } });
    await waitFor(() => a.log.pubs.length === 1 && b.log.pubs.length === 1, { message: 'both publications' });
    for (const s of [a, b]) {
      const p = s.log.pubs[0];
      assert.equal(p.data.id, ev.id, 'data is the whole event');
      assert.equal(p.data.seq, ev.seq);
      assert.equal(p.data.type, 'incident.created');
      assert.deepEqual(p.tags, { type: 'incident.created', id: 'INC-123', severity: 'SEV-1', priority: '1', ack: 'false' });
      assert.equal(p.offset, 1);
    }

    // /api/publish keeps Centrifugo's behaviour: the data as given.
    const res = await apiOk(srv, 'publish', { channel: inc, data: { text: 'hello' } });
    assert.equal(res.offset, 2);
    assert.ok(res.epoch);
    await waitFor(() => a.log.pubs.length === 2, { message: 'the /api/publish publication' });
    assert.deepEqual(a.log.pubs[1].data, { text: 'hello' });
    assert.equal(a.log.pubs[1].offset, 2);
    assert.equal(b.log.pubs.length, 1, 'the other channel got nothing');
    c.disconnect();
  });

  test('history (oldest first, reverse, since) and the position', async () => {
    const ch = uniq('hist');
    for (let i = 1; i <= 5; i++)
      await apiOk(srv, 'publish', { channel: ch, data: { n: i } });
    const c = client(srv);
    await connected(c);
    const s = sub(c, ch);
    await subscribed(s);
    assert.equal(s.log.subscribed[0].streamPosition.offset, 5);
    const h = await s.history({ limit: 2 });
    assert.deepEqual(h.publications.map((p) => p.data.n), [1, 2]);
    assert.equal(h.offset, 5);
    const r = await s.history({ limit: 2, reverse: true });
    assert.deepEqual(r.publications.map((p) => p.data.n), [5, 4]);
    const since = await s.history({ limit: 10, since: { offset: 3, epoch: h.epoch } });
    assert.deepEqual(since.publications.map((p) => p.offset), [4, 5]);
    const pos = await s.history({});
    assert.equal(pos.publications.length, 0, 'no limit: position only');
    // Centrifugo-shaped POST /api/history says the same.
    const api1 = await apiOk(srv, 'history', { channel: ch, limit: -1 });
    assert.deepEqual(api1.publications.map((p) => p.data.n), [1, 2, 3, 4, 5]);
    assert.equal(api1.epoch, h.epoch);
    c.disconnect();
  });

  test('recovers 500 publications missed while the transport was down (recovered:true, no gap)', async () => {
    const ch = uniq('rec');
    const c = client(srv, { minReconnectDelay: 1500, maxReconnectDelay: 1500 });
    await connected(c);
    const s = sub(c, ch);
    await subscribed(s);
    await apiOk(srv, 'publish', { channel: ch, data: { n: 0 } });
    await waitFor(() => s.log.pubs.length === 1, { message: 'first publication' });

    c._transport._transport.terminate(); // kill the socket under the client
    await waitFor(() => c.state === 'connecting', { message: 'client reconnecting' });
    const events = [];
    for (let i = 1; i <= 500; i++)
      events.push({ type: 'timeline.updated', channels: [ch], data: { n: i } });
    await publishOk(srv, { events });

    await waitFor(() => s.log.subscribed.length === 2 && s.log.pubs.length >= 501, { timeout: 10000, message: '500 recovered publications' });
    const ctx = s.log.subscribed[1];
    assert.equal(ctx.wasRecovering, true);
    assert.equal(ctx.recovered, true);
    assert.deepEqual(s.log.pubs.map((p) => p.offset), Array.from({ length: 501 }, (_, i) => i + 1));
    assert.deepEqual(s.log.pubs.slice(1).map((p) => p.data.data.n), Array.from({ length: 500 }, (_, i) => i + 1));
    c.disconnect();
  });

  test('an unrecoverable position: wrong epoch or evicted offset → subscribed with recovered:false', async () => {
    const ch = uniq('unrec');
    await apiOk(srv, 'publish', { channel: ch, data: { n: 1 } });
    const c = client(srv);
    await connected(c);
    const s = sub(c, ch, { since: { offset: 0, epoch: 'not-the-epoch' } });
    await subscribed(s);
    assert.equal(s.log.subscribed[0].wasRecovering, true);
    assert.equal(s.log.subscribed[0].recovered, false);
    assert.equal(s.log.subscribed[0].streamPosition.offset, 1);
    const s2 = sub(c, `${ch}.x`, { since: { offset: 99, epoch: '' } });
    await subscribed(s2);
    assert.equal(s2.log.subscribed[0].recovered, false, 'offset beyond the top');
    c.disconnect();
  });

  test('tags filter (tf): only matching publications; a malformed filter is 107', async () => {
    const ch = uniq('tf');
    const c = client(srv);
    await connected(c);
    const s = sub(c, ch, { tagsFilter: { key: 'severity', cmp: 'in', vals: ['SEV-1', 'SEV-2'] } });
    await subscribed(s);
    for (const sev of ['SEV-3', 'SEV-1', 'SEV-4', 'SEV-2'])
      await publishOk(srv, { type: 'incident.updated', channels: [ch], data: { severity: sev } });
    await waitFor(() => s.log.pubs.length === 2, { message: 'two filtered publications' });
    await sleep(100);
    assert.deepEqual(s.log.pubs.map((p) => p.tags.severity), ['SEV-1', 'SEV-2']);
    const bad = sub(c, `${ch}.bad`, { tagsFilter: { key: 'severity', cmp: 'nope', val: 'x' } });
    bad.subscribe();
    await waitFor(() => bad.log.unsubscribed.length === 1, { message: 'unsubscribed on bad tf' });
    assert.equal(bad.log.unsubscribed[0].code, 107);
    c.disconnect();
  });

  test('client publish is refused (103), rpc is 104, the connection stays', async () => {
    const c = client(srv);
    await connected(c);
    const ch = uniq('pub');
    const s = sub(c, ch);
    await subscribed(s);
    await assert.rejects(s.publish({ x: 1 }), (e) => e.code === 103);
    await assert.rejects(c.rpc('echo', {}), (e) => e.code === 104);
    assert.equal(c.state, 'connected');
    c.disconnect();
  });

  test('hybrid: a native /ws client, an SSE client and centrifuge-js all get the same event', async () => {
    const ch = uniq('hybrid');
    const native = await WsClient.connect(`${srv.ws}/ws?channels=${ch}`);
    await native.waitType('subscribed');
    const sse = await SseClient.connect(srv.port, `/events?channels=${ch}`);
    const c = client(srv);
    await connected(c);
    const s = sub(c, ch);
    await subscribed(s);
    const ev = await publishOk(srv, { type: 'sla.breach', channels: [ch], data: { sla: 'p1' } });
    const [nev] = await native.waitEvents(1);
    await waitFor(() => sse.messages.length >= 1 && s.log.pubs.length === 1, { message: 'SSE and centrifuge delivery' });
    assert.equal(nev.id, ev.id);
    assert.equal(sse.messages[0].json.id, ev.id);
    assert.equal(s.log.pubs[0].data.id, ev.id);
    // And /api/publish reaches the native side as message.published with the data unchanged.
    await apiOk(srv, 'publish', { channel: ch, data: { text: 'raw' } });
    const evs = await native.waitEvents(2);
    assert.equal(evs[1].type, 'message.published');
    assert.deepEqual(evs[1].data, { text: 'raw' });
    await waitFor(() => s.log.pubs.length === 2, { message: 'raw publication' });
    assert.deepEqual(s.log.pubs[1].data, { text: 'raw' });
    native.close();
    sse.close?.();
    c.disconnect();
  });

  test('protocol errors: garbage and commands before connect close with 3501', async () => {
    const w = await WsClient.connect(`${srv.ws}/connection/websocket`);
    w.send('{"id":1,"subscribe":{"channel":"x"}}');
    assert.equal((await w.waitClose()).code, 3501);
    const w2 = await WsClient.connect(`${srv.ws}/connection/websocket`);
    w2.send('not json');
    assert.equal((await w2.waitClose()).code, 3501);
  });
});

describe('tokens, presence, join/leave and the server API', () => {
  let srv;
  before(async () => {
    srv = await startServer({ workers: 2, secure: true, flags: { tokenSecret: SECRET, apiKeys: 'cf-key' } });
  });
  after(async () => {
    await srv.stop();
  });

  test('anonymous connect is refused when no namespace is anonymous (101, no reconnect)', async () => {
    const c = client(srv);
    c.connect();
    await waitFor(() => c.log.disconnected.length === 1, { message: 'disconnected' });
    assert.equal(c.log.disconnected[0].code, 101);
    await sleep(1200);
    assert.equal(c.log.connecting.length, 1, 'no reconnect loop');
  });

  test('connects with a CLI token; an invalid token is 3500 and a terminal disconnect', async () => {
    const c = client(srv, { token: cliToken('u1') });
    await connected(c);
    c.disconnect();
    const bad = client(srv, { token: jwt({ sub: 'u1' }, 'wrong-secret') });
    bad.connect();
    await waitFor(() => bad.log.disconnected.length === 1, { message: 'disconnected' });
    assert.equal(bad.log.disconnected[0].code, 3500);
    await sleep(1200);
    assert.equal(bad.log.connecting.length, 1, 'no reconnect loop');
  });

  test('an expired token is error 109: the client fetches a new token and connects', async () => {
    let calls = 0;
    const c = client(srv, {
      token: jwt({ sub: 'u1', exp: now() - 10 }),
      getToken: async () => { calls += 1; return cliToken('u1'); },
    });
    c.connect();
    await withTimeout(c.ready(), 5000, 'connect after refresh');
    assert.equal(calls, 1);
    assert.equal(c.log.errors[0].error.code, 109);
    c.disconnect();
  });

  test('presence, presence_stats, join and leave', async () => {
    const ch = uniq('room');
    // Each token grants the room (claim subscribe): no namespace is anonymous here.
    const a = client(srv, { token: jwt({ sub: 'alice', info: { name: 'Alice' }, subscribe: [ch] }) });
    const b = client(srv, { token: jwt({ sub: 'bob', subscribe: [ch] }) });
    await connected(a);
    await connected(b);
    const sa = sub(a, ch, { joinLeave: true });
    await subscribed(sa);
    const sb = sub(b, ch);
    await subscribed(sb);
    await waitFor(() => sa.log.joins.some((j) => j.info.user === 'bob'), { message: 'join of bob' });
    const p = await sa.presence();
    const users = Object.values(p.clients).map((i) => i.user).sort();
    assert.deepEqual(users, ['alice', 'bob']);
    const alice = Object.values(p.clients).find((i) => i.user === 'alice');
    assert.deepEqual(alice.connInfo, { name: 'Alice' });
    assert.deepEqual(await sa.presenceStats(), { numClients: 2, numUsers: 2 });
    const ap = await apiOk(srv, 'presence_stats', { channel: ch });
    assert.deepEqual(ap, { num_clients: 2, num_users: 2 });
    const chans = await apiOk(srv, 'channels', { pattern: `${ch}*` });
    assert.deepEqual(chans.channels, { [ch]: { num_clients: 2 } });
    b.disconnect();
    await waitFor(() => sa.log.leaves.some((l) => l.info.user === 'bob'), { message: 'leave of bob' });
    assert.deepEqual(await sa.presenceStats(), { numClients: 1, numUsers: 1 });
    a.disconnect();
  });

  test('server API: subscribe, unsubscribe, disconnect reach the user\'s connections', async () => {
    const ch = uniq('srvsub');
    const c = client(srv, { token: cliToken('carol') });
    await connected(c);
    await apiOk(srv, 'subscribe', { user: 'carol', channel: ch });
    await waitFor(() => c.log.subscribed.some((s) => s.channel === ch), { message: 'server-side subscribed' });
    await apiOk(srv, 'publish', { channel: ch, data: { n: 1 } });
    await waitFor(() => c.log.publications.some((p) => p.channel === ch), { message: 'server-side publication' });
    const unsubscribed = [];
    c.on('unsubscribed', (ctx) => unsubscribed.push(ctx));
    await apiOk(srv, 'unsubscribe', { user: 'carol', channel: ch });
    await waitFor(() => unsubscribed.some((u) => u.channel === ch), { message: 'server-side unsubscribed' });
    await apiOk(srv, 'subscribe', { user: 'carol', channel: ch });
    await waitFor(() => c.log.subscribed.filter((x) => x.channel === ch).length === 2, { message: 'subscribed again' });
    const br = await apiOk(srv, 'broadcast', { channels: [ch, 'bad..name'], data: { n: 2 } });
    assert.equal(br.responses[0].result.offset, 2);
    assert.equal(br.responses[1].error.code, 102);
    await apiOk(srv, 'disconnect', { user: 'carol' });
    await waitFor(() => c.log.disconnected.length === 1, { message: 'forced disconnect' });
    assert.equal(c.log.disconnected[0].code, 3503);
  });

  test('API errors keep Centrifugo shapes; history_remove starts a new stream', async () => {
    const r = await api(srv, 'publish', { data: {} });
    assert.equal(r.status, 200);
    assert.equal(r.json.error.code, 107);
    const t = await api(srv, 'publish', { data: {} }, { 'X-Centrifugo-Error-Mode': 'transport' });
    assert.equal(t.status, 400);
    const nf = await api(srv, 'nope', {});
    assert.equal(nf.status, 404, 'unknown endpoint');
    const ch = uniq('rm');
    await apiOk(srv, 'publish', { channel: ch, data: 1 });
    const before1 = await apiOk(srv, 'history', { channel: ch, limit: 10 });
    assert.equal(before1.offset, 1);
    assert.deepEqual(await apiOk(srv, 'history_remove', { channel: ch }), {});
    const after1 = await apiOk(srv, 'history', { channel: ch, limit: 10 });
    assert.equal(after1.publications.length, 0);
    assert.notEqual(after1.epoch, before1.epoch);
    // An idempotency key: a retry gets the first publication's position; the key on another channel is 107 (it
    // was answered offset 0 there, for a publication that never reached it).
    const key = uniq('idem'), a = uniq('idem-a'), b = uniq('idem-b');
    const first = await apiOk(srv, 'publish', { channel: a, data: 1, idempotency_key: key });
    assert.deepEqual(await apiOk(srv, 'publish', { channel: a, data: 1, idempotency_key: key }), first);
    const other = await api(srv, 'publish', { channel: b, data: 2, idempotency_key: key });
    assert.equal(other.json.error.code, 107, other.text);
    const bc = await apiOk(srv, 'broadcast', { channels: [a, b], data: 3, idempotency_key: key });
    assert.deepEqual(bc.responses.map((x) => x.error && x.error.code), [107, 107]);
    // a batch without commands answers no replies (it was cut JSON: found by fuzz/centrifugo_api)
    for (const body of [{}, { commands: 5 }]) {
      const r = await api(srv, 'batch', body);
      assert.equal(r.status, 200);
      assert.deepEqual(r.json, { replies: [] }, r.text);
    }
  });

  test('uni_sse: token channels, connect push, publications, disconnect push', async () => {
    const ch = uniq('uni');
    const token = jwt({ sub: 'dave', channels: [ch] });
    const q = encodeURIComponent(JSON.stringify({ token }));
    const s = await SseClient.connect(srv.port, `/connection/uni_sse?cf_connect=${q}`);
    assert.equal(s.status, 200);
    assert.match(s.headers['content-type'], /^text\/event-stream/);
    await waitFor(() => s.messages.length >= 1, { message: 'connect push' });
    const connect = s.messages[0].json.connect;
    assert.ok(connect.client);
    assert.equal(connect.subs[ch].recoverable, true);
    await apiOk(srv, 'publish', { channel: ch, data: { hi: 1 } });
    await waitFor(() => s.messages.some((m) => m.json && m.json.pub), { message: 'pub' });
    const pub = s.messages.find((m) => m.json.pub).json;
    assert.equal(pub.channel, ch);
    assert.deepEqual(pub.pub.data, { hi: 1 });
    await apiOk(srv, 'disconnect', { user: 'dave', disconnect: { code: 4001, reason: 'bye' } });
    await waitFor(() => s.messages.some((m) => m.json && m.json.disconnect), { message: 'disconnect push' });
    assert.deepEqual(s.messages.at(-1).json.disconnect, { code: 4001, reason: 'bye' });
  });
});

describe('ping/pong and API keys', () => {
  let srv;
  before(async () => {
    // Anonymous clients may connect: one namespace is anonymous.
    srv = await startServer({ workers: 1, secure: true, flags: { centrifugePing: 1, centrifugePong: 1, apiKeys: 'k1',
      namespaces: JSON.stringify([{ pattern: 'public.>', anonymous: true }]) } });
  });

  test('the Centrifugo API needs the API key when keys are configured', async () => {
    assert.equal((await api(srv, 'publish', { channel: 'x', data: 1 }, { 'X-API-Key': '' })).status, 401);
    const ok = await api(srv, 'publish', { channel: 'x', data: 1 }, { Authorization: 'apikey k1' });
    assert.equal(ok.status, 200);
    assert.equal(ok.json.result.offset, 1);
  });
  after(async () => {
    await srv.stop();
  });

  test('a client that does not answer {} is closed with 3012; centrifuge-js answers and stays', async () => {
    const c = client(srv);
    await connected(c);
    const w = await WsClient.connect(`${srv.ws}/connection/websocket`);
    w.send({ id: 1, connect: {} });
    await w.waitFor((m) => m.id === 1 && m.connect);
    assert.equal(w.msgs[0].connect.ping, 1);
    assert.equal(w.msgs[0].connect.pong, true);
    const close = await w.waitClose(6000);
    assert.equal(close.code, 3012);
    assert.ok(w.msgs.some((m) => Object.keys(m).length === 0), 'got a {} ping');
    assert.equal(c.state, 'connected');
    assert.equal(c.log.connecting.length, 1);
    c.disconnect();
  });
});
