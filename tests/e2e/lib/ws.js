'use strict';
// WebSocket clients: WsClient wraps the `ws` package and collects every message (parsed JSON); RawWs speaks the
// protocol over a bare TCP socket so tests can send what a well-behaved library never would (unmasked frames,
// bad UTF-8) and can stop reading altogether.

const crypto = require('node:crypto');
const net = require('node:net');
const WebSocket = require('ws');
const { waitFor, withTimeout } = require('./util');

class WsClient {
  /** Connects to url; resolves once open. Rejects with err.status set when the server refuses the upgrade. */
  static connect(url, { timeout = 5000, headers } = {}) {
    return new Promise((resolve, reject) => {
      const c = new WsClient(url, headers);
      const timer = setTimeout(() => {
        c.ws.terminate();
        reject(new Error(`WebSocket ${url}: not open after ${timeout} ms`));
      }, timeout);
      c.ws.once('open', () => {
        clearTimeout(timer);
        resolve(c);
      });
      c.ws.once('unexpected-response', (req, res) => {
        clearTimeout(timer);
        const chunks = [];
        res.on('data', (d) => chunks.push(d));
        res.on('end', () => {
          const e = new Error(`WebSocket ${url}: HTTP ${res.statusCode} ${Buffer.concat(chunks)}`);
          e.status = res.statusCode;
          e.body = Buffer.concat(chunks).toString();
          reject(e);
        });
        res.on('error', () => {});
      });
      c.ws.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
  }

  constructor(url, headers) {
    this.url = url;
    this.msgs = [];
    this.pings = 0;
    this.errors = [];
    this.closeInfo = null;
    this.ws = new WebSocket(url, { headers, maxPayload: 64 << 20 });
    this.ws.on('message', (data, isBinary) => {
      const text = data.toString('utf8');
      let m;
      try {
        m = JSON.parse(text);
      } catch {
        m = { unparsed: text, binary: isBinary };
      }
      this.msgs.push(m);
    });
    this.ws.on('ping', () => { this.pings += 1; });
    this.ws.on('error', (e) => this.errors.push(e));
    this.closed = new Promise((resolve) => {
      this.ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString('utf8') };
        resolve(this.closeInfo);
      });
    });
  }

  send(obj) {
    this.ws.send(typeof obj === 'string' || Buffer.isBuffer(obj) ? obj : JSON.stringify(obj));
  }

  /** Resolves the first received message (from the start) for which pred(msg) is true. */
  waitFor(pred, { timeout = 5000, message = 'a matching message' } = {}) {
    return waitFor(() => this.msgs.find(pred), { timeout, interval: 5, message: `${message} on ${this.url}; got ${this.summary()}` });
  }

  /** Resolves the first message of the given type (and matching pred, when given). */
  waitType(type, pred = () => true, opts = {}) {
    return this.waitFor((m) => m.type === type && pred(m), { message: `a "${type}" message`, ...opts });
  }

  /** The events received so far (the `event` member of every {"type":"event"} message). */
  events() {
    return this.msgs.filter((m) => m.type === 'event').map((m) => m.event);
  }

  /** Waits until at least n events arrived; returns them all. */
  async waitEvents(n, { timeout = 5000 } = {}) {
    await waitFor(() => this.events().length >= n, { timeout, interval: 5, message: `${n} events on ${this.url} (have ${this.events().length}: ${this.summary()})` });
    return this.events();
  }

  /** Subscribes and waits for the matching "subscribed" or "error" reply, which is returned. */
  async subscribe(sub, opts) {
    this.send({ type: 'subscribe', ...sub });
    return this.waitFor((m) => (m.type === 'subscribed' || m.type === 'error') && m.id === sub.id,
      { message: `reply to subscribe ${sub.id}`, ...opts });
  }

  summary() {
    const s = JSON.stringify(this.msgs.slice(-5));
    return `${this.msgs.length} messages, last: ${s.length > 600 ? `${s.slice(0, 600)}…` : s}`;
  }

  /** Waits for the close; resolves {code, reason}. */
  waitClose(timeout = 5000) {
    return withTimeout(this.closed, timeout, `close of ${this.url}`);
  }

  close(code = 1000) {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING)
      this.ws.close(code);
  }

  terminate() {
    this.ws.terminate();
  }
}

/** Encodes one frame; masked by default (as a client must). */
function encodeFrame(opcode, payload = Buffer.alloc(0), { mask = true, fin = true, rsv = 0 } = {}) {
  const data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const len = data.length;
  const lenBytes = len < 126 ? 0 : len < 65536 ? 2 : 8;
  const head = Buffer.alloc(2 + lenBytes + (mask ? 4 : 0));
  head[0] = (fin ? 0x80 : 0) | (rsv << 4) | opcode;
  head[1] = (mask ? 0x80 : 0) | (len < 126 ? len : len < 65536 ? 126 : 127);
  if (lenBytes === 2)
    head.writeUInt16BE(len, 2);
  else if (lenBytes === 8)
    head.writeBigUInt64BE(BigInt(len), 2);
  if (!mask)
    return Buffer.concat([head, data]);
  const key = crypto.randomBytes(4);
  key.copy(head, 2 + lenBytes);
  const out = Buffer.alloc(len);
  for (let i = 0; i < len; i++)
    out[i] = data[i] ^ key[i & 3];
  return Buffer.concat([head, out]);
}

/**
 * A WebSocket client on a raw TCP socket. RawWs.connect(port, path) does the handshake and resolves the client.
 * frames: every frame received [{opcode, fin, payload}]; texts(): parsed JSON of text frames; closeCode and
 * closeReason once a close frame arrived; ended once the TCP connection closed. autoPong answers pings.
 */
class RawWs {
  static connect(port, path = '/ws', { timeout = 5000, autoPong = true, readable = true } = {}) {
    return new Promise((resolve, reject) => {
      const c = new RawWs(port, autoPong);
      const key = crypto.randomBytes(16).toString('base64');
      const timer = setTimeout(() => {
        c.sock.destroy();
        reject(new Error(`raw WebSocket ${path}: no handshake reply after ${timeout} ms`));
      }, timeout);
      let head = Buffer.alloc(0);
      const onData = (d) => {
        head = Buffer.concat([head, d]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0)
          return;
        clearTimeout(timer);
        c.sock.off('data', onData);
        const status = head.subarray(0, end).toString('latin1');
        if (!/^HTTP\/1\.1 101 /.test(status)) {
          c.sock.destroy();
          reject(new Error(`raw WebSocket ${path}: handshake refused: ${status.split('\r\n')[0]}`));
          return;
        }
        const expect = crypto.createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
        if (!status.toLowerCase().includes(`sec-websocket-accept: ${expect.toLowerCase()}`)) {
          c.sock.destroy();
          reject(new Error(`raw WebSocket ${path}: wrong Sec-WebSocket-Accept in ${status}`));
          return;
        }
        c.rest = head.subarray(end + 4);
        if (readable) {
          c.sock.on('data', (x) => c.onData(x));
          c.onData(Buffer.alloc(0));
        } else {
          c.sock.pause();
        }
        resolve(c);
      };
      c.sock.on('data', onData);
      c.sock.on('connect', () => {
        c.sock.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\n` +
          `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
      });
      c.sock.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
  }

  constructor(port, autoPong) {
    this.autoPong = autoPong;
    this.frames = [];
    this.rest = Buffer.alloc(0);
    this.closeCode = null;
    this.closeReason = null;
    this.sock = net.connect({ host: '127.0.0.1', port });
    this.sock.setNoDelay(true);
    this.ended = new Promise((resolve) => this.sock.on('close', () => resolve()));
    this.isEnded = false;
    this.sock.on('close', () => { this.isEnded = true; });
    this.sock.on('error', () => {});
  }

  onData(d) {
    let buf = Buffer.concat([this.rest, d]);
    for (;;) {
      if (buf.length < 2)
        break;
      const fin = (buf[0] & 0x80) !== 0;
      const opcode = buf[0] & 0x0f;
      const masked = (buf[1] & 0x80) !== 0;
      let len = buf[1] & 0x7f;
      let p = 2;
      if (len === 126) {
        if (buf.length < 4)
          break;
        len = buf.readUInt16BE(2);
        p = 4;
      } else if (len === 127) {
        if (buf.length < 10)
          break;
        len = Number(buf.readBigUInt64BE(2));
        p = 10;
      }
      if (masked)
        p += 4;
      if (buf.length < p + len)
        break;
      const payload = Buffer.from(buf.subarray(p, p + len));
      this.frames.push({ opcode, fin, masked, payload });
      if (opcode === 0x8) {
        this.closeCode = len >= 2 ? payload.readUInt16BE(0) : 1005;
        this.closeReason = payload.subarray(2).toString('utf8');
      } else if (opcode === 0x9 && this.autoPong && !this.sock.destroyed) {
        this.sock.write(encodeFrame(0xA, payload));
      }
      buf = buf.subarray(p + len);
    }
    this.rest = buf;
  }

  sendFrame(opcode, payload, opts) {
    this.sock.write(encodeFrame(opcode, payload, opts));
  }

  sendText(text, opts) {
    this.sendFrame(0x1, Buffer.from(text), opts);
  }

  sendRaw(bytes) {
    this.sock.write(bytes);
  }

  /** Parsed JSON of every text frame received. */
  texts() {
    return this.frames.filter((f) => f.opcode === 0x1).map((f) => {
      try {
        return JSON.parse(f.payload.toString('utf8'));
      } catch {
        return { unparsed: f.payload.toString('utf8') };
      }
    });
  }

  /** Waits for a close frame from the server; resolves {code, reason}. */
  async waitCloseFrame(timeout = 5000) {
    await waitFor(() => this.closeCode !== null || this.isEnded, { timeout, message: 'a close frame' });
    return { code: this.closeCode, reason: this.closeReason };
  }

  destroy() {
    this.sock.destroy();
  }
}

module.exports = { WsClient, RawWs, encodeFrame };
