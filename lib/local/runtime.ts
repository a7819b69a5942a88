import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import {
  DeleteMessageBatchCommand,
  type Message,
  ReceiveMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { childMarker, type ManagedProcess, startProcess } from './processes.ts';
import { handlerLocation, projectRoot, rateToMs } from './service.ts';
import type { LocalStack } from './stack.ts';

export class FunctionTimeoutError extends Error {
  constructor(functionName: string, timeoutMs: number) {
    super(`${functionName} timed out after ${timeoutMs} ms (the container was killed)`);
    this.name = 'FunctionTimeoutError';
  }
}

export class FunctionCrashedError extends Error {
  constructor(functionName: string, detail: string) {
    super(`${functionName} container exited during an invocation${detail ? `:\n${detail}` : ''}`);
    this.name = 'FunctionCrashedError';
  }
}

export class FunctionError extends Error {
  constructor(
    functionName: string,
    readonly remote: { name: string; message: string; stack?: string },
  ) {
    super(`${functionName} failed: ${remote.name}: ${remote.message}`);
    this.name = 'FunctionError';
  }
}

export interface InvocationRecord {
  readonly functionName: string;
  readonly trigger: 'schedule' | 'sqs' | 'direct';
  readonly startedAt: number;
  readonly endedAt: number;
  readonly outcome: 'ok' | 'error' | 'timeout' | 'crash';
  readonly error?: string;
  readonly rssBytes?: number;
  /** Peak resident memory of the container up to the end of this invocation (process lifetime maximum). */
  readonly maxRssBytes?: number;
  /** Heap still referenced after a full collection at the end of the invocation (`measureLiveHeap`). */
  readonly liveHeapBytes?: number;
  readonly result?: unknown;
}

export interface RuntimeOptions {
  /** Functions to run (default: all in serverless.yml). */
  functions?: string[];
  /** Replace a function's handler (`path.export`), for runtime tests and fault injection. */
  handlers?: Record<string, string>;
  /** Local schedule period per function in ms (default: the declared rate). */
  scheduleMs?: Record<string, number>;
  /** Local timeout per function in ms (default: the declared timeout). */
  timeoutMs?: Record<string, number>;
  /** Extra environment per function (fault injection, test knobs). */
  env?: Record<string, Record<string, string>>;
  /** Concurrent batches per SQS event source (Lambda scales pollers; default 2). */
  sqsConcurrency?: number;
  /** Max containers per function (default 4). */
  maxContainers?: number;
  /** Start event sources (default true). With false, only `invoke()` runs functions. */
  eventSources?: boolean;
  /**
   * Run a full garbage collection after each invocation and report the live heap (containers start with
   * --expose-gc): for memory measurements only, it slows every invocation down.
   */
  measureLiveHeap?: boolean;
  onLog?: (functionName: string, line: string) => void;
  onInvocation?: (record: InvocationRecord) => void;
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

/** One warm container: a child process that runs one invocation at a time. */
class Container {
  private nextId = 1;
  private pending = new Map<number, Pending>();
  lastRssBytes = 0;
  lastMaxRssBytes = 0;
  lastLiveHeapBytes: number | undefined;
  busy = false;
  private readonly ready: Promise<void>;

  constructor(
    readonly functionName: string,
    readonly proc: ManagedProcess,
  ) {
    this.ready = new Promise((resolveReady, rejectReady) => {
      proc.child.on(
        'message',
        (m: {
          type?: string;
          id?: number;
          ok?: boolean;
          value?: unknown;
          error?: never;
          rssBytes?: number;
          maxRssBytes?: number;
          liveHeapBytes?: number;
        }) => {
          if (m?.type === 'ready') resolveReady();
          if (m?.type !== 'result' || m.id === undefined) return;
          const p = this.pending.get(m.id);
          if (!p) return;
          this.pending.delete(m.id);
          clearTimeout(p.timer);
          this.lastRssBytes = m.rssBytes ?? 0;
          this.lastMaxRssBytes = m.maxRssBytes ?? 0;
          this.lastLiveHeapBytes = m.liveHeapBytes;
          if (m.ok) p.resolve(m.value);
          else p.reject(new FunctionError(functionName, m.error ?? { name: 'Error', message: 'unknown' }));
        },
      );
      proc.child.once('exit', () => {
        rejectReady(new FunctionCrashedError(functionName, proc.tail()));
        for (const [id, p] of this.pending) {
          clearTimeout(p.timer);
          p.reject(new FunctionCrashedError(functionName, proc.tail()));
          this.pending.delete(id);
        }
      });
    });
    this.ready.catch(() => undefined);
  }

  private dead = false;

  markDead(): void {
    this.dead = true;
  }

  alive(): boolean {
    return !this.dead && !this.proc.exited();
  }

  async invoke(event: unknown, timeoutMs: number): Promise<unknown> {
    await this.ready;
    const id = this.nextId++;
    const deadline = Date.now() + timeoutMs;
    return new Promise((resolveInvoke, rejectInvoke) => {
      // Like Lambda: when the timeout passes, the execution environment is torn down.
      const timer = setTimeout(() => {
        this.pending.delete(id);
        this.dead = true;
        rejectInvoke(new FunctionTimeoutError(this.functionName, timeoutMs));
        void this.proc.kill();
      }, timeoutMs + 50);
      this.pending.set(id, { resolve: resolveInvoke, reject: rejectInvoke, timer });
      this.proc.child.send({ type: 'invoke', id, event, deadline }, (error) => {
        if (!error) return;
        clearTimeout(timer);
        this.pending.delete(id);
        this.dead = true;
        rejectInvoke(new FunctionCrashedError(this.functionName, `${error.message}\n${this.proc.tail()}`));
      });
    });
  }
}

/** The containers of one function: reuses idle ones, starts new ones when all are busy (overlap like AWS). */
class FunctionPool {
  private containers: Container[] = [];
  private waiters: Array<() => void> = [];
  private stopped = false;
  readonly timeoutMs: number;

  constructor(
    readonly name: string,
    private readonly env: Record<string, string>,
    private readonly handler: string,
    timeoutMs: number,
    private readonly maxContainers: number,
    private readonly onLog: (line: string) => void,
    private readonly nodeFlags: readonly string[] = [],
  ) {
    this.timeoutMs = timeoutMs;
  }

  private spawn(): Container {
    const { file, exportName } = handlerLocation(this.handler);
    const proc = startProcess(
      `lambda-${this.name}`,
      process.execPath,
      [
        ...this.nodeFlags,
        '--import',
        'tsx',
        `--title=${childMarker}`,
        join(import.meta.dirname, 'container.ts'),
      ],
      {
        cwd: projectRoot,
        ipc: true,
        env: {
          PATH: process.env.PATH ?? '',
          HOME: process.env.HOME ?? '/tmp',
          TZ: 'UTC',
          ...this.env,
          ZKF_HANDLER_FILE: file,
          ZKF_HANDLER_EXPORT: exportName,
        },
        onLine: this.onLog,
      },
    );
    const container = new Container(this.name, proc);
    this.containers.push(container);
    return container;
  }

  private async acquire(): Promise<Container> {
    for (;;) {
      if (this.stopped) throw new Error(`${this.name}: runtime stopped`);
      this.containers = this.containers.filter((c) => c.alive());
      const idle = this.containers.find((c) => !c.busy);
      if (idle) return idle;
      if (this.containers.length < this.maxContainers) return this.spawn();
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  async invoke(
    event: unknown,
  ): Promise<{ value: unknown; rssBytes: number; maxRssBytes: number; liveHeapBytes?: number }> {
    const container = await this.acquire();
    container.busy = true;
    try {
      const value = await container.invoke(event, this.timeoutMs);
      return {
        value,
        rssBytes: container.lastRssBytes,
        maxRssBytes: container.lastMaxRssBytes,
        ...(container.lastLiveHeapBytes === undefined ? {} : { liveHeapBytes: container.lastLiveHeapBytes }),
      };
    } finally {
      container.busy = false;
      this.waiters.shift()?.();
    }
  }

  /** Kills every container (like a crash of all execution environments). */
  async killAll(): Promise<void> {
    for (const c of this.containers) c.markDead();
    await Promise.all(this.containers.map((c) => c.proc.kill()));
    this.containers = [];
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const w of this.waiters.splice(0)) w();
    await Promise.all(this.containers.map((c) => c.proc.stop(2_000)));
    this.containers = [];
  }
}

function toSqsRecord(m: Message, queueArn: string, region: string): SQSRecord {
  const a = m.Attributes ?? {};
  return {
    messageId: m.MessageId ?? '',
    receiptHandle: m.ReceiptHandle ?? '',
    body: m.Body ?? '',
    attributes: {
      ApproximateReceiveCount: a.ApproximateReceiveCount ?? '1',
      SentTimestamp: a.SentTimestamp ?? String(Date.now()),
      SenderId: a.SenderId ?? 'local',
      ApproximateFirstReceiveTimestamp: a.ApproximateFirstReceiveTimestamp ?? String(Date.now()),
      ...(a.MessageGroupId ? { MessageGroupId: a.MessageGroupId } : {}),
      ...(a.MessageDeduplicationId ? { MessageDeduplicationId: a.MessageDeduplicationId } : {}),
      ...(a.SequenceNumber ? { SequenceNumber: a.SequenceNumber } : {}),
    },
    messageAttributes: {},
    md5OfBody: m.MD5OfBody ?? '',
    eventSource: 'aws:sqs',
    eventSourceARN: queueArn,
    awsRegion: region,
  };
}

/**
 * Which records of a batch succeeded, by Lambda's rules for ReportBatchItemFailures: a thrown
 * error or a malformed response fails the whole batch; otherwise every record not listed succeeded.
 */
export function succeededRecords(
  records: SQSRecord[],
  response: unknown,
  reportsItemFailures: boolean,
): SQSRecord[] {
  if (!reportsItemFailures) return records;
  if (response === undefined || response === null) return records;
  const failures = (response as Partial<SQSBatchResponse>).batchItemFailures;
  if (failures === undefined || failures === null) return records;
  if (!Array.isArray(failures)) return [];
  const ids = new Set<string>();
  for (const f of failures) {
    const id = (f as { itemIdentifier?: unknown })?.itemIdentifier;
    if (typeof id !== 'string' || id === '' || !records.some((r) => r.messageId === id)) return [];
    ids.add(id);
  }
  return records.filter((r) => !ids.has(r.messageId));
}

export interface LocalRuntime {
  invoke(functionName: string, event: unknown): Promise<unknown>;
  /** Kills the function's containers mid-flight (crash injection). */
  killContainers(functionName: string): Promise<void>;
  invocations(): readonly InvocationRecord[];
  peakRssBytes(functionName: string): number;
  stop(): Promise<void>;
}

/** Runs the stack's functions the way AWS would: SQS event source mappings, schedules, timeouts. */
export function startLocalRuntime(stack: LocalStack, options: RuntimeOptions = {}): LocalRuntime {
  const service = stack.service;
  const names = options.functions ?? Object.keys(service.functions);
  const pools = new Map<string, FunctionPool>();
  const records: InvocationRecord[] = [];
  const controller = new AbortController();
  const loops: Promise<void>[] = [];
  const timers: NodeJS.Timeout[] = [];
  const region = service.provider.region;

  for (const name of names) {
    const fn = service.functions[name];
    if (!fn) throw new Error(`serverless.yml declares no function ${name}`);
    const timeoutMs = options.timeoutMs?.[name] ?? (fn.timeout ?? service.provider.timeout ?? 6) * 1000;
    pools.set(
      name,
      new FunctionPool(
        name,
        { ...stack.functionEnv(name), ...options.env?.[name] },
        options.handlers?.[name] ?? fn.handler,
        timeoutMs,
        options.maxContainers ?? 4,
        (line) => options.onLog?.(name, line),
        options.measureLiveHeap ? ['--expose-gc'] : [],
      ),
    );
  }

  const run = async (
    name: string,
    trigger: InvocationRecord['trigger'],
    event: unknown,
  ): Promise<unknown> => {
    const pool = pools.get(name);
    if (!pool) throw new Error(`function ${name} is not running`);
    const startedAt = Date.now();
    try {
      const { value, rssBytes, maxRssBytes, liveHeapBytes } = await pool.invoke(event);
      const rec: InvocationRecord = {
        functionName: name,
        trigger,
        startedAt,
        endedAt: Date.now(),
        outcome: 'ok',
        rssBytes,
        maxRssBytes,
        ...(liveHeapBytes === undefined ? {} : { liveHeapBytes }),
        result: value,
      };
      records.push(rec);
      options.onInvocation?.(rec);
      return value;
    } catch (error: unknown) {
      const outcome =
        error instanceof FunctionTimeoutError
          ? 'timeout'
          : error instanceof FunctionCrashedError
            ? 'crash'
            : 'error';
      const rec: InvocationRecord = {
        functionName: name,
        trigger,
        startedAt,
        endedAt: Date.now(),
        outcome,
        error: error instanceof Error ? error.message : String(error),
      };
      records.push(rec);
      options.onInvocation?.(rec);
      throw error;
    }
  };

  const sqsLoop = async (
    name: string,
    sqs: SQSClient,
    queueUrl: string,
    queueArn: string,
    batchSize: number,
    reports: boolean,
  ) => {
    const signal = controller.signal;
    while (!signal.aborted) {
      let messages: Message[] = [];
      try {
        const out = await sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: queueUrl,
            MaxNumberOfMessages: batchSize,
            WaitTimeSeconds: 1,
            MessageSystemAttributeNames: ['All'],
            MessageAttributeNames: ['All'],
          }),
          { abortSignal: signal },
        );
        messages = out.Messages ?? [];
      } catch {
        if (signal.aborted) return;
        await new Promise((r) => setTimeout(r, 200));
        continue;
      }
      if (messages.length === 0) continue;
      const event: SQSEvent = { Records: messages.map((m) => toSqsRecord(m, queueArn, region)) };
      let response: unknown;
      let failed = false;
      try {
        response = await run(name, 'sqs', event);
      } catch {
        failed = true; // the whole batch returns to the queue after its visibility timeout
      }
      const done = failed ? [] : succeededRecords(event.Records, response, reports);
      for (let i = 0; i < done.length; i += 10) {
        const chunk = done.slice(i, i + 10);
        await sqs
          .send(
            new DeleteMessageBatchCommand({
              QueueUrl: queueUrl,
              Entries: chunk.map((r, j) => ({ Id: String(j), ReceiptHandle: r.receiptHandle })),
            }),
          )
          .catch((error: unknown) => options.onLog?.(name, `runtime: delete failed: ${String(error)}`));
      }
    }
  };

  if (options.eventSources !== false) {
    for (const name of names) {
      const fn = service.functions[name];
      for (const ev of fn?.events ?? []) {
        if (ev.sqs && typeof ev.sqs === 'object') {
          const cfg = ev.sqs;
          const arnValue = JSON.stringify(cfg.arn);
          const queue = [...stack.resources.values()].find(
            (r) =>
              r.type === 'AWS::SQS::Queue' &&
              JSON.stringify(r.attributes.Arn) === JSON.stringify(resolveArn(cfg.arn, stack)),
          );
          if (!queue) throw new Error(`${name}: cannot find the queue of its SQS event (${arnValue})`);
          const reports = cfg.functionResponseType === 'ReportBatchItemFailures';
          const concurrency = cfg.maximumConcurrency ?? options.sqsConcurrency ?? 2;
          for (let i = 0; i < concurrency; i += 1) {
            loops.push(
              sqsLoop(
                name,
                stack.clients.sqs,
                queue.ref,
                queue.attributes.Arn ?? '',
                cfg.batchSize ?? 10,
                reports,
              ),
            );
          }
        }
        if (ev.schedule) {
          const rate = typeof ev.schedule === 'string' ? ev.schedule : ev.schedule.rate;
          const enabled = typeof ev.schedule === 'string' ? true : ev.schedule.enabled !== false;
          if (!enabled) continue;
          const periodMs =
            options.scheduleMs?.[name] ?? rateToMs(Array.isArray(rate) ? (rate[0] ?? '') : rate);
          const fire = () => {
            const event = {
              version: '0',
              id: randomUUID(),
              'detail-type': 'Scheduled Event',
              source: 'aws.events',
              account: '000000000000',
              time: new Date().toISOString(),
              region,
              resources: [`arn:aws:events:${region}:000000000000:rule/${name}-schedule`],
              detail: {},
            };
            // Fire and forget: a new scheduled invocation never waits for the previous one.
            run(name, 'schedule', event).catch((error: unknown) =>
              options.onLog?.(
                name,
                `runtime: scheduled invocation failed: ${error instanceof Error ? error.message : String(error)}`,
              ),
            );
          };
          fire();
          timers.push(setInterval(fire, periodMs));
        }
      }
    }
  }

  return {
    invoke: (name, event) => run(name, 'direct', event),
    killContainers: async (name) => {
      await pools.get(name)?.killAll();
    },
    invocations: () => records,
    peakRssBytes: (name) =>
      Math.max(0, ...records.filter((r) => r.functionName === name).map((r) => r.rssBytes ?? 0)),
    async stop() {
      for (const t of timers) clearInterval(t);
      controller.abort();
      await Promise.allSettled(loops);
      await Promise.all([...pools.values()].map((p) => p.stop()));
    },
  };
}

function resolveArn(arn: unknown, stack: LocalStack): string {
  if (typeof arn === 'string') return arn;
  const getAtt = (arn as Record<string, unknown>)?.['Fn::GetAtt'];
  if (Array.isArray(getAtt) && typeof getAtt[0] === 'string') {
    return stack.resources.get(getAtt[0])?.attributes.Arn ?? '';
  }
  return '';
}
