// The generated CloudFormation template, as the template tests read it: `sls package` offline for a stage
// and a set of parameters, the template's conditions evaluated (their parameters are fixed at package time),
// and small readers for roles, statements, functions and intrinsics.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../lib/local/service.ts';

export interface Resource {
  Type: string;
  Condition?: string;
  DependsOn?: string | string[];
  Properties?: Record<string, unknown>;
  [attribute: string]: unknown;
}

export interface Template {
  AWSTemplateFormatVersion?: string;
  Description?: string;
  Conditions?: Record<string, unknown>;
  Resources: Record<string, Resource>;
  Outputs?: Record<string, { Value: unknown; Condition?: string; [key: string]: unknown }>;
  [section: string]: unknown;
}

export interface Variant {
  /** Directory name under .serverless-ci. */
  readonly name: string;
  readonly stage: string;
  readonly params?: Readonly<Record<string, string>>;
}

const ciDir = join(projectRoot, '.serverless-ci');
const lockDir = join(ciDir, '.package.lock');

const sleep = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/**
 * One `sls package` at a time across test files: serverless-esbuild builds in the project's `.esbuild`
 * folder and copies the zips through `.serverless`, which two concurrent runs would clobber.
 */
function withPackageLock<T>(work: () => T): T {
  mkdirSync(ciDir, { recursive: true });
  const deadline = Date.now() + 300_000;
  for (;;) {
    try {
      mkdirSync(lockDir);
      writeFileSync(join(lockDir, 'pid'), String(process.pid));
      break;
    } catch (error: unknown) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      let holder = Number.NaN;
      try {
        holder = Number(readFileSync(join(lockDir, 'pid'), 'utf8'));
      } catch {
        // Just created, pid not written yet: wait, unless it is old (a holder killed in between).
        const createdAt = statSync(lockDir, { throwIfNoEntry: false })?.mtimeMs ?? 0;
        if (Date.now() - createdAt > 30_000) holder = 0;
      }
      if (holder === 0 || (Number.isInteger(holder) && !alive(holder))) {
        rmSync(lockDir, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${lockDir}`);
      sleep(200);
    }
  }
  try {
    return work();
  } finally {
    rmSync(lockDir, { recursive: true, force: true });
  }
}

/** `sls package` offline for the variant into .serverless-ci/<name>; returns the directory. */
export function packageVariant(variant: Variant): string {
  const outDir = join('.serverless-ci', variant.name);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    SLS_TELEMETRY_DISABLED: '1',
    SLS_NOTIFICATIONS_MODE: 'off',
  };
  for (const k of Object.keys(env)) if (k.startsWith('AWS_')) delete env[k];
  const params = Object.entries(variant.params ?? {}).flatMap(([k, v]) => ['--param', `${k}=${v}`]);
  withPackageLock(() =>
    execFileSync('npx', ['sls', 'package', '--stage', variant.stage, ...params, '--package', outDir], {
      cwd: projectRoot,
      env,
      stdio: 'pipe',
      timeout: 180_000,
    }),
  );
  return join(projectRoot, outDir);
}

export function readTemplate(dir: string): Template {
  return JSON.parse(readFileSync(join(dir, 'cloudformation-template-update-stack.json'), 'utf8')) as Template;
}

/** Packages the variant and returns its template. */
export function packageTemplate(variant: Variant): Template {
  return readTemplate(packageVariant(variant));
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** A single-key object whose key is an intrinsic function (`Ref`, `Fn::*`, or a `Condition` reference). */
export function intrinsicOf(v: unknown): [string, unknown] | undefined {
  if (!isObject(v)) return undefined;
  const keys = Object.keys(v);
  if (keys.length !== 1) return undefined;
  const key = keys[0] as string;
  return key === 'Ref' || key.startsWith('Fn::') || key === 'Condition' ? [key, v[key]] : undefined;
}

const literal = (v: unknown): string => {
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return String(v);
  throw new Error(`condition operand is not a literal: ${JSON.stringify(v)}`);
};

/** Evaluates a condition whose operands are literals (as `sls package` bakes the parameters in). */
export function evaluateCondition(name: string, conditions: Record<string, unknown>): boolean {
  const evaluate = (expr: unknown): boolean => {
    const f = intrinsicOf(expr);
    if (!f) throw new Error(`not a condition: ${JSON.stringify(expr)}`);
    const [fn, arg] = f;
    const args = Array.isArray(arg) ? arg : [];
    switch (fn) {
      case 'Condition':
        return evaluateCondition(String(arg), conditions);
      case 'Fn::Equals':
        return literal(args[0]) === literal(args[1]);
      case 'Fn::Not':
        return !evaluate(args[0]);
      case 'Fn::And':
        return args.every(evaluate);
      case 'Fn::Or':
        return args.some(evaluate);
      default:
        throw new Error(`unsupported condition function ${fn}`);
    }
  };
  if (!(name in conditions)) throw new Error(`no condition ${name}`);
  return evaluate(conditions[name]);
}

const NO_VALUE = Symbol('AWS::NoValue');

/**
 * The template as CloudFormation would create it: resources and outputs whose condition is false dropped,
 * each `Fn::If` replaced by its chosen branch, `AWS::NoValue` removed.
 */
export function effectiveTemplate(template: Template): Template {
  const conditions = template.Conditions ?? {};
  const holds = (name: string) => evaluateCondition(name, conditions);
  const resolve = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(resolve).filter((x) => x !== NO_VALUE);
    const f = intrinsicOf(v);
    if (f?.[0] === 'Fn::If') {
      const [name, yes, no] = f[1] as [string, unknown, unknown];
      return resolve(holds(name) ? yes : no);
    }
    if (f?.[0] === 'Ref' && f[1] === 'AWS::NoValue') return NO_VALUE;
    if (isObject(v)) {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) {
        const r = resolve(x);
        if (r !== NO_VALUE) out[k] = r;
      }
      return out;
    }
    return v;
  };
  const resources: Record<string, Resource> = {};
  for (const [id, r] of Object.entries(template.Resources)) {
    if (r.Condition !== undefined && !holds(r.Condition)) continue;
    const { Condition: _, ...rest } = r;
    resources[id] = resolve(rest) as Resource;
  }
  const outputs: Template['Outputs'] = {};
  for (const [id, o] of Object.entries(template.Outputs ?? {})) {
    if (o.Condition !== undefined && !holds(o.Condition)) continue;
    const { Condition: _, ...rest } = o;
    outputs[id] = resolve(rest) as { Value: unknown };
  }
  const { Conditions: _, ...rest } = template;
  return { ...rest, Resources: resources, Outputs: outputs };
}

export const asList = <T>(v: T | T[] | undefined): T[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

export interface Statement {
  Sid?: string;
  Effect: string;
  Action?: string | string[];
  NotAction?: string | string[];
  Resource?: unknown;
  Principal?: unknown;
  Condition?: Record<string, Record<string, unknown>>;
}

/** Every statement of a role's inline policies (of an effective template). */
export function roleStatements(template: Template, roleId: string): Statement[] {
  const role = template.Resources[roleId];
  if (!role) throw new Error(`no role ${roleId}`);
  const policies = (role.Properties?.Policies ?? []) as Array<{ PolicyDocument: { Statement: Statement[] } }>;
  return policies.flatMap((p) => p.PolicyDocument.Statement);
}

/** Managed policy names attached to a role (the part after `:policy/`). */
export function managedPolicies(template: Template, roleId: string): string[] {
  const arns = (template.Resources[roleId]?.Properties?.ManagedPolicyArns ?? []) as unknown[];
  return arns.map((arn) => {
    const text = JSON.stringify(arn);
    const m = /:policy\/([\w+=,.@/-]+)/.exec(text);
    if (!m?.[1]) throw new Error(`managed policy ARN not understood: ${text}`);
    return m[1];
  });
}

/** The Lambda functions of a template, by the name serverless.yml gives them (`watcher`, ...). */
export function functionsOf(
  template: Template,
): Map<string, { id: string; properties: Record<string, unknown> }> {
  const out = new Map<string, { id: string; properties: Record<string, unknown> }>();
  for (const [id, r] of Object.entries(template.Resources)) {
    if (r.Type !== 'AWS::Lambda::Function') continue;
    const m = /^(\w)(\w*)LambdaFunction$/.exec(id);
    if (!m?.[1]) throw new Error(`unexpected function logical id ${id}`);
    out.set(`${m[1].toLowerCase()}${m[2]}`, { id, properties: r.Properties ?? {} });
  }
  return out;
}

/** The logical id a `Fn::GetAtt [X, Arn]` or `Ref X` points at, if the value is one. */
export function referencedId(v: unknown): string | undefined {
  const f = intrinsicOf(v);
  if (f?.[0] === 'Ref' && typeof f[1] === 'string') return f[1];
  if (f?.[0] === 'Fn::GetAtt') {
    const arg = f[1];
    const id = Array.isArray(arg) ? arg[0] : typeof arg === 'string' ? arg.split('.')[0] : undefined;
    return typeof id === 'string' ? id : undefined;
  }
  return undefined;
}

/** Pseudo parameters as the tests resolve them. */
export const pseudo: Readonly<Record<string, string>> = {
  'AWS::Region': 'us-east-1',
  'AWS::AccountId': '123456789012',
  'AWS::Partition': 'aws',
  'AWS::URLSuffix': 'amazonaws.com',
  'AWS::StackName': 'zk-failover-test',
};

/**
 * Resolves a value to the string CloudFormation would produce, for the attributes the tests need: names
 * (`Ref` of tables, queues, functions, topics), `QueueName`/`Arn` attributes, joins, splits and pseudo
 * parameters. Throws on anything else.
 */
export function resolveString(template: Template, v: unknown): string {
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return String(v);
  const f = intrinsicOf(v);
  if (!f) throw new Error(`cannot resolve ${JSON.stringify(v)}`);
  const [fn, arg] = f;
  if (fn === 'Ref' && typeof arg === 'string') {
    if (arg in pseudo) return pseudo[arg] as string;
    const r = template.Resources[arg];
    if (!r) throw new Error(`Ref to unknown ${arg}`);
    return nameOf(template, arg, r);
  }
  if (fn === 'Fn::GetAtt') {
    const [id, attr] = (Array.isArray(arg) ? arg : String(arg).split('.')) as [string, string];
    const r = template.Resources[id];
    if (!r) throw new Error(`GetAtt of unknown ${id}`);
    const name = nameOf(template, id, r);
    if (attr === 'QueueName' || attr === 'TopicName') return name;
    if (attr === 'Arn') return arnOf(r.Type, name);
    throw new Error(`GetAtt ${id}.${attr} not resolvable in tests`);
  }
  if (fn === 'Fn::Join') {
    const [sep, parts] = arg as [string, unknown[]];
    return parts.map((p) => resolveString(template, p)).join(sep);
  }
  throw new Error(`cannot resolve ${fn}`);
}

function nameOf(template: Template, id: string, r: Resource): string {
  const p = r.Properties ?? {};
  const named = p.QueueName ?? p.TableName ?? p.FunctionName ?? p.TopicName ?? p.DashboardName ?? p.RoleName;
  if (named !== undefined) return resolveString(template, named);
  return id;
}

function arnOf(type: string, name: string): string {
  const { 'AWS::Region': region, 'AWS::AccountId': account } = pseudo;
  switch (type) {
    case 'AWS::SQS::Queue':
      return `arn:aws:sqs:${region}:${account}:${name}`;
    case 'AWS::DynamoDB::Table':
      return `arn:aws:dynamodb:${region}:${account}:table/${name}`;
    case 'AWS::Lambda::Function':
      return `arn:aws:lambda:${region}:${account}:function:${name}`;
    case 'AWS::SNS::Topic':
      return `arn:aws:sns:${region}:${account}:${name}`;
    case 'AWS::KMS::Key':
      return `arn:aws:kms:${region}:${account}:key/${name}`;
    default:
      throw new Error(`no ARN for ${type} in tests`);
  }
}
