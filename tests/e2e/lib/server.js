'use strict';
// Starts the real server binary ($REALTIME_BIN) on a free loopback port, waits for /healthz, and stops it with
// SIGTERM, checking the exit status. Servers still running when the test process exits are killed.

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const assert = require('node:assert/strict');
const { request } = require('./http');
const { sleep, withTimeout } = require('./util');

const BIN = process.env.REALTIME_BIN || path.resolve(__dirname, '../../../build/release/realtime');
const LOG_KEEP = 256 * 1024;
const live = new Set();

function killAll() {
  for (const p of live) {
    try {
      p.kill('SIGKILL');
    } catch { /* already gone */ }
  }
}
process.on('exit', killAll);
// The test runner stops a file that overruns with a signal: take its servers along.
for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
  process.once(sig, () => {
    killAll();
    process.exit(128 + (sig === 'SIGHUP' ? 1 : sig === 'SIGINT' ? 2 : 15));
  });
}

/** True when nothing listens on 127.0.0.1:port (a plain bind without SO_REUSEPORT succeeds). */
function portFree(port) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen({ host: '127.0.0.1', port, exclusive: true }, () => s.close(() => resolve(true)));
  });
}

async function pickPort() {
  for (let i = 0; i < 50; i++) {
    const port = 20000 + Math.floor(Math.random() * 40000);
    if (await portFree(port))
      return port;
  }
  throw new Error('no free port found in 50 tries');
}

/** {historySize: 10, 'pong-timeout': 1} → ['--history-size', '10', '--pong-timeout', '1']; arrays pass through. */
function flagArgs(flags) {
  if (Array.isArray(flags))
    return flags.map(String);
  const out = [];
  for (const [k, v] of Object.entries(flags || {})) {
    const key = k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`).replace(/_/g, '-');
    out.push(`--${key}`, String(v));
  }
  return out;
}

/**
 * Starts a server. opts.flags: extra flags (object or array); opts.workers (default 2); opts.env; opts.cwd; opts.nofile;
 * opts.secure: start without --insecure (keys and grants enforced), as `realtime serve` runs in production; by default
 * tests that are not about authorization run in insecure mode, as `make run` does.
 * Resolves a handle {port, base, ws, apiHeaders, pid, proc, logs(), rss(), stop(opts), exited}.
 */
async function startServer(opts = {}) {
  let lastErr;
  let hangs = 0;
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await pickPort();
    try {
      return await startOn(port, opts);
    } catch (e) {
      lastErr = e;
      if (e.retryable === 'hang')
        hangs += 1;
      if (!e.retryable || hangs > 1)
        throw e;
    }
  }
  throw lastErr;
}

async function startOn(port, opts) {
  if (!fs.existsSync(BIN))
    throw new Error(`server binary not found: ${BIN} (set REALTIME_BIN or run make)`);
  const args = ['serve', '--listen', `127.0.0.1:${port}`, '--workers', String(opts.workers ?? 2),
    ...(opts.secure ? [] : ['--insecure']), ...flagArgs(opts.flags)];
  // opts.nofile: the open-file limit of the server (through the shell's ulimit, then exec: the pid stays the server's).
  const [cmd, argv] = opts.nofile ? ['bash', ['-c', `ulimit -n ${Number(opts.nofile)} && exec "$0" "$@"`, BIN, ...args]] : [BIN, args];
  const proc = spawn(cmd, argv, {
    cwd: opts.cwd || path.resolve(__dirname, '../../..'),
    env: { ...process.env, ...(opts.env || {}) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(proc);
  let log = '';
  const keep = (d) => {
    log += d.toString('utf8');
    if (log.length > LOG_KEEP)
      log = log.slice(log.length - LOG_KEEP);
  };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  let exit = null;
  let spawnError = null;
  const exited = new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      exit = { code, signal };
      live.delete(proc);
      resolve(exit);
    });
    // e.g. ETXTBSY while `make` relinks the binary: retried with a new port
    proc.on('error', (e) => {
      spawnError = e;
      exit = { code: null, signal: null };
      live.delete(proc);
      resolve(exit);
    });
  });

  const deadline = Date.now() + 10000;
  for (;;) {
    if (exit) {
      const e = new Error(`server exited during startup (code ${exit.code}, signal ${exit.signal}` +
        `${spawnError ? `, ${spawnError.message}` : ''}): ${BIN} ${args.join(' ')}\n${log}`);
      e.retryable = /in use|bind|listen/i.test(log) || (spawnError && spawnError.code === 'ETXTBSY');
      if (e.retryable)
        await sleep(500);
      throw e;
    }
    try {
      const r = await request(port, { path: '/healthz', timeout: 1000 });
      if (r.status === 200)
        break;
    } catch { /* not up yet */ }
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      const e = new Error(`server did not answer /healthz within 10 s: ${args.join(' ')}\n${log}`);
      e.retryable = 'hang'; // once: a binary replaced mid-start by a concurrent build has been seen to hang
      throw e;
    }
    await sleep(25);
  }

  const keys = opts.flags && !Array.isArray(opts.flags) && opts.flags.apiKeys;
  const srv = {
    port,
    args,
    /** Headers that authenticate to the server API: the first of opts.flags.apiKeys, when given. */
    apiHeaders: keys ? { 'X-API-Key': String(keys).split(',')[0] } : {},
    base: `http://127.0.0.1:${port}`,
    ws: `ws://127.0.0.1:${port}`,
    pid: proc.pid,
    proc,
    exited,
    logs: () => log,
    get exit() { return exit; },
    /** The server's resident set size in kB, from /proc/<pid>/status VmRSS. */
    rss() {
      const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${proc.pid}/status`, 'utf8'));
      return m ? Number(m[1]) : NaN;
    },
    /**
     * Sends signal (SIGTERM) and waits up to timeout ms for the exit; asserts exit code expectCode (0) unless it is
     * null. Idempotent: a server that already exited is only checked. Resolves {code, signal}.
     */
    async stop({ signal = 'SIGTERM', expectCode = 0, timeout = 15000 } = {}) {
      if (!exit)
        proc.kill(signal);
      let r;
      try {
        r = await withTimeout(exited, timeout, `server pid ${proc.pid} to exit after ${signal}`);
      } catch (e) {
        proc.kill('SIGKILL');
        throw e;
      }
      if (expectCode !== null)
        assert.deepEqual(r, { code: expectCode, signal: null },
          `server exit after ${signal}: ${JSON.stringify(r)}\n--- server log (tail) ---\n${log.slice(-4000)}`);
      return r;
    },
  };
  return srv;
}

module.exports = { startServer, BIN, pickPort };
