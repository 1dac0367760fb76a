'use strict';
// Cluster-wide presence and server API control with the redis broker: one redis-server and three realtime nodes on
// loopback, centrifuge-js 5 clients spread over them in one channel. Presence and presence_stats from any node (client
// protocol and server API) list every node's clients; join/leave pushes cross nodes; /api/disconnect, /api/subscribe
// and /api/unsubscribe sent to one node act on a user's client on another; /api/stats has a "cluster" section; a node
// stopped with SIGTERM leaves presence at once, one killed with SIGKILL within the heartbeat expiry; after Redis
// restarts empty, the nodes write their entries again.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const WebSocket = require('ws');
const { Centrifuge } = require('centrifuge');
const { startServer, pickPort } = require('./lib/server');
const { request, getJson } = require('./lib/http');
const { startRedis } = require('./lib/redis');
const { waitFor, withTimeout, uniq } = require('./lib/util');

const SECRET = 'e2e-cluster-secret';
const EXPIRY_MS = 6000; // RT__REDIS_PRESENCE_EXPIRY_MS: three 2 s heartbeats

function jwt(claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${head}.${crypto.createHmac('sha256', SECRET).update(head).digest('base64url')}`;
}

const clients = new Set();

/** A connected centrifuge-js client of user on srv that records its state changes and server-side subscriptions. */
async function connect(srv, user, info) {
  const c = new Centrifuge(`${srv.ws}/connection/websocket`, { websocket: WebSocket, timeout: 5000, token: jwt({ sub: user, ...(info ? { info } : {}) }) });
  c.log = { disconnected: [], subscribed: [], unsubscribed: [], publications: [] };
  c.on('connected', (ctx) => { c.clientId = ctx.client; });
  c.on('disconnected', (ctx) => c.log.disconnected.push(ctx));
  c.on('subscribed', (ctx) => c.log.subscribed.push(ctx));
  c.on('unsubscribed', (ctx) => c.log.unsubscribed.push(ctx));
  c.on('publication', (ctx) => c.log.publications.push(ctx));
  clients.add(c);
  c.connect();
  await withTimeout(c.ready(), 5000, `connect ${user} to ${srv.port}`);
  return c;
}

/** A subscribed subscription that records joins and leaves. */
async function subscribe(c, channel, opts = {}) {
  const s = c.newSubscription(channel, opts);
  s.log = { joins: [], leaves: [] };
  s.on('join', (ctx) => s.log.joins.push(ctx));
  s.on('leave', (ctx) => s.log.leaves.push(ctx));
  s.subscribe();
  await withTimeout(s.ready(), 5000, `subscribe ${channel}`);
  return s;
}

async function apiOk(srv, method, body) {
  const r = await request(srv.port, { method: 'POST', path: `/api/${method}`, body, headers: { 'Content-Type': 'application/json' } });
  assert.equal(r.status, 200, `${method}: ${r.status} ${r.text}`);
  assert.ok(r.json && r.json.result, `${method}: ${r.text}`);
  return r.json.result;
}

const usersOf = (presence) => Object.values(presence).map((i) => i.user).sort();

describe('cluster presence and control (redis broker, three nodes)', { timeout: 60000 }, () => {
  let redis;
  const nodes = [];

  before(async () => {
    redis = await startRedis(await pickPort());
    const flags = { broker: 'redis', redisUrl: `redis://127.0.0.1:${redis.port}`, tokenSecret: SECRET };
    for (let i = 0; i < 3; i++)
      nodes.push(await startServer({ workers: 2, flags }));
    for (const n of nodes)
      await waitFor(async () => (await request(n.port, { path: '/readyz', timeout: 2000 })).status === 200, { message: `node ${n.port} ready` });
    // Every node has beaten its heartbeat once: the cluster is complete.
    await waitFor(async () => (await getJson(nodes[0], '/api/stats')).cluster?.nodes_alive === 3, { message: '3 nodes alive' });
  });

  after(async () => {
    for (const c of clients)
      c.disconnect();
    for (const n of nodes)
      await n.stop({ expectCode: n.exit ? null : 0 });
    if (redis)
      await redis.stop();
  });

  it('presence and presence_stats from any node list the clients of every node; join/leave pushes cross nodes', async () => {
    const [a, b, c] = nodes;
    const ch = uniq('room');
    const alice = await connect(a, 'alice', { name: 'Alice' });
    const bob = await connect(b, 'bob');
    const carol = await connect(c, 'carol');
    const sa = await subscribe(alice, ch, { joinLeave: true });
    await subscribe(bob, ch);
    const sc = await subscribe(carol, ch, { joinLeave: true });
    await waitFor(() => ['bob', 'carol'].every((u) => sa.log.joins.some((j) => j.info.user === u)), { message: 'joins on A from B and C' });
    for (const n of nodes) {
      const p = await apiOk(n, 'presence', { channel: ch });
      assert.deepEqual(usersOf(p.presence), ['alice', 'bob', 'carol'], `/api/presence on ${n.port}`);
      const aliceInfo = Object.values(p.presence).find((i) => i.user === 'alice');
      assert.deepEqual(aliceInfo.conn_info, { name: 'Alice' });
      assert.equal(p.presence[aliceInfo.client].client, aliceInfo.client);
      assert.deepEqual(await apiOk(n, 'presence_stats', { channel: ch }), { num_clients: 3, num_users: 3 });
    }
    // The client protocol answers from Redis too, on each node.
    const pc = await sc.presence();
    assert.deepEqual(Object.values(pc.clients).map((i) => i.user).sort(), ['alice', 'bob', 'carol']);
    assert.deepEqual(await sa.presenceStats(), { numClients: 3, numUsers: 3 });
    // A second client of bob on C: one more client, no more users.
    const bob2 = await connect(c, 'bob');
    await subscribe(bob2, ch);
    await waitFor(() => sa.log.joins.filter((j) => j.info.user === 'bob').length === 2, { message: 'second join of bob on A' });
    assert.deepEqual(await apiOk(a, 'presence_stats', { channel: ch }), { num_clients: 4, num_users: 3 });
    // Leaves cross nodes as well.
    bob.disconnect();
    await waitFor(() => sa.log.leaves.some((l) => l.info.user === 'bob') && sc.log.leaves.some((l) => l.info.user === 'bob'),
      { message: 'leave of bob (B) on A and C' });
    assert.deepEqual(await sc.presenceStats(), { numClients: 3, numUsers: 3 });
    bob2.disconnect();
    await waitFor(async () => (await sa.presenceStats()).numClients === 2, { message: 'bob gone from presence' });
    alice.disconnect();
    carol.disconnect();
    await waitFor(async () => (await apiOk(b, 'presence_stats', { channel: ch })).num_clients === 0, { message: 'empty channel' });
  });

  it('/api/disconnect on node A disconnects the user\'s clients on B and C, sparing the whitelist', async () => {
    const [a, b, c] = nodes;
    const d1 = await connect(b, 'dave');
    const d2 = await connect(c, 'dave');
    const d3 = await connect(c, 'dave');
    const other = await connect(b, 'erin');
    // whitelist: a client id, as the connect result gives it.
    await apiOk(a, 'disconnect', { user: 'dave', whitelist: [d3.clientId], disconnect: { code: 4501, reason: 'bye' } });
    await waitFor(() => d1.log.disconnected.length === 1 && d2.log.disconnected.length === 1, { message: 'dave disconnected on B and C' });
    assert.equal(d1.log.disconnected[0].code, 4501);
    assert.equal(d2.log.disconnected[0].reason, 'bye');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(d3.state, 'connected', 'the whitelisted client stays');
    assert.equal(other.state, 'connected', 'other users stay');
    // The default: 3503 force disconnect (terminal).
    await apiOk(b, 'disconnect', { user: 'dave' });
    await waitFor(() => d3.log.disconnected.length === 1, { message: 'the whitelisted client, now' });
    assert.equal(d3.log.disconnected[0].code, 3503);
    other.disconnect();
  });

  it('/api/subscribe and /api/unsubscribe on one node act on the user\'s client on another', async () => {
    const [a, b, c] = nodes;
    const ch = uniq('srvsub');
    const f = await connect(b, 'frank');
    await apiOk(a, 'subscribe', { user: 'frank', channel: ch });
    await waitFor(() => f.log.subscribed.some((s) => s.channel === ch), { message: 'server-side subscribe from A on B' });
    await apiOk(c, 'publish', { channel: ch, data: { n: 1 } });
    await waitFor(() => f.log.publications.some((p) => p.channel === ch && p.data.n === 1), { message: 'publication through C' });
    // Server-side subscriptions count in presence too, from any node.
    await waitFor(async () => (await apiOk(c, 'presence_stats', { channel: ch })).num_clients === 1, { message: 'frank present' });
    await apiOk(c, 'unsubscribe', { user: 'frank', channel: ch });
    await waitFor(() => f.log.unsubscribed.some((u) => u.channel === ch), { message: 'server-side unsubscribe from C on B' });
    await waitFor(async () => (await apiOk(a, 'presence_stats', { channel: ch })).num_clients === 0, { message: 'frank gone' });
    f.disconnect();
  });

  it('/api/stats has a cluster section: the live nodes and their client counts', async () => {
    const [a, b] = nodes;
    const g = await connect(b, 'gina');
    await waitFor(async () => {
      const st = await getJson(a, '/api/stats');
      return st.cluster.nodes_alive === 3 && st.cluster.nodes.find((n) => n.name.endsWith(`:${b.port}`))?.centrifuge_clients === 1;
    }, { timeout: 5000, message: 'gina counted on B in A\'s cluster view' });
    const st = await getJson(a, '/api/stats');
    assert.equal(st.cluster.nodes.length, 3);
    assert.ok(st.cluster.clients >= 1);
    assert.equal(st.cluster.expiry_ms, EXPIRY_MS);
    assert.ok(st.cluster.nodes.some((n) => n.id === st.cluster.node), 'this node is listed');
    g.disconnect();
  });

  it('a node stopped with SIGTERM removes its clients from presence at once, not at expiry', async () => {
    const [a] = nodes;
    const ch = uniq('term');
    const d = await startServer({ workers: 1, flags: { broker: 'redis', redisUrl: `redis://127.0.0.1:${redis.port}`, tokenSecret: SECRET } });
    nodes.push(d);
    await waitFor(async () => (await request(d.port, { path: '/readyz', timeout: 2000 })).status === 200, { message: 'node D ready' });
    const k = await connect(d, 'kate');
    await subscribe(k, ch);
    await waitFor(async () => (await apiOk(a, 'presence_stats', { channel: ch })).num_clients === 1, { message: 'kate present' });
    await d.stop();
    k.disconnect();
    const stopped = Date.now();
    await waitFor(async () => (await apiOk(a, 'presence_stats', { channel: ch })).num_clients === 0,
      { timeout: 2000, interval: 50, message: 'kate gone at once' });
    assert.ok(Date.now() - stopped < EXPIRY_MS / 2);
  });

  it('a node killed with SIGKILL leaves presence and the cluster within the expiry', async () => {
    const [a, b, c] = nodes;
    const ch = uniq('kill');
    const h1 = await connect(a, 'hank');
    const h2 = await connect(c, 'ivy');
    await subscribe(h1, ch);
    await subscribe(h2, ch);
    await waitFor(async () => (await apiOk(b, 'presence_stats', { channel: ch })).num_clients === 2, { message: 'both present' });
    c.proc.kill('SIGKILL');
    await withTimeout(c.exited, 5000, 'node C to die');
    h2.disconnect(); // stop its reconnect loop
    const killed = Date.now();
    await waitFor(async () => (await apiOk(b, 'presence_stats', { channel: ch })).num_clients === 1,
      { timeout: EXPIRY_MS + 4000, interval: 200, message: 'ivy gone from presence' });
    const took = Date.now() - killed;
    assert.ok(took <= EXPIRY_MS + 2500, `gone after ${took} ms`);
    const p = await apiOk(a, 'presence', { channel: ch });
    assert.deepEqual(usersOf(p.presence), ['hank']);
    await waitFor(async () => (await getJson(a, '/api/stats')).cluster.nodes_alive === 2, // A and B (D stopped)
      { timeout: 4000, interval: 200, message: 'two nodes alive' });
    h1.disconnect();
  });

  it('after Redis lost its data (restarted), each node writes its presence entries again', async () => {
    const [a, b] = nodes;
    const ch = uniq('restart');
    const j = await connect(a, 'jack');
    await subscribe(j, ch);
    await waitFor(async () => (await apiOk(b, 'presence_stats', { channel: ch })).num_clients === 1, { message: 'jack present' });
    await redis.stop();
    redis = await startRedis(redis.port);
    await waitFor(async () => {
      const r = await request(b.port, { method: 'POST', path: '/api/presence', body: { channel: ch }, headers: { 'Content-Type': 'application/json' } });
      return r.json?.result && usersOf(r.json.result.presence).join() === 'jack';
    }, { timeout: 10000, interval: 200, message: 'jack present again after the restart' });
    assert.equal(j.state, 'connected');
    j.disconnect();
  });
});
