'use strict';
// The redis broker behind Redis Sentinel, and gap announcements. This file starts a real redis-server master, one
// replica (--replicaof) and one sentinel (quorum 1, down-after 1 s, failover-timeout 3 s) on free loopback ports in a
// temp dir, and a node with redis_sentinels. First a FLUSHALL on the master (an epoch change) is announced to live
// /ws, SSE and Centrifuge clients and counted. Then, while a source publishes continuously, the master is killed
// (SIGKILL): publishes answer 503 during the failover and succeed on the promoted replica within 10 s; every event
// that was answered 200 reaches every live client, or that client was told (a reset); the node does not crash.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startServer, pickPort } = require('./lib/server');
const { request, publish, getJson } = require('./lib/http');
const { WsClient } = require('./lib/ws');
const { SseClient } = require('./lib/sse');
const { command, startRedis } = require('./lib/redis');
const { uniq, sleep, waitFor } = require('./lib/util');

const MASTER = 'mymaster';

async function readyStatus(srv) {
  return (await request(srv.port, { path: '/readyz', timeout: 2000 })).status;
}

/** A raw Centrifuge client subscribed to channel: resolves {w, pushes} once the subscribe reply came. */
async function centrifugeClient(srv, channel) {
  const w = await WsClient.connect(`${srv.ws}/connection/websocket`);
  w.send({ id: 1, connect: {} });
  await w.waitFor((m) => m.id === 1 && m.connect, { message: 'connect reply' });
  w.send({ id: 2, subscribe: { channel } });
  await w.waitFor((m) => m.id === 2 && m.subscribe, { message: 'subscribe reply' });
  return w;
}

describe('redis broker with Sentinel', { timeout: 60000 }, () => {
  let dir;
  let master;
  let replica;
  let sentinel;
  let node;
  const redisUp = [];

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rt-sentinel-'));
    const [mp, rp, sp] = [await pickPort(), await pickPort(), await pickPort()];
    master = await startRedis(mp, { cwd: dir });
    replica = await startRedis(rp, { cwd: dir, args: ['--replicaof', '127.0.0.1', String(mp)] });
    redisUp.push(master, replica);
    // Sentinel rewrites its config file: it lives in the temp dir.
    const conf = path.join(dir, 'sentinel.conf');
    fs.writeFileSync(conf, [
      `port ${sp}`, 'bind 127.0.0.1', `dir ${dir}`,
      `sentinel monitor ${MASTER} 127.0.0.1 ${mp} 1`,
      `sentinel down-after-milliseconds ${MASTER} 1000`,
      `sentinel failover-timeout ${MASTER} 3000`,
      `sentinel parallel-syncs ${MASTER} 1`, '',
    ].join('\n'));
    sentinel = await startRedis(sp, { conf, args: ['--sentinel'], cwd: dir });
    redisUp.push(sentinel);
    // The replica is in sync and the sentinel knows it (it can fail over to it).
    await waitFor(async () => /master_link_status:up/.test(await command(rp, ['INFO', 'replication'])),
      { timeout: 10000, message: 'replica in sync' });
    await waitFor(async () => (await command(sp, ['SENTINEL', 'replicas', MASTER])).length === 1,
      { timeout: 15000, interval: 100, message: 'sentinel knows the replica' });
    node = await startServer({ workers: 2, flags: {
      broker: 'redis', redisSentinels: `127.0.0.1:${sp}`, redisMasterName: MASTER, historySize: 100000,
    } });
    await waitFor(async () => (await readyStatus(node)) === 200, { timeout: 10000, message: 'node ready' });
  });

  after(async () => {
    if (node)
      await node.stop();
    for (const r of redisUp)
      await r.stop();
    if (dir)
      fs.rmSync(dir, { recursive: true, force: true });
  });

  it('tells /ws, SSE and Centrifuge clients about an epoch change (FLUSHALL) and counts it', async () => {
    const ch = uniq('epoch');
    const ws = await WsClient.connect(`${node.ws}/ws?channels=${ch}`);
    const sse = await SseClient.connect(node.port, `/events?channels=${ch}`);
    const cf = await centrifugeClient(node, ch);
    try {
      await ws.waitType('subscribed');
      const r = await publish(node, { id: `${ch}-0`, type: 'incident.updated', channels: [ch] });
      assert.equal(r.status, 200, r.text);
      await ws.waitEvents(1);
      await sse.waitEvents(1);
      const before = (await getJson(node, '/api/stats')).events.gaps.epoch_changed;
      assert.equal(await command(master.port, ['FLUSHALL']), 'OK');
      const reset = await ws.waitType('reset', () => true, { timeout: 5000 });
      assert.deepEqual(reset, { type: 'reset', id: 'query', reason: 'events_lost', detail: 'epoch_changed' });
      const sreset = await sse.waitFor((m) => m.event === 'reset', { timeout: 5000 });
      assert.deepEqual(sreset.json, { reason: 'events_lost', detail: 'epoch_changed' });
      const unsub = await cf.waitFor((m) => m.push && m.push.unsubscribe, { timeout: 5000 });
      assert.deepEqual(unsub.push, { channel: ch, unsubscribe: { code: 2500, reason: 'insufficient state' } });
      const stats = await getJson(node, '/api/stats');
      assert.equal(stats.events.gaps.epoch_changed, before + 1);
      const metrics = (await request(node.port, { path: '/metrics' })).text;
      assert.match(metrics, /realtime_gaps_total\{reason="epoch_changed"\} [1-9]/);
      // Live events go on after the reset, on both streams.
      await waitFor(async () => (await publish(node, { id: `${ch}-1`, type: 'incident.updated', channels: [ch] })).status === 200,
        { timeout: 5000, message: 'publish after the flush' });
      await ws.waitEvents(2);
      await sse.waitEvents(2);
    } finally {
      ws.close();
      sse.close();
      cf.close();
    }
  });

  it('follows a failover: 503 meanwhile, publishes succeed on the new master within 10 s, nothing silently lost', async () => {
    const ch = uniq('failover');
    const ws = await WsClient.connect(`${node.ws}/ws?channels=${ch}`);
    const sse = await SseClient.connect(node.port, `/events?channels=${ch}`);
    const clients = [['/ws', ws], ['SSE', sse]];
    await ws.waitType('subscribed');
    const results = []; // {id, status, at}
    let stop = false;
    let killedAt = 0;
    const source = (async () => {
      for (let i = 0; !stop; i++) {
        const id = `${ch}-${i}`;
        let status;
        try {
          status = (await publish(node, { id, type: 'timeline.updated', channels: [ch], data: { i } })).status;
        } catch (e) {
          status = `error ${e.message}`;
        }
        results.push({ id, status, at: Date.now() });
        await sleep(10);
      }
    })();
    try {
      await waitFor(() => results.filter((r) => r.status === 200).length >= 30, { timeout: 5000, message: '30 publishes before the kill' });
      killedAt = Date.now();
      await master.stop('SIGKILL');
      // 503 while the sentinel notices and promotes the replica, then 200 again from the new master.
      await waitFor(() => results.some((r) => r.at > killedAt && r.status === 503), { timeout: 5000, message: 'a 503 during the failover' });
      const back = await waitFor(() => results.find((r) => r.at > killedAt && r.status === 200 &&
        results.some((q) => q.status === 503 && q.at < r.at)), { timeout: 15000, interval: 50, message: 'a 200 after the failover' });
      assert.ok(back.at - killedAt <= 10000, `publishing came back ${back.at - killedAt} ms after the kill`);
      await sleep(1000); // keep publishing on the new master for a while
    } finally {
      stop = true;
      await source;
    }
    try {
      const statuses = new Set(results.map((r) => r.status));
      for (const s of statuses)
        assert.ok(s === 200 || s === 503, `publish answered ${s}`);
      const addr = await command(sentinel.port, ['SENTINEL', 'get-master-addr-by-name', MASTER]);
      assert.equal(Number(addr[1]), replica.port, 'the replica was promoted');
      const accepted = results.filter((r) => r.status === 200).map((r) => r.id);
      const last = accepted[accepted.length - 1];
      await ws.waitFor((m) => m.type === 'event' && m.event.id === last, { timeout: 5000, message: 'the last accepted event on /ws' });
      await sse.waitFor((m) => m.json && m.json.id === last, { timeout: 5000, message: 'the last accepted event on SSE' });
      await sleep(300);
      const wsEvents = ws.events().map((e) => e.id);
      const sseEvents = sse.events().map((e) => e.id);
      const wsReset = ws.msgs.some((m) => m.type === 'reset');
      const sseReset = sse.messages.some((m) => m.event === 'reset');
      for (const [what, got, reset] of [['/ws', wsEvents, wsReset], ['SSE', sseEvents, sseReset]]) {
        assert.equal(new Set(got).size, got.length, `${what}: no event twice`);
        const have = new Set(got);
        const missing = accepted.filter((id) => !have.has(id));
        assert.ok(missing.length === 0 || reset, `${what}: ${missing.length} accepted events missing without a reset (first ${missing.slice(0, 3)})`);
      }
      assert.equal(node.exit, null, 'the node is still running');
      assert.equal(await readyStatus(node), 200);
      const gaps = (await getJson(node, '/api/stats')).events.gaps;
      console.log(`failover: ${accepted.length} accepted, ${results.length - accepted.length} refused, back after ` +
        `${results.find((r) => r.at > killedAt && r.status === 200 && results.some((q) => q.status === 503 && q.at < r.at)).at - killedAt} ms; ` +
        `resets /ws ${wsReset} SSE ${sseReset}; gaps ${JSON.stringify(gaps)}`);
    } finally {
      for (const [, c] of clients)
        c.close();
    }
  });
});

describe('redis broker: a master that lacks events the node saw', { timeout: 30000 }, () => {
  let dir;
  let redis;
  let node;
  let port;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rt-lost-'));
    port = await pickPort();
    redis = await startRedis(port, { cwd: dir, args: ['--dir', dir, '--dbfilename', 'dump.rdb'] });
    node = await startServer({ workers: 2, flags: { broker: 'redis', redisUrl: `redis://127.0.0.1:${port}` } });
    await waitFor(async () => (await readyStatus(node)) === 200, { timeout: 10000, message: 'node ready' });
  });

  after(async () => {
    if (node)
      await node.stop();
    if (redis)
      await redis.stop();
    if (dir)
      fs.rmSync(dir, { recursive: true, force: true });
  });

  it('restarted from an older snapshot: a new epoch, seqs go on above, live clients get a reset', async () => {
    const ch = uniq('lost');
    const ws = await WsClient.connect(`${node.ws}/ws?channels=${ch}`);
    const sse = await SseClient.connect(node.port, `/events?channels=${ch}`);
    try {
      await ws.waitType('subscribed');
      let top = 0;
      for (let i = 0; i < 10; i++) {
        if (i === 5)
          assert.equal(await command(port, ['SAVE']), 'OK'); // the snapshot holds the first 5 only
        const r = await publish(node, { id: `${ch}-${i}`, type: 'timeline.updated', channels: [ch] });
        assert.equal(r.status, 200, r.text);
        top = r.json.seq;
      }
      await ws.waitEvents(10);
      await sse.waitEvents(10);
      await redis.stop('SIGKILL');
      redis = await startRedis(port, { cwd: dir, args: ['--dir', dir, '--dbfilename', 'dump.rdb'] });
      const reset = await ws.waitType('reset', () => true, { timeout: 8000 });
      assert.deepEqual(reset, { type: 'reset', id: 'query', reason: 'events_lost', detail: 'failover' });
      const sreset = await sse.waitFor((m) => m.event === 'reset', { timeout: 5000 });
      assert.deepEqual(sreset.json, { reason: 'events_lost', detail: 'failover' });
      await waitFor(async () => (await readyStatus(node)) === 200, { timeout: 5000, message: 'node ready again' });
      const after = await publish(node, { id: `${ch}-after`, type: 'timeline.updated', channels: [ch] });
      assert.equal(after.status, 200, after.text);
      assert.ok(after.json.seq > top, `seq ${after.json.seq} above ${top}`);
      await ws.waitFor((m) => m.type === 'event' && m.event.id === `${ch}-after`, { message: 'live event after the reset' });
      await sse.waitFor((m) => m.json && m.json.id === `${ch}-after`, { message: 'live SSE event after the reset' });
      assert.equal((await getJson(node, '/api/stats')).events.gaps.failover, 1);
    } finally {
      ws.close();
      sse.close();
    }
  });
});
