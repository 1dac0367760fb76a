'use strict';
// A secure start from nothing: `realtime genconfig` writes a starter config that `check-config` accepts, whose
// output loads back as a config, and a server started with it enforces keys and grants.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { startServer, BIN } = require('./lib/server');
const { publish, request } = require('./lib/http');
const { SseClient } = require('./lib/sse');

const run = (...args) => spawnSync(BIN, args, { encoding: 'utf8' });

describe('genconfig and check-config', { timeout: 60000 }, () => {
  let dir;
  let file;
  let generated;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'realtime-config-'));
    file = path.join(dir, 'realtime.json');
    const g = run('genconfig');
    assert.equal(g.status, 0, g.stderr);
    fs.writeFileSync(file, g.stdout);
    generated = JSON.parse(g.stdout);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('writes random secrets, an example namespace and allowed origins', () => {
    assert.match(generated.api_keys[0], /^[0-9a-f]{64}$/);
    assert.match(generated.token_secret, /^[0-9a-f]{64}$/);
    assert.notEqual(generated.api_keys[0], generated.token_secret);
    assert.notEqual(JSON.parse(run('genconfig').stdout).token_secret, generated.token_secret, 'fresh secrets each run');
    assert.ok(generated.namespaces.some((n) => n.anonymous === true));
    assert.ok(Array.isArray(generated.allowed_origins));
    assert.equal(generated.insecure, undefined, 'a starter config is secure');
  });

  it('check-config accepts it, and its output (without secrets) loads back unchanged', () => {
    const c = run('check-config', '--config', file);
    assert.equal(c.status, 0, c.stderr);
    assert.match(c.stderr, /configuration ok/);
    const dumped = JSON.parse(c.stdout);
    assert.equal(dumped.token_secret, '***', 'secrets are masked');
    // The masked secret is refused as a value, so a dump with secrets never loads a secret of "***"...
    const masked = path.join(dir, 'masked.json');
    fs.writeFileSync(masked, c.stdout);
    const m = run('check-config', '--config', masked);
    assert.equal(m.status, 1);
    assert.match(m.stderr, /mask/);
    // ...and without them it loads back as the same configuration.
    delete dumped.token_secret;
    delete dumped.api_keys;
    const plain = path.join(dir, 'plain.json');
    fs.writeFileSync(plain, JSON.stringify(dumped));
    const again = run('check-config', '--config', plain);
    assert.equal(again.status, 0, again.stderr);
    assert.deepEqual({ ...JSON.parse(again.stdout), token_secret: undefined, api_keys: undefined },
      { ...dumped, token_secret: undefined, api_keys: undefined });
  });

  describe('a server started with it', () => {
    let srv;
    before(async () => {
      srv = await startServer({ secure: true, flags: ['--config', file] });
    });
    after(async () => {
      if (srv)
        await srv.stop();
    });

    it('needs the generated API key and refuses anonymous reads outside the example namespace', async () => {
      const ev = { type: 'incident.created', channels: ['incidents'] };
      assert.equal((await publish(srv, ev)).status, 401);
      assert.equal((await publish(srv, ev, { headers: { 'X-API-Key': generated.api_keys[0] } })).status, 200);
      assert.equal((await request(srv.port, { path: '/api/stats' })).status, 401);
      const refused = await SseClient.connect(srv.port, '/events?channels=incidents');
      assert.equal(refused.status, 403);
      assert.equal(refused.json.error.code, 'permission_denied');
      const pattern = generated.namespaces.find((n) => n.anonymous).pattern;
      const open = await SseClient.connect(srv.port, `/events?channels=${pattern}`);
      try {
        assert.equal(open.status, 200);
      } finally {
        open.close();
      }
    });
  });
});
