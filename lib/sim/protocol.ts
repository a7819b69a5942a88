// What a simulated server process (lib/sim/server.ts) is told at start and reports to the demo over IPC.
import { z } from 'zod';

export const SimServerConfigSchema = z.strictObject({
  name: z.string().min(1),
  nodeType: z.enum(['master', 'worker']),
  host: z.string().min(1),
  zookeeper: z.string().min(1),
  registryRoot: z.string().startsWith('/'),
  sessionTimeoutMs: z.int().positive(),
  heartbeatMs: z.int().positive(),
  /**
   * The startup time the first registration reports (epoch ms). The demo's servers pretend to have been up
   * for a while, so the work seeded "during the last hour" belongs to their current incarnation (F3).
   * A registration after a session loss is a real restart and reports the time it happens.
   */
  startupTime: z.int().positive(),
  /** Masters only: consume the commands queue of the local stack. */
  consume: z
    .strictObject({
      region: z.string().min(1),
      dynamodbEndpoint: z.string().min(1),
      sqsEndpoint: z.string().min(1),
      credentials: z.strictObject({ accessKeyId: z.string(), secretAccessKey: z.string() }),
      commandsQueueUrl: z.string().min(1),
      instancesTable: z.string().min(1),
      tasksTable: z.string().min(1),
    })
    .optional(),
  /**
   * On DolphinScheduler's own database (`npm start -- --store postgresql|mysql`): the server writes its
   * release's heartbeat (lib/sim/ds-master.ts), and a master consumes `t_ds_command` as 3.2 does instead of
   * the commands queue.
   */
  dolphinScheduler: z
    .strictObject({
      version: z.enum(['3.1', '3.2']),
      timeZone: z.string().min(1),
      /** Masters only: the database whose commands they consume. */
      databaseUrl: z.string().min(1).optional(),
    })
    .optional(),
});
export type SimServerConfig = z.output<typeof SimServerConfigSchema>;

/** The demo's message that makes a loaded server register. */
export const SimStartSchema = z.strictObject({ type: z.literal('start'), config: SimServerConfigSchema });

const at = z.number();

export const SimReportSchema = z.discriminatedUnion('type', [
  /** Modules loaded: ready for `start`. */
  z.object({ type: z.literal('loaded') }),
  z.object({
    type: z.literal('registered'),
    czxid: z.string(),
    sessionId: z.string(),
    startupTime: z.number(),
    negotiatedTimeoutMs: z.number(),
    at,
  }),
  /** The session ended without the demo asking (expiry under load, ZooKeeper gone): re-registering. */
  z.object({ type: z.literal('session-lost'), reason: z.string(), at }),
  /** A recovery command applied: this master now owns the instance. */
  z.object({ type: z.literal('took-over'), commandId: z.string(), instanceId: z.string(), at }),
  /** A DolphinScheduler master moved a command to t_ds_error_command (it could not handle it). */
  z.object({
    type: z.literal('error-command'),
    commandId: z.string(),
    message: z.string(),
    at,
  }),
  /** A task failover notice applied: the task was re-dispatched to `worker`. */
  z.object({
    type: z.literal('redispatched'),
    commandId: z.string(),
    taskId: z.string(),
    worker: z.string(),
    at,
  }),
  /** A command whose effect was already there (a redelivery) or no longer applies: acknowledged only. */
  z.object({ type: z.literal('ignored'), commandId: z.string(), why: z.string(), at }),
  /** Something went wrong; the message stays on the queue and comes back. */
  z.object({ type: z.literal('problem'), what: z.string(), at }),
]);
export type SimReport = z.output<typeof SimReportSchema>;

/** Narrows an IPC message to a SimReport (the channel is untyped); undefined for anything else. */
export function asSimReport(message: unknown): SimReport | undefined {
  const parsed = SimReportSchema.safeParse(message);
  return parsed.success ? parsed.data : undefined;
}
