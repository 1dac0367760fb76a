'use strict';
// Client tokens and `all`: with --token-secret, only an admin JWT may subscribe to `all` (/ws error
// permission_denied, SSE 403 with the error JSON); an unverifiable token is refused.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const { startServer, BIN } = require('./lib/server');
const { publishOk } = require('./lib/http');
const { WsClient } = require('./lib/ws');
const { SseClient } = require('./lib/sse');
const { uniq, waitFor } = require('./lib/util');

const SECRET = 'e2e-secret-0123456789abcdef';
const token = (...args) => execFileSync(BIN, ['token', '--secret', SECRET, ...args], { encoding: 'utf8' }).trim();

describe('tokens and `all`', { timeout: 60000 }, () => {
  let srv;
  let admin;
  let user;
  before(async () => {
    srv = await startServer({ flags: { tokenSecret: SECRET } });
    admin = token('--sub', 'ops', '--admin');
    user = token('--sub', 'alice');
  });
  after(async () => {
    if (srv)
      await srv.stop();
  });

  it('`realtime token` prints a three-part JWT', { timeout: 10000 }, () => {
    assert.match(admin, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    const claims = JSON.parse(Buffer.from(admin.split('.')[1], 'base64url').toString());
    assert.equal(claims.sub, 'ops');
    assert.equal(claims.admin, true);
  });

  it('/ws: `all` needs an admin token', { timeout: 10000 }, async () => {
    const u = await WsClient.connect(`${srv.ws}/ws?token=${user}`);
    const a = await WsClient.connect(`${srv.ws}/ws?token=${admin}`);
    try {
      await u.waitType('welcome');
      const refused = await u.subscribe({ id: 'all1', channels: ['all'] });
      assert.equal(refused.type, 'error');
      assert.equal(refused.error.code, 'permission_denied');
      assert.equal(refused.id, 'all1');
      await a.waitType('welcome');
      assert.deepEqual(await a.subscribe({ id: 'all2', channels: ['all'] }), { type: 'subscribed', id: 'all2', channels: ['all'] });
      const r = await publishOk(srv, { type: 'incident.created', channels: [uniq('any')] });
      await a.waitFor((m) => m.type === 'event' && m.event.id === r.id);
      // an ordinary channel is fine for the user
      assert.equal((await u.subscribe({ id: 'c', channels: ['incidents'] })).type, 'subscribed');
    } finally {
      u.terminate();
      a.terminate();
    }
  });

  it('SSE: `all` without an admin token is 403 permission_denied; with one it streams', { timeout: 10000 }, async () => {
    const u = await SseClient.connect(srv.port, `/events?channels=all&token=${user}`);
    assert.equal(u.status, 403);
    assert.equal(u.json.error.code, 'permission_denied', u.body);
    const a = await SseClient.connect(srv.port, `/events?channels=all&token=${admin}`);
    try {
      assert.equal(a.status, 200);
      await waitFor(() => a.retry !== null);
      const r = await publishOk(srv, { type: 'incident.created', channels: [uniq('any')] });
      await a.waitFor((m) => m.id === r.id);
    } finally {
      a.close();
    }
  });

  it('a token that does not verify is refused (401 unauthorized)', { timeout: 10000 }, async () => {
    const forged = `${user.split('.').slice(0, 2).join('.')}.${Buffer.from('nope').toString('base64url')}`;
    for (const t of ['garbage', forged]) {
      const s = await SseClient.connect(srv.port, `/events?channels=incidents&token=${t}`);
      assert.equal(s.status, 401, `${t}: ${s.status} ${s.body}`);
      assert.equal(s.json.error.code, 'unauthorized');
      // either refused at the handshake (401) or told with an `unauthorized` error
      let w = null;
      try {
        w = await WsClient.connect(`${srv.ws}/ws?token=${t}`);
      } catch (e) {
        assert.equal(e.status, 401, e.message);
      }
      if (w) {
        try {
          const e = await w.waitFor((m) => m.type === 'error');
          assert.equal(e.error.code, 'unauthorized', JSON.stringify(e));
        } finally {
          w.terminate();
        }
      }
    }
  });
});
