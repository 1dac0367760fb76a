'use strict';
// A real redis-server for the tests that use the redis broker: started on a loopback port without persistence,
// ready once it answers PING, killed at the end (and on exit, whatever happens).

const net = require('node:net');
const { spawn } = require('node:child_process');
const { waitFor, withTimeout } = require('./util');

const redisProcs = new Set();
process.on('exit', () => {
  for (const p of redisProcs) {
    try {
      p.kill('SIGKILL');
    } catch { /* gone */ }
  }
});

/** One PING over a fresh connection; resolves true on +PONG, false otherwise (bounded by 500 ms). */
function ping(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let buf = '';
    const done = (v) => {
      clearTimeout(timer);
      s.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(false), 500);
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', (d) => {
      buf += d;
      if (buf.includes('\r\n'))
        done(buf.startsWith('+PONG'));
    });
    s.on('error', () => done(false));
  });
}

/**
 * Starts redis-server on 127.0.0.1:port without persistence (extra arguments after); resolves {proc, stop()} once
 * it answers PING.
 */
async function startRedis(port, extra = []) {
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...extra],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  redisProcs.add(proc);
  let log = '';
  const keep = (d) => {
    log = (log + d).slice(-4000);
  };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  const exited = new Promise((resolve) => proc.on('exit', () => {
    redisProcs.delete(proc);
    resolve();
  }));
  await waitFor(() => ping(port), { timeout: 5000, interval: 50, message: `redis-server on ${port} (log: ${log.slice(-500)})` });
  return {
    proc,
    async stop() {
      proc.kill('SIGKILL');
      await withTimeout(exited, 5000, 'redis-server to exit');
    },
  };
}

module.exports = { startRedis, ping };
