'use strict';
// GET /metrics in Prometheus conventions: the publish-to-write (one delivery in 8) and fan-out histograms fill as events are delivered
// (cumulative buckets, +Inf equal to _count), disconnects are counted by reason, and build, broker and process
// metrics are there and sane. The text is well formed line by line, and the reply's Content-Length is exact.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startServer } = require('./lib/server');
const { publishOk, request } = require('./lib/http');
const { WsClient } = require('./lib/ws');
const { uniq, waitFor } = require('./lib/util');

/** Parses the exposition text into {name{labels}: value}, asserting every line's shape. */
function parse(text) {
  const out = {};
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('# HELP ') || line.startsWith('# TYPE '))
      continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (-?[0-9.e+]+|\+Inf|NaN)$/);
    assert.ok(m, `a sample line: ${JSON.stringify(line)}`);
    out[m[1]] = Number(m[2]);
  }
  return out;
}

describe('/metrics', { timeout: 30000 }, () => {
  let srv;
  before(async () => { srv = await startServer(); });
  after(async () => {
    if (srv)
      await srv.stop();
  });
  const scrape = async () => {
    const r = await request(srv.port, { path: '/metrics' });
    assert.equal(r.status, 200);
    assert.equal(Number(r.headers['content-length']), Buffer.byteLength(r.text), 'an exact Content-Length');
    return parse(r.text);
  };

  it('fills the publish-to-write and fan-out histograms as events are delivered', async () => {
    const ch = `incidents.${uniq('m')}`;
    const c = await WsClient.connect(`${srv.ws}/ws?channels=${ch}`);
    await c.waitFor((m) => m.type === 'subscribed');
    const before = await scrape();
    for (let i = 0; i < 160; i++)
      await publishOk(srv, { type: 'incident.created', channels: [ch] });
    await c.waitEvents(160);
    // one write in 8 is looked at, and the publishes' replies are writes too: some 10 of the 160 deliveries are sampled
    const m = await waitFor(async () => {
      const s = await scrape();
      return s.realtime_publish_to_write_seconds_count >= before.realtime_publish_to_write_seconds_count + 5 ? s : null;
    }, { message: 'publish-to-write samples of the 160 deliveries' });
    for (const h of ['realtime_publish_to_write_seconds', 'realtime_fanout_seconds']) {
      const buckets = Object.keys(m).filter((k) => k.startsWith(`${h}_bucket{`));
      assert.equal(buckets.length, 19, `${h}: 18 bounds and +Inf`);
      let prev = 0;
      for (const k of buckets) {
        assert.ok(m[k] >= prev, `${h}: cumulative buckets (${k})`);
        prev = m[k];
      }
      assert.equal(m[`${h}_bucket{le="+Inf"}`], m[`${h}_count`]);
      assert.ok(m[`${h}_sum`] >= 0);
    }
    assert.ok(m.realtime_fanout_seconds_count >= before.realtime_fanout_seconds_count + 160, 'every event fanned out, per worker');
    assert.ok(m.realtime_publish_to_write_seconds_sum / m.realtime_publish_to_write_seconds_count < 1, 'loopback deliveries take well under a second');
    c.close();
    await waitFor(async () => (await scrape())['realtime_disconnects_total{reason="client"}'] >= 1,
      { message: 'the closed client counted as reason="client"' });
  });

  it('says which build runs, whether the broker is up, and the process figures', async () => {
    const m = await scrape();
    assert.equal(m['realtime_build_info{version="0.1.0"}'], 1);
    assert.equal(m['realtime_broker_up{broker="memory"}'], 1);
    assert.ok(m.realtime_history_events >= 160 && m.realtime_history_bytes > m.realtime_history_events * 100,
      'history holds the events published above, with their JSON bytes');
    assert.ok(m.process_resident_memory_bytes > 1 << 20);
    assert.ok(m.process_open_fds > 3 && m.process_open_fds < m.process_max_fds);
    assert.ok(Math.abs(m.process_start_time_seconds - Date.now() / 1000) < 120, 'started moments ago');
    assert.ok(m.process_cpu_seconds_total >= 0);
    for (const reason of ['client', 'connection_lost', 'shutdown', 'slow_consumer', 'pong_timeout', 'rate_limit', 'protocol_error',
      'message_too_big', 'token', 'other'])
      assert.ok(`realtime_disconnects_total{reason="${reason}"}` in m, reason);
  });

  it('counts a server-side close by its reason', async () => {
    const c = await WsClient.connect(`${srv.ws}/ws`);
    c.send('x'.repeat(100000)); // over max_message_bytes: closed 1009
    await c.waitClose();
    await waitFor(async () => (await scrape())['realtime_disconnects_total{reason="message_too_big"}'] >= 1,
      { message: 'reason="message_too_big"' });
  });
});
