'use strict';
// Tokens from identity providers: RS256 with a PEM public key (token_public_key), ES256/RS256 with a JWK set from a
// file (token_jwks_file) and over HTTPS (token_jwks_url, a local server with a self-signed certificate trusted
// through SSL_CERT_FILE), refreshed and kept across a failed fetch. Keys and certificates are made by the openssl
// CLI in a temporary directory; the tokens by `realtime token --key`.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const https = require('node:https');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { startServer, BIN } = require('./lib/server');
const { publishOk } = require('./lib/http');
const { WsClient } = require('./lib/ws');
const { SseClient } = require('./lib/sse');
const { sleep, uniq, waitFor } = require('./lib/util');

const API_KEY = 'tokens-key';
const QUIET_MS = 300;
const ev = (channels) => ({ type: 'incident.created', channels, data: { severity: 'SEV-1' } });

let dir;
const file = (name) => path.join(dir, name);
const openssl = (...args) => execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
const token = (...args) => execFileSync(BIN, ['token', '--sub', 'ops', ...args], { encoding: 'utf8' }).trim();
/** A JWK for a PEM public key, with kid. */
const jwk = (pubFile, kid) => ({ ...crypto.createPublicKey(fs.readFileSync(pubFile)).export({ format: 'jwk' }), kid, use: 'sig' });

function keyPair(name, ...genArgs) {
  openssl(...genArgs, '-out', file(`${name}.pem`));
  openssl('pkey', '-in', file(`${name}.pem`), '-pubout', '-out', file(`${name}.pub`));
}

/** The status an SSE request for `all` gets with token t: 200 (then closed) or the refusal. */
async function sseStatus(srv, t) {
  const s = await SseClient.connect(srv.port, `/events?channels=all&token=${t}`);
  s.close();
  return s.status;
}

/** An admin token on /ws subscribes to `all` and receives an event published afterwards. */
async function adminReads(srv, t) {
  const w = await WsClient.connect(`${srv.ws}/ws?channels=all&token=${t}`);
  try {
    await w.waitType('subscribed');
    const r = await publishOk(srv, ev([uniq('inc')]));
    await w.waitFor((m) => m.type === 'event' && m.event.id === r.id);
  } finally {
    w.terminate();
  }
}

/** A refused token: SSE 401, /ws error unauthorized and nothing read. */
async function refused(srv, t) {
  const s = await SseClient.connect(srv.port, `/events?channels=all&token=${t}`);
  assert.equal(s.status, 401, `SSE with ${t.slice(0, 40)}…: ${s.status} ${s.body}`);
  assert.equal(s.json.error.code, 'unauthorized');
  const w = await WsClient.connect(`${srv.ws}/ws?channels=all&token=${t}`);
  try {
    const e = await w.waitFor((m) => m.type === 'error');
    assert.equal(e.error.code, 'unauthorized', JSON.stringify(e));
    const r = await publishOk(srv, ev([uniq('inc')]));
    await sleep(QUIET_MS);
    assert.ok(!w.events().some((x) => x.id === r.id), 'a refused token reads nothing');
  } finally {
    w.terminate();
  }
}

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rt-tokens-'));
  keyPair('rsa', 'genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048');
  keyPair('rsa2', 'genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048');
  keyPair('ec', 'genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256');
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('token_public_key (PEM)', { timeout: 60000 }, () => {
  let srv;
  before(async () => {
    srv = await startServer({ secure: true, flags: { tokenPublicKey: file('rsa.pub'), apiKeys: API_KEY } });
  });
  after(async () => {
    if (srv)
      await srv.stop();
  });

  it('an RS256 admin token reads `all` on /ws and /events', async () => {
    const t = token('--key', file('rsa.pem'), '--admin');
    assert.equal(JSON.parse(Buffer.from(t.split('.')[0], 'base64url')).alg, 'RS256');
    await adminReads(srv, t);
    assert.equal(await sseStatus(srv, t), 200);
    await adminReads(srv, token('--key', file('rsa.pem'), '--alg', 'RS512', '--admin'));
  });

  it('refuses a bad token, another key\'s token and an HS256 token keyed with the public key\'s PEM text', async () => {
    const pemText = fs.readFileSync(file('rsa.pub'), 'utf8');
    const confused = token('--secret', pemText, '--admin');
    assert.equal(JSON.parse(Buffer.from(confused.split('.')[0], 'base64url')).alg, 'HS256');
    for (const t of ['bad', confused, token('--key', file('rsa2.pem'), '--admin'), token('--key', file('ec.pem'), '--admin')])
      await refused(srv, t);
    // alg none with admin claims
    const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
    await refused(srv, `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'x', admin: true })}.`);
  });

  it('check-config fails on an unreadable or invalid key file, naming it', () => {
    fs.writeFileSync(file('junk.pub'), 'not a key\n');
    for (const [f, why] of [[file('missing.pub'), /cannot read/], [file('junk.pub'), /not a PEM public key/], [file('rsa.pem'), /not a PEM public key/]]) {
      let out;
      try {
        execFileSync(BIN, ['check-config', '--token-public-key', f], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
        assert.fail(`${f} accepted`);
      } catch (e) {
        out = e.stderr;
        assert.equal(e.status, 1, out);
      }
      assert.ok(out.includes(f) && why.test(out), out);
    }
  });
});

describe('token_jwks_file', { timeout: 60000 }, () => {
  let srv;
  before(async () => {
    fs.writeFileSync(file('jwks.json'), JSON.stringify({ keys: [jwk(file('rsa.pub'), 'r1'), jwk(file('ec.pub'), 'e1')] }));
    srv = await startServer({ secure: true, flags: { tokenJwksFile: file('jwks.json'), apiKeys: API_KEY, tokenAudience: 'realtime' } });
  });
  after(async () => {
    if (srv)
      await srv.stop();
  });

  it('ES256 and RS256 tokens verify with the key their kid names; an unknown kid or a wrong aud does not', async () => {
    await adminReads(srv, token('--key', file('ec.pem'), '--kid', 'e1', '--aud', 'realtime', '--admin'));
    await adminReads(srv, token('--key', file('rsa.pem'), '--kid', 'r1', '--aud', 'realtime', '--admin'));
    await refused(srv, token('--key', file('rsa.pem'), '--kid', 'nope', '--aud', 'realtime', '--admin'));
    await refused(srv, token('--key', file('rsa.pem'), '--kid', 'e1', '--aud', 'realtime', '--admin')); // RS256 with the EC key
    await refused(srv, token('--key', file('rsa.pem'), '--kid', 'r1', '--aud', 'other', '--admin'));
  });
});

describe('token_jwks_url (HTTPS, refreshed)', { timeout: 90000 }, () => {
  let srv;
  let idp;
  let doc;
  let status = 200;
  let fetches = 0;
  before(async () => {
    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', file('tls.key'), '-out', file('tls.crt'), '-days', '1',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1');
    doc = { keys: [jwk(file('rsa.pub'), 'k1')] };
    idp = https.createServer({ key: fs.readFileSync(file('tls.key')), cert: fs.readFileSync(file('tls.crt')) }, (req, res) => {
      fetches += 1;
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(status === 200 ? JSON.stringify(doc) : 'no');
    });
    await new Promise((resolve) => idp.listen(0, '127.0.0.1', resolve));
    srv = await startServer({
      secure: true,
      env: { SSL_CERT_FILE: file('tls.crt') },
      flags: { tokenJwksUrl: `https://127.0.0.1:${idp.address().port}/.well-known/jwks.json`, tokenJwksRefresh: 1, apiKeys: API_KEY },
    });
  });
  after(async () => {
    if (srv)
      await srv.stop();
    if (idp)
      idp.close();
  });

  it('fetches the keys at startup, picks up a new kid after a refresh, and keeps the keys when a fetch fails', async () => {
    const k1 = token('--key', file('rsa.pem'), '--kid', 'k1', '--admin');
    const k2 = token('--key', file('ec.pem'), '--kid', 'k2', '--admin');
    await waitFor(async () => (await sseStatus(srv, k1)) === 200, { timeout: 10000, message: 'k1 accepted after the first fetch' });
    await adminReads(srv, k1);
    await refused(srv, k2);

    doc = { keys: [jwk(file('ec.pub'), 'k2')] };
    await waitFor(async () => (await sseStatus(srv, k2)) === 200, { timeout: 10000, message: 'k2 accepted after a refresh' });
    await adminReads(srv, k2);
    await refused(srv, k1); // replaced, not merged

    // a reload (SIGHUP) rebuilds the verifier: it starts with the keys fetched so far, and fetches go on into it
    srv.proc.kill('SIGHUP');
    await waitFor(() => /reloaded the configuration/.test(srv.logs()), { timeout: 5000, message: 'the reload' });
    await adminReads(srv, k2);

    status = 500;
    const before500 = fetches;
    await waitFor(() => fetches >= before500 + 2, { timeout: 10000, message: 'two failed fetches' });
    await adminReads(srv, k2);
    assert.match(srv.logs(), /HTTP status 500; keeping the keys of the last fetch/);
    status = 200;
  });

  it('refuses a certificate outside the trust store, or one that does not name the host: logged, no keys taken', async () => {
    const port = idp.address().port;
    for (const [host, env, why] of [['127.0.0.1', {}, /self.signed certificate/], ['localhost', { SSL_CERT_FILE: file('tls.crt') }, /hostname mismatch/]]) {
      const other = await startServer({ secure: true, env, flags: { tokenJwksUrl: `https://${host}:${port}/jwks`, apiKeys: API_KEY } });
      try {
        await waitFor(() => /TLS handshake with \S+ failed/.test(other.logs()), { timeout: 10000, message: `a TLS failure for ${host} in the log` });
        assert.match(other.logs(), why);
        assert.match(other.logs(), /no keys from it yet, retrying/);
        await refused(other, token('--key', file('ec.pem'), '--kid', 'k2', '--admin'));
        // A Centrifuge client is told to retry (keys may come with the next fetch), not disconnected for good (3500).
        const cf = await WsClient.connect(`${other.ws}/connection/websocket`);
        try {
          cf.send({ id: 1, connect: { token: token('--key', file('ec.pem'), '--kid', 'k2', '--admin') } });
          const reply = await cf.waitFor((m) => m.id === 1);
          assert.deepEqual(reply.error && { code: reply.error.code, temporary: reply.error.temporary }, { code: 100, temporary: true });
        } finally {
          cf.close();
        }
      } finally {
        await other.stop();
      }
    }
  });
});
