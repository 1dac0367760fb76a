'use strict';
// A delaying TCP proxy, to put a far-away service (Redis) behind a loopback port.

const net = require('node:net');

/**
 * A TCP proxy on 127.0.0.1 that forwards to target after delay ms in each direction, keeping the byte order
 * (timers of equal delay fire in the order they were set). Resolves {port, close()}.
 */
function startDelayProxy(target, delay) {
  const sockets = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: '127.0.0.1', port: target });
    sockets.add(client);
    sockets.add(upstream);
    const pipe = (from, to) => {
      from.on('data', (d) => setTimeout(() => { if (!to.destroyed) to.write(d); }, delay));
      from.on('end', () => setTimeout(() => to.end(), delay));
      from.on('error', () => to.destroy());
      from.on('close', () => {
        sockets.delete(from);
        setTimeout(() => to.destroy(), delay);
      });
    };
    pipe(client, upstream);
    pipe(upstream, client);
  });
  return new Promise((resolve) => {
    server.listen({ host: '127.0.0.1', port: 0 }, () => resolve({
      port: server.address().port,
      close() {
        for (const s of sockets)
          s.destroy();
        return new Promise((r) => server.close(() => r()));
      },
    }));
  });
}

module.exports = { startDelayProxy };
