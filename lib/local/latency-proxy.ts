// A loopback HTTP proxy that adds a fixed delay to every request before forwarding it, to make the CPU-bound
// local services (DynamoDB Local, the SQS emulator) behave like the latency-bound real ones, where a request
// costs a network round trip of a few milliseconds. It also counts requests by operation (X-Amz-Target for
// the JSON protocols, `Action` for the query protocol) and, for DynamoDB writes, the items they write, so
// the benchmark can derive a cost model. Development and benchmarks only.
import { Agent, createServer, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What one proxy saw since its last reset. */
export interface RequestCounts {
  /** Requests by operation name (`TransactWriteItems`, `SendMessageBatch`, ...). */
  readonly operations: Record<string, number>;
  /** DynamoDB write capacity units by the capacity rules (see `writeUnits`). */
  readonly writeUnits: number;
  /** DynamoDB items written, by operation. */
  readonly itemsWritten: Record<string, number>;
  readonly requests: number;
}

export interface LatencyProxy {
  /** `http://127.0.0.1:<port>`: use it as the endpoint of an SDK client or AWS_ENDPOINT_URL_* variable. */
  readonly endpoint: string;
  readonly port: number;
  /** Delay added to each request, ms (may be changed between measurements). */
  delayMs: number;
  /** Stored item size assumed for Update and Delete writes (see `writeUnits`). */
  updateItemBytes: number;
  /** `url` with its origin replaced by this proxy's. */
  proxiedUrl(url: string): string;
  counts(): RequestCounts;
  resetCounts(): void;
  stop(): Promise<void>;
}

export interface LatencyProxyOptions {
  /** Where to forward, e.g. the DynamoDB Local endpoint. */
  target: string;
  delayMs: number;
  /** Parse DynamoDB write requests to count items and write units (costs a JSON parse per write). */
  countDynamoDbWrites?: boolean;
  /**
   * SQS: queue URLs pointing at this proxy are rewritten to the target's origin in request bodies. The SQS
   * emulator finds queues by their exact URL, and the SDK sends each request to its QueueUrl's origin, so
   * clients behind the proxy are given queue URLs with the proxy's origin (see `proxiedUrl`).
   */
  rewriteQueueUrls?: boolean;
  /** Size of the stored item an Update or Delete writes, for `writeUnits` (default 1 KB). */
  updateItemBytes?: number;
}

const KB = 1024;

/**
 * The size of an item by DynamoDB's rules: attribute name lengths plus value sizes (strings: UTF-8 bytes;
 * numbers: about 1 byte per 2 significant digits + 1; booleans and nulls: 1; lists and maps: 3 + contents).
 */
export function itemSizeBytes(item: Record<string, unknown>): number {
  let size = 0;
  for (const [name, value] of Object.entries(item))
    size += Buffer.byteLength(name, 'utf8') + valueSize(value);
  return size;
}

function valueSize(value: unknown): number {
  if (typeof value !== 'object' || value === null) return 0;
  const v = value as Record<string, unknown>;
  if (typeof v.S === 'string') return Buffer.byteLength(v.S, 'utf8');
  if (typeof v.N === 'string') {
    const digits = v.N.replace(/^-/, '').replace(/e.*$/i, '').replace('.', '').replace(/^0+/, '');
    return Math.ceil(Math.max(1, digits.length) / 2) + 1;
  }
  if (typeof v.B === 'string') return Buffer.from(v.B, 'base64').length;
  if ('BOOL' in v || 'NULL' in v) return 1;
  if (Array.isArray(v.SS)) return v.SS.reduce((n: number, s) => n + Buffer.byteLength(String(s), 'utf8'), 0);
  if (Array.isArray(v.NS)) return v.NS.reduce((n: number, s) => n + valueSize({ N: s }), 0);
  if (Array.isArray(v.L)) return 3 + v.L.reduce((n: number, e) => n + 1 + valueSize(e), 0);
  if (typeof v.M === 'object' && v.M !== null) return 3 + itemSizeBytes(v.M as Record<string, unknown>);
  return 0;
}

/**
 * Write units of one DynamoDB write request by the capacity rules: a standard write costs 1 WCU per KB of
 * the item (rounded up), a transactional write 2. The item size of a Put is known from the request; an
 * Update's or Delete's size is the stored item's, which the request does not carry: `updateItemBytes`
 * stands for it (the benchmark passes the size of its seeded items after the failover update).
 */
export function writeUnits(
  operation: string,
  body: unknown,
  updateItemBytes: number,
): { units: number; items: number } {
  const units = (bytes: number, factor: number) => factor * Math.max(1, Math.ceil(bytes / KB));
  const request = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  const putBytes = (item: unknown) => itemSizeBytes((item ?? {}) as Record<string, unknown>);
  switch (operation) {
    case 'PutItem':
      return { units: units(putBytes(request.Item), 1), items: 1 };
    case 'UpdateItem':
    case 'DeleteItem':
      return { units: units(updateItemBytes, 1), items: 1 };
    case 'BatchWriteItem': {
      let total = 0;
      let items = 0;
      for (const requests of Object.values((request.RequestItems ?? {}) as Record<string, unknown[]>)) {
        for (const r of requests) {
          const w = r as { PutRequest?: { Item?: unknown }; DeleteRequest?: unknown };
          total += w.PutRequest ? units(putBytes(w.PutRequest.Item), 1) : units(updateItemBytes, 1);
          items += 1;
        }
      }
      return { units: total, items };
    }
    case 'TransactWriteItems': {
      let total = 0;
      let items = 0;
      for (const t of (request.TransactItems ?? []) as Array<Record<string, { Item?: unknown }>>) {
        // A ConditionCheck is a transactional read (2 RCU), not a write.
        if (t.ConditionCheck) continue;
        total += t.Put ? units(putBytes(t.Put.Item), 2) : units(updateItemBytes, 2);
        items += 1;
      }
      return { units: total, items };
    }
    default:
      return { units: 0, items: 0 };
  }
}

const WRITE_OPERATIONS = new Set([
  'PutItem',
  'UpdateItem',
  'DeleteItem',
  'BatchWriteItem',
  'TransactWriteItems',
]);

function operationOf(headers: IncomingHttpHeaders, body: Buffer): string {
  const target = headers['x-amz-target'];
  if (typeof target === 'string') return target.slice(target.lastIndexOf('.') + 1);
  const action = /(?:^|&)Action=([A-Za-z]+)/.exec(body.toString('latin1'));
  return action?.[1] ?? 'unknown';
}

/** Starts a delaying, counting proxy on 127.0.0.1 (a free port). `updateItemBytes`: see `writeUnits`. */
export async function startLatencyProxy(options: LatencyProxyOptions): Promise<LatencyProxy> {
  const target = new URL(options.target);
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  let operations: Record<string, number> = {};
  let itemsWritten: Record<string, number> = {};
  let units = 0;
  let requests = 0;
  const server = createServer((incoming, outgoing) => {
    const chunks: Buffer[] = [];
    incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
    incoming.on('end', () => {
      const arrived = Date.now();
      let body = Buffer.concat(chunks);
      const headers = { ...incoming.headers };
      if (options.rewriteQueueUrls) {
        const text = body.toString('utf8');
        const rewritten = text
          .replaceAll(proxy.endpoint, target.origin)
          .replaceAll(encodeURIComponent(proxy.endpoint), encodeURIComponent(target.origin));
        if (rewritten !== text) {
          body = Buffer.from(rewritten, 'utf8');
          headers['content-length'] = String(body.length);
        }
      }
      const operation = operationOf(incoming.headers, body);
      requests += 1;
      operations[operation] = (operations[operation] ?? 0) + 1;
      if (options.countDynamoDbWrites && WRITE_OPERATIONS.has(operation)) {
        try {
          const counted = writeUnits(
            operation,
            JSON.parse(body.toString('utf8')),
            options.updateItemBytes ?? KB,
          );
          units += counted.units;
          itemsWritten[operation] = (itemsWritten[operation] ?? 0) + counted.items;
        } catch {
          // Not JSON: not ours to count; the service will answer it.
        }
      }
      const forward = () => {
        const upstream = httpRequest(
          {
            host: target.hostname,
            port: target.port,
            method: incoming.method,
            path: incoming.url,
            headers,
            agent,
          },
          (response) => {
            outgoing.writeHead(response.statusCode ?? 502, response.headers);
            response.pipe(outgoing);
            if (process.env.PROXY_TRACE)
              response.on('end', () =>
                process.stderr.write(`${operation} ${Date.now() - arrived} ms ${new Date().toISOString()}\n`),
              );
          },
        );
        upstream.on('error', (error) => {
          if (!outgoing.headersSent) outgoing.writeHead(502, { 'content-type': 'text/plain' });
          outgoing.end(`latency proxy: ${error.message}`);
        });
        upstream.end(body);
      };
      if (proxy.delayMs > 0) setTimeout(forward, proxy.delayMs);
      else forward();
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const proxyOrigin = `http://127.0.0.1:${port}`;
  const proxy: LatencyProxy = {
    endpoint: proxyOrigin,
    port,
    delayMs: options.delayMs,
    updateItemBytes: options.updateItemBytes ?? KB,
    proxiedUrl: (url) => {
      const parsed = new URL(url);
      return `${proxyOrigin}${parsed.pathname}${parsed.search}`;
    },
    counts: () => ({
      operations: { ...operations },
      itemsWritten: { ...itemsWritten },
      writeUnits: units,
      requests,
    }),
    resetCounts() {
      operations = {};
      itemsWritten = {};
      units = 0;
      requests = 0;
    },
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  };
  return proxy;
}
