'use strict';
// A throwaway redis-server on a loopback port, without persistence, killed when the test process exits.

const { spawn } = require('node:child_process');
const net = require('node:net');
const { waitFor, withTimeout } = require('./util');

const procs = new Set();
process.on('exit', () => {
  for (const p of procs) {
    try {
      p.kill('SIGKILL');
    } catch { /* gone */ }
  }
});

/** Sends one inline command over a fresh connection; resolves the raw reply text (bounded by 1 s, '' on failure). */
function redisCommand(port, line) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let buf = '';
    const done = (v) => {
      clearTimeout(timer);
      s.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(buf), 1000);
    s.on('connect', () => s.write(`${line}\r\n`));
    s.on('data', (d) => {
      buf += d;
      if (buf.endsWith('\r\n'))
        setTimeout(() => done(buf), 20);
    });
    s.on('error', () => done(''));
  });
}

/** Starts redis-server on 127.0.0.1:port; resolves {port, proc, logs(), stop()} once it answers PING. */
async function startRedis(port) {
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  procs.add(proc);
  let log = '';
  proc.stdout.on('data', (d) => { log += d; });
  proc.stderr.on('data', (d) => { log += d; });
  const exited = new Promise((resolve) => proc.on('exit', () => {
    procs.delete(proc);
    resolve();
  }));
  await waitFor(async () => (await redisCommand(port, 'PING')).startsWith('+PONG'),
    { timeout: 5000, interval: 50, message: `redis-server on ${port} (log: ${log.slice(-500)})` });
  return {
    port,
    proc,
    logs: () => log,
    async stop() {
      proc.kill('SIGKILL');
      await withTimeout(exited, 5000, 'redis-server to exit');
    },
  };
}

module.exports = { startRedis, redisCommand };
