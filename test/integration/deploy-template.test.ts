import { execFileSync } from 'node:child_process';
import { mkdtempSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../lib/local/service.ts';
import { packageVariant, readTemplate } from './template-support.ts';

// `sls package --stage prod` offline, then checks on the generated CloudFormation and the zips, so a
// regression in least privilege, encryption, dead-lettering or alarms fails CI. The checks against AWS's
// specifications and the service rules, for both stores and a non-prod stage: template-rules.test.ts.

interface Resource {
  Type: string;
  Condition?: string;
  Properties: Record<string, unknown>;
}
interface Statement {
  Effect: string;
  Action: string | string[];
  Resource: unknown;
}

const outDir = '.serverless-ci/prod';
let resources: Record<string, Resource>;

const ofType = (type: string) => Object.entries(resources).filter(([, r]) => r.Type === type);
const fn = (name: string) => {
  const r = resources[`${name[0]?.toUpperCase()}${name.slice(1)}LambdaFunction`];
  if (!r) throw new Error(`no function ${name}`);
  return r.Properties;
};
const zipEntries = (name: string) =>
  execFileSync('unzip', ['-Z1', join(projectRoot, outDir, `${name}.zip`)], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l !== '');

/** Every IAM statement of a role, inline and unconditional or inside an Fn::If branch. */
function statements(roleId: string): Statement[] {
  const role = resources[roleId];
  const policies = (role?.Properties.Policies ?? []) as Array<{ PolicyDocument: { Statement: unknown[] } }>;
  const out: Statement[] = [];
  for (const p of policies) {
    for (const s of p.PolicyDocument.Statement) {
      const branch = (s as { 'Fn::If'?: unknown[] })['Fn::If'];
      // Either branch of a condition may hold the statement (the other `Ref: AWS::NoValue`).
      const candidates = branch ? branch.slice(1) : [s];
      for (const c of candidates) {
        if (c !== null && typeof c === 'object' && 'Effect' in c) out.push(c as Statement);
      }
    }
  }
  return out;
}

const asList = (v: string | string[]) => (Array.isArray(v) ? v : [v]);

describe('production template (sls package --stage prod, offline)', () => {
  beforeAll(() => {
    const template = readTemplate(packageVariant({ name: 'prod', stage: 'prod' })) as unknown as {
      Resources: Record<string, Resource>;
    };
    resources = template.Resources;
  }, 400_000);

  it('declares the three functions on nodejs22.x x86_64, each with its own role', () => {
    const functions = ofType('AWS::Lambda::Function');
    expect(functions).toHaveLength(3);
    const roles = new Set<string>();
    for (const [, f] of functions) {
      expect(f.Properties.Runtime).toBe('nodejs22.x');
      expect(f.Properties.Architectures).toEqual(['x86_64']);
      roles.add(JSON.stringify(f.Properties.Role));
    }
    expect(roles.size).toBe(3);
  });

  it('grants data access only as exact actions on named resources', () => {
    for (const roleId of ['WatcherRole', 'FailoverRole', 'SweepRole']) {
      const all = statements(roleId);
      expect(all.length).toBeGreaterThan(2);
      for (const s of all) {
        for (const action of asList(s.Action)) {
          expect(action, roleId).not.toMatch(/\*/);
        }
        expect(JSON.stringify(s.Resource), `${roleId} ${JSON.stringify(s.Action)}`).not.toMatch(
          /^"\*"$|"\*"/,
        );
      }
    }
    const actions = (roleId: string) => statements(roleId).flatMap((s) => asList(s.Action));
    // The watcher writes only the membership mirror and sends requests; it never touches instances.
    expect(actions('WatcherRole')).not.toContain('dynamodb:Query');
    expect(JSON.stringify(statements('WatcherRole'))).not.toContain('InstancesTable');
    // Only the failover function consumes the failover queue.
    expect(actions('FailoverRole')).toContain('sqs:ReceiveMessage');
    expect(actions('SweepRole')).not.toContain('sqs:ReceiveMessage');
  });

  it('runs the watcher and the sweep in the ZooKeeper VPC and keeps ZooKeeper settings out of the environment', () => {
    expect(fn('watcher').VpcConfig).toBeDefined();
    expect(fn('sweep').VpcConfig).toBeDefined();
    expect(fn('failover').VpcConfig).toBeUndefined();
    for (const name of ['watcher', 'sweep']) {
      const vars = (fn(name).Environment as { Variables: Record<string, unknown> }).Variables;
      expect(vars.ZK_CONNECT).toBeUndefined();
      expect(vars.ZK_DIGEST).toBeUndefined();
      expect(vars.ZK_CONNECT_PARAMETER).toMatch(/^\//);
    }
  });

  it('encrypts every table, with point-in-time recovery and on-demand billing', () => {
    const tables = ofType('AWS::DynamoDB::Table');
    expect(tables).toHaveLength(5);
    for (const [id, t] of tables) {
      expect(t.Properties.SSESpecification, id).toEqual({ SSEEnabled: true });
      expect(t.Properties.PointInTimeRecoverySpecification, id).toEqual({ PointInTimeRecoveryEnabled: true });
      expect(t.Properties.BillingMode, id).toBe('PAY_PER_REQUEST');
      expect(t.Properties.DeletionProtectionEnabled, id).toBe(true);
    }
    expect(resources.CommandsTable?.Properties.TimeToLiveSpecification).toEqual({
      AttributeName: 'expiresAt',
      Enabled: true,
    });
  });

  it('encrypts every queue, dead-letters with a receive limit, and gives the failover queue 6x the function timeout', () => {
    for (const [id, q] of ofType('AWS::SQS::Queue')) {
      expect(q.Properties.SqsManagedSseEnabled, id).toBe(true);
      expect(q.Properties.FifoQueue, id).toBe(true);
      expect(q.Properties.MessageRetentionPeriod, id).toBe(1_209_600);
    }
    for (const id of ['FailoverQueue', 'CommandsQueue']) {
      const redrive = resources[id]?.Properties.RedrivePolicy as {
        maxReceiveCount: number;
        deadLetterTargetArn: unknown;
      };
      expect(redrive.maxReceiveCount).toBeGreaterThan(0);
      expect(JSON.stringify(redrive.deadLetterTargetArn)).toContain('DeadLetterQueue');
    }
    const visibility = resources.FailoverQueue?.Properties.VisibilityTimeout as number;
    expect(visibility).toBeGreaterThanOrEqual(6 * (fn('failover').Timeout as number));
    const mapping = ofType('AWS::Lambda::EventSourceMapping')[0]?.[1];
    expect(mapping?.Properties.FunctionResponseTypes).toEqual(['ReportBatchItemFailures']);
  });

  it('alarms on dead letters, request age, function errors and lock contention', () => {
    const alarms = ofType('AWS::CloudWatch::Alarm').map(([, a]) => a.Properties);
    const metric = (ns: string, name: string) =>
      alarms.filter((a) => a.Namespace === ns && a.MetricName === name);
    expect(metric('AWS/SQS', 'ApproximateNumberOfMessagesVisible')).toHaveLength(2);
    expect(metric('AWS/SQS', 'ApproximateAgeOfOldestMessage')).toHaveLength(1);
    expect(metric('AWS/Lambda', 'Errors')).toHaveLength(3);
    expect(metric('ZkFailover', 'LockContention')).toHaveLength(1);
    for (const a of alarms) expect((a.AlarmActions as unknown[]).length).toBe(1);
  });

  it('keeps logs for a year in prod', () => {
    for (const [, g] of ofType('AWS::Logs::LogGroup')) expect(g.Properties.RetentionInDays).toBe(365);
  });

  it('ships one native ZooKeeper addon in each bundle (the failover: for the DolphinScheduler store), loadable by Node 22, glibc <= 2.34', () => {
    for (const name of ['watcher', 'sweep', 'failover']) {
      const addon = zipEntries(name).filter((e) => e.endsWith('.node'));
      expect(addon, name).toEqual([`functions/${name}/${addon[0]?.split('/').at(-1)}`]);
    }
    const sizes = Object.fromEntries(
      ['watcher', 'failover', 'sweep'].map((n) => [n, statSync(join(projectRoot, outDir, `${n}.zip`)).size]),
    );
    console.log('bundle sizes (bytes)', sizes);

    const dir = mkdtempSync(join(tmpdir(), 'zkf-zip-'));
    execFileSync('unzip', ['-q', join(projectRoot, outDir, 'watcher.zip'), '-d', dir]);
    const addonPath = join(dir, zipEntries('watcher').find((e) => e.endsWith('.node')) ?? '');
    const symbols = execFileSync('objdump', ['-T', addonPath], { encoding: 'utf8' });
    const versions = [...symbols.matchAll(/GLIBC_(\d+)\.(\d+)/g)].map(
      (m) => Number(m[1]) * 1000 + Number(m[2]),
    );
    expect(versions.length).toBeGreaterThan(0);
    expect(Math.max(...versions)).toBeLessThanOrEqual(2034);
    const native = createRequire(import.meta.url)(addonPath) as { ZooKeeper?: unknown };
    expect(typeof native.ZooKeeper).toBe('function');
  });
});
