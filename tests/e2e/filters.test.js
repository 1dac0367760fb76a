'use strict';
// Content filters: the simple form (JSON `filters` on /ws, `filter.<key>=` in the query on /ws and /events) and
// the tree form (JSON `filter`, query `filter=<JSON>`), per the rules in DESIGN.md.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startServer } = require('./lib/server');
const { publishOk } = require('./lib/http');
const { WsClient } = require('./lib/ws');
const { SseClient } = require('./lib/sse');
const { uniq, waitFor } = require('./lib/util');

// The candidate events, by label.
const FIXTURES = {
  A: { type: 'incident.created', data: { severity: 'SEV-1', priority: 1, service: { team: 'core' }, flag: true } },
  B: { type: 'incident.updated', data: { severity: 'SEV-2', priority: 2, service: { team: 'edge' }, flag: false } },
  C: { type: 'sla.breach', data: { severity: 'SEV-3', priority: '1' } },
  D: { type: 'incident.created', data: { status: 'open' } },
  E: { type: 'timeline.updated', data: null },
  F: { type: 'incident.created', data: { severity: 'SEV-10', priority: 10, title: 'disk full on db-1' } },
};
const LABELS = Object.keys(FIXTURES);

// [name, subscribe fields, expected labels, candidate labels (default all)]
const JSON_CASES = [
  ['simple: one string', { filters: { severity: 'SEV-1' } }, ['A']],
  ['simple: array is any-of', { filters: { severity: ['SEV-1', 'SEV-2'] } }, ['A', 'B']],
  ['simple: type key', { filters: { type: 'incident.created' } }, ['A', 'D', 'F']],
  ['simple: keys AND', { filters: { type: ['incident.created', 'sla.breach'], severity: ['SEV-3', 'SEV-10'] } }, ['C', 'F']],
  ['simple: AND with no match', { filters: { severity: 'SEV-1', priority: 2 } }, []],
  ['simple: number matches a number only', { filters: { priority: 1 } }, ['A']],
  ['simple: "1" matches a string only', { filters: { priority: '1' } }, ['C']],
  ['simple: bool true', { filters: { flag: true } }, ['A']],
  ['simple: bool false', { filters: { flag: false } }, ['B']],
  ['simple: dotted path into data', { filters: { 'service.team': 'core' } }, ['A']],
  ['simple: missing field does not match', { filters: { status: ['open', 'closed'] } }, ['D']],
  ['tree: eq', { filter: { key: 'severity', cmp: 'eq', val: 'SEV-2' } }, ['B']],
  ['tree: eq compares as text (number 1 and "1")', { filter: { key: 'priority', cmp: 'eq', val: '1' } }, ['A', 'C']],
  ['tree: in', { filter: { key: 'severity', cmp: 'in', vals: ['SEV-1', 'SEV-3'] } }, ['A', 'C']],
  ['tree: nin (among events that have the key)', { filter: { key: 'severity', cmp: 'nin', vals: ['SEV-1', 'SEV-3'] } }, ['B', 'F'], ['A', 'B', 'C', 'F']],
  ['tree: neq (among events that have the key)', { filter: { key: 'severity', cmp: 'neq', val: 'SEV-1' } }, ['B', 'C', 'F'], ['A', 'B', 'C', 'F']],
  ['tree: ex', { filter: { key: 'title', cmp: 'ex' } }, ['F']],
  ['tree: nex', { filter: { key: 'severity', cmp: 'nex' } }, ['D', 'E']],
  ['tree: sw / ew / ct', { filter: { op: 'and', nodes: [{ key: 'title', cmp: 'sw', val: 'disk' }, { key: 'title', cmp: 'ew', val: 'db-1' }, { key: 'title', cmp: 'ct', val: 'full' }] } }, ['F']],
  ['tree: ct without match', { filter: { key: 'title', cmp: 'ct', val: 'memory' } }, []],
  ['tree: lt compares numerically (10 is not < 5)', { filter: { op: 'and', nodes: [{ key: 'type', cmp: 'eq', val: 'incident.created' }, { key: 'priority', cmp: 'lt', val: '5' }] } }, ['A']],
  ['tree: gte numeric', { filter: { op: 'and', nodes: [{ key: 'type', cmp: 'sw', val: 'incident.' }, { key: 'priority', cmp: 'gte', val: '2' }] } }, ['B', 'F']],
  ['tree: gt / lte numeric', { filter: { op: 'and', nodes: [{ key: 'priority', cmp: 'gt', val: '1' }, { key: 'priority', cmp: 'lte', val: '10' }] } }, ['B', 'F']],
  ['tree: or', { filter: { op: 'or', nodes: [{ key: 'severity', cmp: 'eq', val: 'SEV-1' }, { key: 'type', cmp: 'eq', val: 'sla.breach' }] } }, ['A', 'C']],
  ['tree: not', { filter: { op: 'not', nodes: [{ key: 'type', cmp: 'sw', val: 'incident.' }] } }, ['C', 'E']],
  ['tree: dotted path', { filter: { key: 'service.team', cmp: 'eq', val: 'edge' } }, ['B']],
];

// [name, query (after channels), expected labels]
const QUERY_CASES = [
  ['query: one value', 'filter.severity=SEV-2', ['B']],
  ['query: repeated key is any-of', 'filter.severity=SEV-1&filter.severity=SEV-3', ['A', 'C']],
  ['query: number text matches number and string', 'filter.priority=1', ['A', 'C']],
  ['query: bool text', 'filter.flag=true', ['A']],
  ['query: dotted path', 'filter.service.team=edge', ['B']],
  ['query: two keys AND', 'filter.type=incident.created&filter.severity=SEV-10', ['F']],
  ['query: type', 'filter.type=sla.breach', ['C']],
  ['query: tree as filter=<JSON>', `filter=${encodeURIComponent(JSON.stringify({ op: 'or', nodes: [{ key: 'severity', cmp: 'eq', val: 'SEV-2' }, { key: 'severity', cmp: 'nex' }] }))}`, ['B', 'D', 'E']],
];

/** Publishes the candidates on ch (ids `${ch}:${label}`), then a marker on markerCh. Returns the marker id. */
async function publishCandidates(srv, ch, labels, markerCh, markerData = null) {
  const events = labels.map((l) => ({ id: `${ch}:${l}`, type: FIXTURES[l].type, channels: [ch], data: FIXTURES[l].data }));
  events.push({ id: `${ch}:marker`, type: 'system.notification', channels: [markerCh], data: markerData });
  await publishOk(srv, { events });
  return `${ch}:marker`;
}

const labelsOf = (ch, ids) => ids.filter((id) => id.startsWith(`${ch}:`) && !id.endsWith(':marker')).map((id) => id.slice(ch.length + 1));

describe('filters', { timeout: 120000 }, () => {
  let srv;
  let ws;
  // One shared /ws connection, opened by the first /ws test (so the /events tests run even when /ws fails).
  const shared = async () => {
    if (!ws) {
      ws = await WsClient.connect(`${srv.ws}/ws`);
      await ws.waitType('welcome');
    }
    return ws;
  };
  before(async () => {
    srv = await startServer();
  });
  after(async () => {
    if (ws)
      ws.terminate();
    if (srv)
      await srv.stop();
  });

  for (const [name, fields, expected, among] of JSON_CASES) {
    it(`/ws ${name}`, { timeout: 10000 }, async () => {
      await shared();
      const ch = uniq('f');
      const mch = uniq('m');
      const reply = await ws.subscribe({ id: ch, channels: [ch], ...fields });
      assert.equal(reply.type, 'subscribed', JSON.stringify(reply));
      const mreply = await ws.subscribe({ id: mch, channels: [mch] });
      assert.equal(mreply.type, 'subscribed');
      const marker = await publishCandidates(srv, ch, among || LABELS, mch);
      await ws.waitFor((m) => m.type === 'event' && m.event.id === marker);
      assert.deepEqual(labelsOf(ch, ws.events().map((e) => e.id)), expected);
      ws.send({ type: 'unsubscribe', id: ch });
      ws.send({ type: 'unsubscribe', id: mch });
      await ws.waitFor((m) => m.type === 'unsubscribed' && m.id === mch);
    });
  }

  for (const [name, query, expected] of QUERY_CASES) {
    it(`/ws ${name}`, { timeout: 10000 }, async () => {
      const ch = uniq('fq');
      const mch = uniq('mq');
      // The marker channel shares the subscription, so the marker carries data every case's filter accepts... which
      // no single datum does; use a second connection-level subscription instead.
      const c = await WsClient.connect(`${srv.ws}/ws?channels=${ch}&${query}`);
      try {
        const sub = await c.waitType('subscribed');
        assert.equal(sub.id, 'query');
        await c.subscribe({ id: 'm', channels: [mch] });
        const marker = await publishCandidates(srv, ch, LABELS, mch);
        await c.waitFor((m) => m.type === 'event' && m.event.id === marker);
        assert.deepEqual(labelsOf(ch, c.events().map((e) => e.id)), expected);
      } finally {
        c.terminate();
      }
    });
  }

  for (const [name, query, expected] of QUERY_CASES) {
    it(`/events ${name}`, { timeout: 10000 }, async () => {
      const ch = uniq('fs');
      const c = await SseClient.connect(srv.port, `/events?channels=${ch}&${query}`);
      try {
        assert.equal(c.status, 200, c.body);
        await waitFor(() => c.retry !== null);
        // SSE has one subscription: the end marker is a copy of the last expected event, published last.
        const last = FIXTURES[expected[expected.length - 1]];
        const events = LABELS.map((l) => ({ id: `${ch}:${l}`, type: FIXTURES[l].type, channels: [ch], data: FIXTURES[l].data }));
        events.push({ id: `${ch}:end`, type: last.type, channels: [ch], data: last.data });
        await publishOk(srv, { events });
        await c.waitFor((m) => m.id === `${ch}:end`);
        assert.deepEqual(labelsOf(ch, c.events().map((e) => e.id)), [...expected, 'end']);
      } finally {
        c.close();
      }
    });
  }

  it('/events with a bad filter is 400 invalid_filter', { timeout: 10000 }, async () => {
    const c = await SseClient.connect(srv.port, `/events?channels=x&filter=${encodeURIComponent('{"op":"xor"}')}`);
    assert.equal(c.status, 400);
    assert.equal(c.json.error.code, 'invalid_filter', c.body);
    const d = await SseClient.connect(srv.port, '/events?channels=x&filter=notjson');
    assert.equal(d.status, 400);
    assert.ok(['invalid_filter', 'invalid_json'].includes(d.json.error.code), d.body);
  });

  it('/ws filters match by JSON type: "3" does not match 3', { timeout: 10000 }, async () => {
    await shared();
    const ch = uniq('ft');
    const mch = uniq('mt');
    await ws.subscribe({ id: `${ch}-num`, channels: [ch], filters: { n: '3' } });
    await ws.subscribe({ id: mch, channels: [mch] });
    await publishOk(srv, { events: [{ id: `${ch}:3`, type: 'incident.created', channels: [ch], data: { n: 3 } }, { id: `${ch}:marker`, type: 'system.notification', channels: [mch] }] });
    await ws.waitFor((m) => m.type === 'event' && m.event.id === `${ch}:marker`);
    assert.deepEqual(labelsOf(ch, ws.events().map((e) => e.id)), []);
  });
});
