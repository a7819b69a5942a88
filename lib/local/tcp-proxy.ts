// A loopback TCP proxy in front of a local database server: it adds a network round trip to every
// exchange (`roundTripMs` on the way to the server, order kept), counts what crosses it, and can cut every open
// connection at once (a network failure or a server-side kill, as the client sees it). The benchmark uses
// it for a database across an availability zone; the chaos suite for dropped connections. Development,
// benchmarks and tests only; it listens on 127.0.0.1.

import type { AddressInfo } from 'node:net';
import { createServer, type Socket, connect as tcpConnect } from 'node:net';

export interface TcpProxyCounts {
  /** Connections accepted since the last reset. */
  connections: number;
  /** Chunks the clients sent (about one per statement or protocol message batch) and the server sent back. */
  clientChunks: number;
  serverChunks: number;
  clientBytes: number;
  serverBytes: number;
}

export interface TcpProxy {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** Added to every request/response exchange, ms (may be changed between measurements). */
  roundTripMs: number;
  /** `url` (postgresql://…, mysql://…) with its host and port replaced by this proxy's. */
  proxiedUrl(url: string): string;
  counts(): TcpProxyCounts;
  resetCounts(): void;
  /** Destroys every open connection in both directions; new connections are still accepted. */
  dropConnections(): number;
  stop(): Promise<void>;
}

export interface TcpProxyOptions {
  target: { host: string; port: number };
  roundTripMs?: number;
}

export async function startTcpProxy(options: TcpProxyOptions): Promise<TcpProxy> {
  const open = new Set<Socket>();
  let counts = emptyCounts();
  const server = createServer((client) => {
    counts.connections += 1;
    const upstream = tcpConnect(options.target.port, options.target.host);
    // No Nagle on either leg: the drivers write a statement in several chunks (Parse, Bind, Execute, Sync),
    // and a small chunk held back until the previous one is acknowledged met the server's delayed ACK,
    // about 40 ms, where the round trip being simulated is 1 ms.
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    open.add(client);
    open.add(upstream);
    const closeBoth = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on('error', closeBoth);
    upstream.on('error', closeBoth);
    client.on('close', closeBoth);
    upstream.on('close', closeBoth);
    relay(
      client,
      upstream,
      (bytes) => {
        counts.clientChunks += 1;
        counts.clientBytes += bytes;
      },
      true,
    );
    relay(
      upstream,
      client,
      (bytes) => {
        counts.serverChunks += 1;
        counts.serverBytes += bytes;
      },
      false,
    );
  });
  // The whole round trip is added on the way to the server (a timer per direction would round each half up
  // to a millisecond); equal delays fire in order, so the stream stays intact.
  const relay = (from: Socket, to: Socket, count: (bytes: number) => void, delayed: boolean) => {
    from.on('data', (chunk: Buffer) => {
      count(chunk.length);
      const delay = delayed ? proxy.roundTripMs : 0;
      if (delay <= 0) {
        if (!to.destroyed) to.write(chunk);
        return;
      }
      setTimeout(() => {
        if (!to.destroyed) to.write(chunk);
      }, delay);
    });
    from.on('end', () => {
      const delay = delayed ? proxy.roundTripMs : 0;
      setTimeout(() => to.end(), Math.max(0, delay));
    });
  };
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const proxy: TcpProxy = {
    host: '127.0.0.1',
    port,
    roundTripMs: options.roundTripMs ?? 0,
    proxiedUrl(url) {
      const parsed = new URL(url);
      parsed.hostname = '127.0.0.1';
      parsed.port = String(port);
      return parsed.toString();
    },
    counts: () => ({ ...counts }),
    resetCounts() {
      counts = emptyCounts();
    },
    dropConnections() {
      const n = open.size;
      for (const socket of open) socket.destroy();
      open.clear();
      return n;
    },
    async stop() {
      proxy.dropConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return proxy;
}

function emptyCounts(): TcpProxyCounts {
  return { connections: 0, clientChunks: 0, serverChunks: 0, clientBytes: 0, serverBytes: 0 };
}
