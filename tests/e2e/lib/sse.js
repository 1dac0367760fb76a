'use strict';
// A Server-Sent Events client over plain node http, with its own parser, so tests see every line: retry:,
// comments (": ping"), id:, event:, data:, and can send any header (Last-Event-ID).

const http = require('node:http');
const { waitFor, withTimeout } = require('./util');

class SseClient {
  /**
   * GETs path and resolves once the response head arrived: {status, headers} plus, for a 200, the live stream
   * (messages, comments, retry, raw). A non-200 response's body is read whole into `body`.
   */
  static connect(port, path, { headers = {}, timeout = 5000 } = {}) {
    return new Promise((resolve, reject) => {
      const c = new SseClient(path);
      const req = http.get({ host: '127.0.0.1', port, path, agent: false,
        headers: { Accept: 'text/event-stream', ...headers } }, (res) => {
        clearTimeout(timer);
        c.res = res;
        c.status = res.statusCode;
        c.headers = res.headers;
        res.on('error', () => {});
        res.on('close', () => c.markEnded());
        res.on('end', () => c.markEnded());
        if (res.statusCode !== 200) {
          const chunks = [];
          res.on('data', (d) => chunks.push(d));
          res.on('end', () => {
            c.body = Buffer.concat(chunks).toString('utf8');
            try {
              c.json = JSON.parse(c.body);
            } catch { /* not JSON */ }
            resolve(c);
          });
          return;
        }
        res.setEncoding('utf8');
        res.on('data', (d) => c.feed(d));
        resolve(c);
      });
      c.req = req;
      const timer = setTimeout(() => {
        req.destroy();
        reject(new Error(`SSE ${path}: no response head after ${timeout} ms`));
      }, timeout);
      req.on('error', (e) => {
        clearTimeout(timer);
        c.markEnded();
        if (c.status === undefined)
          reject(e);
      });
    });
  }

  constructor(path) {
    this.path = path;
    this.raw = '';
    this.pending = '';
    this.messages = []; // {id, event, data, json}
    this.comments = [];
    this.retry = null;
    this.lastId = null;
    this.cur = { data: [], event: null, id: null };
    this.isEnded = false;
    this.ended = new Promise((resolve) => { this.resolveEnded = resolve; });
  }

  markEnded() {
    if (!this.isEnded) {
      this.isEnded = true;
      this.resolveEnded();
    }
  }

  feed(text) {
    this.raw += text;
    this.pending += text;
    for (;;) {
      const i = this.pending.search(/\r\n|\r|\n/);
      if (i < 0)
        break;
      const eol = this.pending.startsWith('\r\n', i) ? 2 : 1;
      const line = this.pending.slice(0, i);
      this.pending = this.pending.slice(i + eol);
      this.line(line);
    }
  }

  line(line) {
    if (line === '') {
      if (this.cur.data.length > 0) {
        const data = this.cur.data.join('\n');
        let json;
        try {
          json = JSON.parse(data);
        } catch { /* keep undefined */ }
        this.messages.push({ id: this.cur.id, event: this.cur.event || 'message', data, json });
      }
      this.cur = { data: [], event: null, id: null };
      return;
    }
    if (line.startsWith(':')) {
      this.comments.push(line.slice(1).replace(/^ /, ''));
      return;
    }
    const c = line.indexOf(':');
    const field = c < 0 ? line : line.slice(0, c);
    const value = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
    if (field === 'data')
      this.cur.data.push(value);
    else if (field === 'event')
      this.cur.event = value;
    else if (field === 'id') {
      this.cur.id = value;
      this.lastId = value;
    } else if (field === 'retry')
      this.retry = Number(value);
  }

  /** The event JSONs of every message whose event: is not "reset". */
  events() {
    return this.messages.filter((m) => m.event !== 'reset').map((m) => m.json);
  }

  waitFor(pred, { timeout = 5000, message = 'a matching SSE message' } = {}) {
    return waitFor(() => this.messages.find(pred), { timeout, interval: 5, message: `${message} on ${this.path}; raw tail: ${JSON.stringify(this.raw.slice(-400))}` });
  }

  async waitEvents(n, { timeout = 5000 } = {}) {
    await waitFor(() => this.events().length >= n, { timeout, interval: 5, message: `${n} SSE events on ${this.path} (have ${this.events().length}; raw tail ${JSON.stringify(this.raw.slice(-300))})` });
    return this.events();
  }

  waitEnd(timeout = 5000) {
    return withTimeout(this.ended, timeout, `end of SSE stream ${this.path}`);
  }

  close() {
    if (this.req)
      this.req.destroy();
    this.markEnded();
  }
}

module.exports = { SseClient };
