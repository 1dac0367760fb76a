'use strict';
// Real redis-server processes for the broker tests (plain, replica, Sentinel) on loopback ports, and a tiny RESP
// client for setting them up and checking on them. Every process still running when the test process exits is killed.

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

/** Parses one RESP reply at buf[i]; returns [value, next index] or null when incomplete. Errors become Error objects. */
function parseReply(buf, i = 0) {
  if (i >= buf.length)
    return null;
  const eol = buf.indexOf('\r\n', i);
  if (eol < 0)
    return null;
  const type = buf[i];
  const line = buf.toString('utf8', i + 1, eol);
  const next = eol + 2;
  if (type === 0x2b) // +
    return [line, next];
  if (type === 0x2d) // -
    return [new Error(line), next];
  if (type === 0x3a) // :
    return [Number(line), next];
  if (type === 0x24) { // $
    const n = Number(line);
    if (n < 0)
      return [null, next];
    if (buf.length < next + n + 2)
      return null;
    return [buf.toString('utf8', next, next + n), next + n + 2];
  }
  if (type === 0x2a) { // *
    const n = Number(line);
    if (n < 0)
      return [null, next];
    const out = [];
    let j = next;
    for (let k = 0; k < n; k++) {
      const r = parseReply(buf, j);
      if (!r)
        return null;
      out.push(r[0]);
      j = r[1];
    }
    return [out, j];
  }
  throw new Error(`unexpected RESP type ${String.fromCharCode(type)}`);
}

/** Sends one command (an array of strings) on a fresh connection; resolves its reply (bounded by timeout ms). */
function command(port, args, { timeout = 2000 } = {}) {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let buf = Buffer.alloc(0);
    const done = (err, v) => {
      clearTimeout(timer);
      s.destroy();
      if (err)
        reject(err);
      else
        resolve(v);
    };
    const timer = setTimeout(() => done(new Error(`redis ${port} ${args[0]}: no reply in ${timeout} ms`)), timeout);
    s.on('connect', () => {
      s.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(String(a))}\r\n${a}\r\n`).join('')}`);
    });
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const r = parseReply(buf);
      if (r)
        done(null, r[0]);
    });
    s.on('error', (e) => done(e));
  });
}

async function ping(port) {
  try {
    return (await command(port, ['PING'], { timeout: 500 })) === 'PONG';
  } catch {
    return false;
  }
}

/**
 * Starts redis-server with args (after the config file, if any) on 127.0.0.1:port without persistence; resolves
 * {port, proc, log(), kill(signal), stop()} once it answers PING.
 */
async function startRedis(port, { args = [], conf = null, cwd } = {}) {
  const argv = [...(conf ? [conf] : []), '--port', String(port), '--bind', '127.0.0.1', ...(conf ? [] : ['--save', '', '--appendonly', 'no']), ...args];
  const proc = spawn('redis-server', argv, { stdio: ['ignore', 'pipe', 'pipe'], cwd });
  procs.add(proc);
  let log = '';
  proc.stdout.on('data', (d) => { log = (log + d).slice(-20000); });
  proc.stderr.on('data', (d) => { log = (log + d).slice(-20000); });
  const exited = new Promise((resolve) => proc.on('exit', () => {
    procs.delete(proc);
    resolve();
  }));
  await waitFor(() => ping(port), { timeout: 5000, interval: 50, message: `redis-server on ${port} (log: ${log.slice(-500)})` });
  return {
    port,
    proc,
    log: () => log,
    async stop(signal = 'SIGKILL') {
      if (proc.exitCode === null && proc.signalCode === null)
        proc.kill(signal);
      await withTimeout(exited, 5000, `redis-server ${port} to exit`);
    },
  };
}

module.exports = { command, ping, startRedis };
