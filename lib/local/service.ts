import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { z } from 'zod';

/** Project root (where serverless.yml lives). */
export const projectRoot = resolve(import.meta.dirname, '..', '..');

const intrinsic = z.union([z.string(), z.number(), z.boolean(), z.record(z.string(), z.unknown())]);

const eventSchema = z.object({
  schedule: z
    .union([
      z.string(),
      z.object({ rate: z.union([z.string(), z.array(z.string())]), enabled: z.boolean().optional() }),
    ])
    .optional(),
  sqs: z
    .union([
      z.string(),
      z.object({
        arn: intrinsic,
        batchSize: z.number().int().positive().optional(),
        maximumBatchingWindow: z.number().int().nonnegative().optional(),
        functionResponseType: z.string().optional(),
        maximumConcurrency: z.number().int().positive().optional(),
      }),
    ])
    .optional(),
});

const functionSchema = z.object({
  handler: z.string(),
  timeout: z.number().int().positive().optional(),
  memorySize: z.number().int().positive().optional(),
  environment: z.record(z.string(), intrinsic).optional(),
  events: z.array(eventSchema).optional(),
});

const resourceSchema = z.object({
  Type: z.string(),
  Properties: z.record(z.string(), z.unknown()).default({}),
});

const serviceSchema = z.object({
  service: z.string(),
  provider: z.object({
    runtime: z.string(),
    stage: z.string(),
    region: z.string(),
    timeout: z.number().int().positive().optional(),
    memorySize: z.number().int().positive().optional(),
    environment: z.record(z.string(), intrinsic).optional(),
  }),
  functions: z.record(z.string(), functionSchema),
  resources: z.object({ Resources: z.record(z.string(), resourceSchema) }),
});

export type ServiceDefinition = z.infer<typeof serviceSchema>;
export type FunctionDefinition = z.infer<typeof functionSchema>;
export type ResourceDefinition = z.infer<typeof resourceSchema>;

/**
 * Reads serverless.yml through the Serverless Framework itself (`osls print`, offline), so
 * variables (`${self:...}`, `${sls:stage}`, `${param:...}`) resolve exactly as on deploy. The
 * CloudFormation intrinsics (`!Ref`, `!GetAtt`) stay as objects; the local stack resolves those.
 */
export async function loadService(stage = 'local'): Promise<ServiceDefinition> {
  const require = createRequire(join(projectRoot, 'package.json'));
  const cli = join(dirname(require.resolve('osls/package.json')), 'bin', 'serverless.js');
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [cli, 'print', '--format', 'json', '--stage', stage],
    {
      cwd: projectRoot,
      env: { ...process.env, SLS_TELEMETRY_DISABLED: '1', SLS_NOTIFICATIONS_MODE: 'off' },
      maxBuffer: 16 * 1024 * 1024,
      timeout: 60_000,
    },
  );
  const start = stdout.indexOf('{');
  if (start < 0) throw new Error(`serverless print returned no JSON:\n${stdout.slice(0, 500)}`);
  const parsed = serviceSchema.safeParse(JSON.parse(stdout.slice(start)));
  if (!parsed.success) {
    throw new Error(
      `serverless.yml does not have the shape the local runtime needs: ${parsed.error.message}`,
    );
  }
  return parsed.data;
}

/** `functions/failover/handler.handler` -> module file and export name. */
export function handlerLocation(handler: string): { file: string; exportName: string } {
  const dot = handler.lastIndexOf('.');
  if (dot <= 0) throw new Error(`handler "${handler}" is not <path>.<export>`);
  return { file: join(projectRoot, `${handler.slice(0, dot)}.ts`), exportName: handler.slice(dot + 1) };
}

/** Parses `rate(N unit)` (AWS EventBridge rate expressions) to milliseconds. */
export function rateToMs(expression: string): number {
  const m = /^rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)$/.exec(expression.trim());
  if (!m?.[1] || !m[2])
    throw new Error(`unsupported schedule expression "${expression}" (use rate(N minutes))`);
  const n = Number(m[1]);
  const unit = m[2].startsWith('minute') ? 60_000 : m[2].startsWith('hour') ? 3_600_000 : 86_400_000;
  return n * unit;
}
