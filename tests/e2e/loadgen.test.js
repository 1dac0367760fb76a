'use strict';
// The benchmark load generator (bench/loadgen.c) at small scale against the real server: 100 subscribers,
// 100 events, every event delivered to every subscriber. Skipped when build/release/bench/loadgen is absent.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { startServer } = require('./lib/server');
const { withTimeout } = require('./lib/util');

const LOADGEN = process.env.LOADGEN_BIN || path.resolve(__dirname, '../../build/release/bench/loadgen');

function run(bin, args, timeoutMs) {
  return withTimeout(new Promise((resolve, reject) => {
    const p = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err = (err + d).slice(-8000); });
    p.on('error', reject);
    p.on('exit', (code, signal) => resolve({ code, signal, out, err }));
    run.proc = p;
  }), timeoutMs, `${bin} ${args.join(' ')}`).catch((e) => {
    if (run.proc)
      run.proc.kill('SIGKILL');
    throw e;
  });
}

describe('benchmark load generator', { timeout: 120000 }, () => {
  let srv;
  before(async () => {
    if (fs.existsSync(LOADGEN))
      srv = await startServer();
  });
  after(async () => {
    if (srv)
      await srv.stop();
  });

  for (const transport of ['ws', 'sse']) {
    it(`loadgen --transport ${transport} --subs 100 --events 100 --rate 100 delivers everything`, { timeout: 60000 }, async (t) => {
      if (!fs.existsSync(LOADGEN)) {
        t.skip(`${LOADGEN} not built`);
        return;
      }
      const args = ['--target', 'realtime', '--url', `127.0.0.1:${srv.port}`, '--transport', transport, '--subs', '100',
        '--events', '100', '--rate', '100', '--server-pid', String(srv.pid), '--timeout', '45', '--quiet'];
      const r = await run(LOADGEN, args, 55000);
      assert.equal(r.code, 0, `loadgen exit ${r.code} (signal ${r.signal}); stderr: ${r.err}; stdout: ${r.out}`);
      const lines = r.out.split('\n').filter((l) => l.trim().startsWith('{'));
      assert.ok(lines.length >= 1, `a JSON line on stdout: ${r.out}`);
      const res = JSON.parse(lines[lines.length - 1]);
      assert.equal(res.connections, 100, JSON.stringify(res));
      assert.equal(res.published, 100);
      assert.equal(res.expected, 10000);
      assert.equal(res.received, 10000);
      assert.equal(res.lost, 0);
      assert.equal(res.dups, 0);
      assert.equal(res.disconnects, 0);
      assert.equal(res.ok, true);
    });
  }
});
