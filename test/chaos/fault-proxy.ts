// An HTTP proxy in front of DynamoDB Local or the SQS emulator that injects the failures a real AWS
// service shows: throttling (400 ProvisionedThroughputExceeded / ThrottlingException), 500s, calls that
// hang and then drop, slow calls, and a write that was applied but whose reply was lost (the request is
// forwarded, the response read, then the client's connection is cut: the SDK retries a call that already
// happened). Decisions come from a seeded PRNG, in the order the calls arrive.
import { randomUUID } from 'node:crypto';
import { Agent, createServer, type IncomingMessage, request, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Prng } from './prng.ts';

export const faultKinds = ['throttle', 'server-error', 'timeout', 'reply-lost', 'slow'] as const;
export type FaultKind = (typeof faultKinds)[number];

export interface ServiceFaults {
  /** Probability that one call is faulted. */
  readonly rate: number;
  /** Relative weights of the fault kinds. */
  readonly kinds: Readonly<Partial<Record<FaultKind, number>>>;
  /** How long a `timeout` holds the call before cutting it, and a `slow` call's extra latency (ms). */
  readonly holdMs: readonly [number, number];
}

export type ProxyService = 'dynamodb' | 'sqs';

export interface ProxyStats {
  calls: number;
  faults: Record<FaultKind, number>;
  /** Faulted calls by operation (`X-Amz-Target` without its prefix). */
  faultedOps: Record<string, number>;
}

export interface FaultProxy {
  readonly endpoint: string;
  readonly service: ProxyService;
  /** `url` (on the upstream's origin) moved to this proxy's origin. */
  proxiedUrl(url: string): string;
  /** Inject with this policy from now on (`null`: pass everything). */
  configure(faults: ServiceFaults | null, seed: number): void;
  /** Every call fails this way for `ms` (a regional hiccup), on top of the policy. */
  outage(ms: number, kind: 'server-error' | 'timeout' | 'throttle'): void;
  /** Stops injecting (and ends an outage). Calls being held are released as they were decided. */
  heal(): void;
  stats(): ProxyStats;
  resetStats(): void;
  close(): Promise<void>;
}

export interface FaultProxyOptions {
  readonly service: ProxyService;
  /** `http://127.0.0.1:port` of the real server. */
  readonly upstream: string;
  /**
   * Rewrite this proxy's origin to the upstream's in request bodies. The SQS emulator finds a queue by its
   * exact URL, and the SDK sends an SQS call to its QueueUrl's origin: a function that must go through the
   * proxy is given queue URLs on the proxy's origin (`proxiedUrl`), turned back into the real ones here.
   */
  readonly rewriteOwnOrigin?: boolean;
}

const emptyStats = (): ProxyStats => ({
  calls: 0,
  faults: { throttle: 0, 'server-error': 0, timeout: 0, 'reply-lost': 0, slow: 0 },
  faultedOps: {},
});

function errorBody(service: ProxyService, kind: 'throttle' | 'server-error', flip: boolean): string {
  if (service === 'dynamodb') {
    const type =
      kind === 'server-error'
        ? 'com.amazonaws.dynamodb.v20120810#InternalServerError'
        : flip
          ? 'com.amazon.coral.availability#ThrottlingException'
          : 'com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException';
    return JSON.stringify({ __type: type, message: `injected ${kind}` });
  }
  const type =
    kind === 'server-error' ? 'com.amazonaws.sqs#InternalError' : 'com.amazonaws.sqs#ThrottlingException';
  return JSON.stringify({ __type: type, message: `injected ${kind}` });
}

const hopByHop = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length']);

export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const upstream = new URL(options.upstream);
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let policy: ServiceFaults | null = null;
  let rng = new Prng(1);
  let outage: { until: number; kind: 'server-error' | 'timeout' | 'throttle' } | undefined;
  let stats = emptyStats();
  let ownOrigin = '';

  const later = (ms: number, fn: () => void) => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      fn();
    }, ms);
    timers.add(timer);
  };

  const decide = (): FaultKind | undefined => {
    if (outage !== undefined) {
      if (Date.now() < outage.until) return outage.kind;
      outage = undefined;
    }
    if (policy === null || policy.rate <= 0) return undefined;
    if (!rng.chance(policy.rate)) return undefined;
    const choices = Object.entries(policy.kinds).filter(([, w]) => (w ?? 0) > 0) as Array<
      [FaultKind, number]
    >;
    return choices.length === 0 ? undefined : rng.weighted(choices);
  };

  const holdMs = () => {
    const [min, max] = policy?.holdMs ?? [200, 1_000];
    return rng.int(min, max);
  };

  const forward = (
    req: IncomingMessage,
    body: Buffer,
    onResponse: (status: number, headers: Record<string, string>, payload: Buffer) => void,
    onError: () => void,
  ) => {
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (v !== undefined && !hopByHop.has(k)) headers[k] = v;
    }
    headers['content-length'] = String(body.length);
    const out = request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers,
        agent,
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (c: Buffer) => chunks.push(c));
        response.on('end', () => {
          const h: Record<string, string> = {};
          for (const [k, v] of Object.entries(response.headers)) {
            if (v !== undefined && !hopByHop.has(k)) h[k] = Array.isArray(v) ? v.join(', ') : v;
          }
          onResponse(response.statusCode ?? 502, h, Buffer.concat(chunks));
        });
        response.on('error', onError);
      },
    );
    out.on('error', onError);
    out.end(body);
  };

  const reply = (res: ServerResponse, status: number, headers: Record<string, string>, payload: Buffer) => {
    if (res.destroyed) return;
    res.writeHead(status, { ...headers, 'content-length': String(payload.length) });
    res.end(payload);
  };

  const handle = (req: IncomingMessage, res: ServerResponse, raw: Buffer) => {
    let body = raw;
    if (options.rewriteOwnOrigin === true) {
      body = Buffer.from(raw.toString('utf8').split(ownOrigin).join(upstream.origin), 'utf8');
    }
    stats.calls += 1;
    const target = String(req.headers['x-amz-target'] ?? req.method ?? '?');
    const op = target.includes('.') ? target.slice(target.indexOf('.') + 1) : target;
    const kind = decide();
    if (kind !== undefined) {
      stats.faults[kind] += 1;
      stats.faultedOps[op] = (stats.faultedOps[op] ?? 0) + 1;
    }
    const fail = () => {
      if (!res.headersSent) reply(res, 502, {}, Buffer.from('upstream unavailable'));
    };
    const pass = () =>
      forward(req, body, (status, headers, payload) => reply(res, status, headers, payload), fail);
    switch (kind) {
      case undefined:
        pass();
        return;
      case 'throttle':
      case 'server-error':
        reply(
          res,
          kind === 'throttle' ? 400 : 500,
          {
            'content-type': 'application/x-amz-json-1.0',
            'x-amzn-requestid': randomUUID(),
          },
          Buffer.from(errorBody(options.service, kind, rng.chance(0.5))),
        );
        return;
      case 'timeout':
        // Never forwarded: the call hangs, then the connection drops.
        later(holdMs(), () => req.socket.destroy());
        return;
      case 'slow':
        later(holdMs(), pass);
        return;
      case 'reply-lost':
        // Applied upstream, then the reply is lost on the way back.
        forward(
          req,
          body,
          () => req.socket.destroy(),
          () => req.socket.destroy(),
        );
        return;
    }
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => handle(req, res, Buffer.concat(chunks)));
    req.on('error', () => res.destroy());
  });
  server.keepAliveTimeout = 30_000;
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolveListen());
  });
  const address = server.address();
  if (address === null || typeof address !== 'object') throw new Error('fault proxy has no address');
  ownOrigin = `http://127.0.0.1:${address.port}`;

  return {
    endpoint: ownOrigin,
    service: options.service,
    proxiedUrl: (url) => url.split(upstream.origin).join(ownOrigin),
    configure(faults, seed) {
      policy = faults;
      rng = new Prng(seed);
    },
    outage(ms, kind) {
      outage = { until: Date.now() + ms, kind };
    },
    heal() {
      policy = null;
      outage = undefined;
    },
    stats: () => stats,
    resetStats() {
      stats = emptyStats();
    },
    async close() {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      for (const socket of sockets) socket.destroy();
      agent.destroy();
      await new Promise<void>((resolveClose) => server.close(() => resolveClose()));
    },
  };
}
