'use strict';
// SIGHUP reloads the configuration without dropping a connection (issue: operations): API keys, token keys,
// namespaces, allowed origins and limits change for new requests and subscriptions, connected clients go on
// receiving, keys a running server cannot change are named in the log, and a configuration that does not load
// changes nothing.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startServer } = require('./lib/server');
const { publish, request } = require('./lib/http');
const { WsClient } = require('./lib/ws');
const { SseClient } = require('./lib/sse');
const { uniq, waitFor } = require('./lib/util');

function jwt(secret, claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${head}.${crypto.createHmac('sha256', secret).update(head).digest('base64url')}`;
}

describe('SIGHUP reload', { timeout: 60000 }, () => {
  let dir;
  let file;
  let srv;
  const base = {
    api_keys: ['key-one'],
    token_secret: 'secret-one-0123456789',
    namespaces: [{ pattern: 'public.>', anonymous: true }],
  };
  const write = (cfg) => fs.writeFileSync(file, JSON.stringify(cfg));
  const ev = (ch) => ({ type: 'incident.updated', channels: [ch], data: { severity: 'SEV-2' } });
  const pub = (key, ch) => publish(srv, ev(ch), { headers: { 'X-API-Key': key } });
  /** Sends SIGHUP and waits for the n-th reload line (or error line) in the log. */
  async function hup(n, pattern = /reloaded the configuration/g) {
    srv.proc.kill('SIGHUP');
    await waitFor(() => (srv.logs().match(pattern) || []).length >= n, { timeout: 10000, message: `reload #${n} in the log` });
  }

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'realtime-reload-'));
    file = path.join(dir, 'realtime.json');
    write(base);
    srv = await startServer({ secure: true, flags: ['--config', file] });
  });
  after(async () => {
    if (srv)
      await srv.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('new API key, token secret, namespaces and origins apply; connected clients keep receiving', async () => {
    const ch = `incidents.${uniq('reload')}`;
    const anon = `public.${uniq('reload')}`;
    const ws = await WsClient.connect(`${srv.ws}/ws?channels=${ch}&token=${jwt(base.token_secret, { sub: 'a', subscribe: ['incidents.>'] })}`);
    await ws.waitFor((m) => m.type === 'subscribed');
    const sse = await SseClient.connect(srv.port, `/events?channels=${anon}`);
    assert.equal(sse.status, 200);
    assert.equal((await pub('key-one', ch)).status, 200);

    write({ ...base, api_keys: ['key-two'], token_secret: 'secret-two-0123456789', history_size: 500, workers: 3,
      namespaces: [{ pattern: 'open.>', anonymous: true }], allowed_origins: ['https://console.example.com'] });
    await hup(1);
    const line = srv.logs().split('\n').find((l) => /reloaded the configuration/.test(l));
    assert.match(line, /changed .*api_keys/);
    assert.match(line, /token_secret/);
    assert.match(line, /namespaces/);
    assert.match(line, /allowed_origins/);
    assert.match(line, /not applied, restart to change: history_size$/); // workers is a flag here: the flag wins, unchanged
    assert.doesNotMatch(line, /secret-two|key-two/, 'no secret in the log');

    assert.equal((await pub('key-one', ch)).status, 401, 'the old key is refused');
    const r = await pub('key-two', ch);
    assert.equal(r.status, 200);
    const r2 = await pub('key-two', anon);
    await ws.waitFor((m) => m.type === 'event' && m.event.id === r.json.id);
    await sse.waitFor((m) => m.id === r2.json.id); // subscribed under the old namespaces: kept
    assert.equal(ws.closeInfo, null);

    // new subscriptions follow the new rules
    assert.equal((await SseClient.connect(srv.port, `/events?channels=${anon}`)).status, 403);
    const open = await SseClient.connect(srv.port, `/events?channels=open.${uniq('x')}`);
    assert.equal(open.status, 200);
    open.close();
    const oldToken = await SseClient.connect(srv.port, `/events?channels=${ch}&token=${jwt(base.token_secret, { sub: 'a', admin: true })}`);
    assert.equal(oldToken.status, 401);
    const newToken = await SseClient.connect(srv.port, `/events?channels=${ch}&token=${jwt('secret-two-0123456789', { sub: 'a', admin: true })}`);
    assert.equal(newToken.status, 200);
    newToken.close();
    const pre = await request(srv.port, { method: 'OPTIONS', path: '/api/events',
      headers: { Origin: 'https://console.example.com', 'Access-Control-Request-Method': 'POST' } });
    assert.equal(pre.status, 204);
    ws.close();
    sse.close();
  });

  it('limits apply to new connections', async () => {
    write({ ...base, api_keys: ['key-two'], token_secret: 'secret-two-0123456789', max_connections_per_ip: 2 });
    await hup(2);
    const a = await SseClient.connect(srv.port, '/events?channels=public.a');
    const b = await SseClient.connect(srv.port, '/events?channels=public.b');
    const c = await request(srv.port, { path: '/events?channels=public.c' });
    assert.equal(c.status, 429);
    a.close();
    b.close();
    write({ ...base, api_keys: ['key-two'], token_secret: 'secret-two-0123456789' });
    await hup(3);
  });

  it('a configuration that does not load changes nothing, and says why', async () => {
    fs.writeFileSync(file, '{"api_keys": ["key-three"], ');
    await hup(1, /reload \(SIGHUP\): .* the running configuration stays/g);
    assert.equal((await pub('key-two', 'incidents.x')).status, 200);
    assert.equal((await pub('key-three', 'incidents.x')).status, 401);
    write({ ...base, api_keys: ['key-three'], token_public_key: path.join(dir, 'missing.pem') });
    await hup(2, /reload \(SIGHUP\): .* the running configuration stays/g);
    assert.match(srv.logs(), /missing\.pem/);
    assert.equal((await pub('key-two', 'incidents.x')).status, 200, 'still the last good configuration');
    assert.equal((await request(srv.port, { path: '/healthz' })).status, 200);
  });
});
