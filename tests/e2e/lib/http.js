'use strict';
// HTTP helpers: ordinary requests over node's http module (one fresh connection each), the publish helper, and
// a raw TCP exchange with a minimal HTTP/1.1 response parser for the tests that need byte-level control.

const http = require('node:http');
const net = require('node:net');
const assert = require('node:assert/strict');

/**
 * One request on its own connection. Resolves {status, headers, text, json} (json is the parsed body or undefined).
 * Never rejects on an HTTP status; rejects on a network error or after timeout ms.
 */
function request(port, { method = 'GET', path = '/', headers = {}, body, timeout = 10000, agent } = {}) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : (typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body));
    const h = { ...headers };
    if (data !== undefined && h['Content-Length'] === undefined && h['Transfer-Encoding'] === undefined)
      h['Content-Length'] = Buffer.byteLength(data);
    const req = http.request({ host: '127.0.0.1', port, method, path, headers: h, agent: agent || false, timeout }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`HTTP ${method} ${path}: timed out after ${timeout} ms`)));
    req.on('error', reject);
    if (data !== undefined)
      req.write(data);
    req.end();
  });
}

/** GET path, assert 200, return the parsed JSON body. */
async function getJson(srv, path, headers = {}) {
  const r = await request(srv.port, { path, headers });
  assert.equal(r.status, 200, `GET ${path}: ${r.status} ${r.text}`);
  assert.ok(r.json !== undefined, `GET ${path}: body is not JSON: ${r.text}`);
  return r.json;
}

/** POST /api/events with a JSON body (an event, {events:[…]}, or a raw string). Resolves {status, json, text, headers}. */
function publish(srv, payload, { headers = {}, agent } = {}) {
  return request(srv.port, {
    method: 'POST', path: '/api/events', body: payload, agent,
    headers: { 'Content-Type': 'application/json', ...(srv.apiHeaders || {}), ...headers },
  });
}

/** Publishes and asserts 200; returns the response JSON ({id,seq} or {events:[…]}). */
async function publishOk(srv, payload, opts) {
  const r = await publish(srv, payload, opts);
  assert.equal(r.status, 200, `POST /api/events: ${r.status} ${r.text}`);
  return r.json;
}

/**
 * Raw TCP exchange: connects, writes each chunk (a string/Buffer, or a number = pause in ms), and collects bytes
 * until the server closes, until(buf) is true, or timeout ms pass. Resolves {data: Buffer, closed: bool}.
 */
function rawExchange(port, chunks, { timeout = 5000, until } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    const got = [];
    let done = false;
    const finish = (closed) => {
      if (done)
        return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ data: Buffer.concat(got), closed });
    };
    const timer = setTimeout(() => finish(false), timeout);
    sock.on('data', (d) => {
      got.push(d);
      if (until && until(Buffer.concat(got)))
        finish(false);
    });
    sock.on('end', () => finish(true));
    sock.on('close', () => finish(true));
    sock.on('error', (e) => {
      if (e.code === 'ECONNRESET' || e.code === 'EPIPE')
        finish(true);
      else if (!done) {
        done = true;
        clearTimeout(timer);
        reject(e);
      }
    });
    sock.on('connect', async () => {
      for (const c of chunks) {
        if (done)
          return;
        if (typeof c === 'number')
          await new Promise((r) => setTimeout(r, c));
        else
          sock.write(c);
      }
    });
  });
}

/**
 * Parses as many complete HTTP/1.1 responses as buf holds. Returns {responses: [{status, reason, headers (lower-case
 * keys), body: Buffer}], rest: Buffer}. Understands Content-Length and chunked bodies; a response with neither
 * (e.g. an event stream) takes the rest of the buffer and ends the parse.
 */
function parseResponses(buf) {
  const responses = [];
  let off = 0;
  while (off < buf.length) {
    const end = buf.indexOf('\r\n\r\n', off);
    if (end < 0)
      break;
    const head = buf.subarray(off, end).toString('latin1').split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3}) ?(.*)$/.exec(head[0]);
    if (!m)
      throw new Error(`bad status line: ${JSON.stringify(head[0])}`);
    const headers = {};
    for (const line of head.slice(1)) {
      const i = line.indexOf(':');
      headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    let p = end + 4;
    let body;
    if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length']);
      if (buf.length < p + n)
        break;
      body = buf.subarray(p, p + n);
      p += n;
    } else if (/chunked/i.test(headers['transfer-encoding'] || '')) {
      const parts = [];
      let complete = false;
      for (;;) {
        const le = buf.indexOf('\r\n', p);
        if (le < 0)
          break;
        const size = parseInt(buf.subarray(p, le).toString('latin1'), 16);
        if (buf.length < le + 2 + size + 2)
          break;
        parts.push(buf.subarray(le + 2, le + 2 + size));
        p = le + 2 + size + 2;
        if (size === 0) {
          complete = true;
          break;
        }
      }
      if (!complete)
        break;
      body = Buffer.concat(parts);
    } else {
      body = buf.subarray(p);
      p = buf.length;
    }
    responses.push({ status: Number(m[1]), reason: m[2], headers, body });
    off = p;
  }
  return { responses, rest: buf.subarray(off) };
}

module.exports = { request, getJson, publish, publishOk, rawExchange, parseResponses };
