'use strict';
// Publishes/s through one one-worker node whose Redis is DELAY ms away each way (a delaying proxy), for SECONDS,
// with CONC publishers each sending its next POST /api/events as soon as the previous is answered (keep-alive).
//   node bench/redis_publish_rate.js BIN [SECONDS=5] [CONC=32] [DELAY=50]
// Needs redis-server on PATH; prints one line: publishes/s, answer latency p50/p99, failures, and the CPU Redis and
// the node used (so Redis's own ceiling is 1 / its CPU per publish).

const path = require('node:path');

if (process.argv[2] !== undefined)
  process.env.REALTIME_BIN = path.resolve(process.argv[2]); // read by lib/server when it is loaded
const http = require('node:http');
const { spawn } = require('node:child_process');
const lib = path.join(__dirname, '../tests/e2e/lib');
const { startServer, pickPort } = require(path.join(lib, 'server'));
const { startDelayProxy } = require(path.join(lib, 'proxy'));
const { sleep } = require(path.join(lib, 'util'));

async function main() {
  const [, secs = '5', conc = '32', delay = '50'] = process.argv.slice(2);
  const redisPort = await pickPort();
  const redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  await sleep(300);
  const proxy = await startDelayProxy(redisPort, Number(delay));
  const node = await startServer({ workers: 1, flags: { broker: 'redis', redisUrl: `redis://127.0.0.1:${proxy.port}` } });
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise((r) => http.get({ host: '127.0.0.1', port: node.port, path: '/readyz' }, (res) => { res.resume(); r(res.statusCode === 200); }).on('error', () => r(false)));
    if (ok)
      break;
    await sleep(100);
  }
  const agent = new http.Agent({ keepAlive: true, maxSockets: Number(conc) });
  const end = Date.now() + Number(secs) * 1000;
  const lat = [];
  let ok = 0;
  let failed = 0;
  const one = (i) => new Promise((resolve) => {
    const body = JSON.stringify({ type: 'incident.updated', channels: ['bench'], data: { i } });
    const t0 = process.hrtime.bigint();
    const req = http.request({ host: '127.0.0.1', port: node.port, method: 'POST', path: '/api/events', agent, timeout: 10000,
      headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => {
        lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
        if (res.statusCode === 200) ok++; else failed++;
        resolve();
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => { failed++; resolve(); });
    req.end(body);
  });
  // CPU seconds (user + system) of a process so far, from /proc.
  const cpuOf = (pid) => {
    const f = require('node:fs').readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  };
  const redisCpu0 = cpuOf(redis.pid);
  const nodeCpu0 = cpuOf(node.pid);
  const t0 = Date.now();
  let n = 0;
  await Promise.all(Array.from({ length: Number(conc) }, async () => {
    while (Date.now() < end)
      await one(n++);
  }));
  const elapsed = (Date.now() - t0) / 1000;
  const redisCpu = cpuOf(redis.pid) - redisCpu0;
  const nodeCpu = cpuOf(node.pid) - nodeCpu0;
  lat.sort((a, b) => a - b);
  const pct = (p) => lat[Math.min(lat.length - 1, Math.ceil(p / 100 * lat.length) - 1)].toFixed(1);
  console.log(`${(ok / elapsed).toFixed(1)} publishes/s (${ok} in ${elapsed.toFixed(1)} s, ${conc} publishers, Redis ${delay} ms away each way), answer p50 ${pct(50)} ms p99 ${pct(99)} ms, ${failed} failed; `
    + `Redis CPU ${(100 * redisCpu / elapsed).toFixed(0)}% of a core (${(1e6 * redisCpu / Math.max(ok, 1)).toFixed(0)} µs a publish), `
    + `node CPU ${(100 * nodeCpu / elapsed).toFixed(0)}%`);
  agent.destroy();
  await node.stop();
  await proxy.close();
  redis.kill('SIGKILL');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
