import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../lib/local/service.ts';
import { emittedMetricNames, emittedSeries, type MetricSeries } from './template-metrics.ts';
import {
  awsMetricDimensionSets,
  iamProblems,
  loadSpec,
  type SpecDatabase,
  specProblems,
} from './template-spec.ts';
import {
  asList,
  effectiveTemplate,
  functionsOf,
  intrinsicOf,
  managedPolicies,
  packageTemplate,
  referencedId,
  resolveString,
  roleStatements,
  type Statement,
  type Template,
  type Variant,
} from './template-support.ts';

// The generated template of both stores, in prod and in a non-prod stage (`sls package`, offline), held
// against AWS's published specifications (resource specification, IAM action catalogue, AWS metrics) and
// against the service rules no schema shows: X-Ray, VPC and KMS permissions, SQS timeouts and FIFO event
// sources, alarms that can deliver, and alarm and dashboard metrics that the functions really write.

const account = '123456789012';
const region = 'us-east-1';
const secret = (name: string) => `arn:aws:secretsmanager:${region}:${account}:secret:${name}-AbCdEf`;
const key = (id: string) => `arn:aws:kms:${region}:${account}:key/${id}`;
const existingTopic = `arn:aws:sns:${region}:${account}:ops-alarms`;

/** Between them the variants take both branches of every condition of the template. */
const variants = {
  prodDynamo: { name: 'rules-prod-dynamodb', stage: 'prod' },
  prodDolphin: {
    name: 'rules-prod-dolphinscheduler',
    stage: 'prod',
    params: {
      store: 'dolphinscheduler',
      dsDatabaseSecretArn: secret('ds-database'),
      dsDialect: 'postgresql',
      dsTimeZone: 'Asia/Shanghai',
      zkDigestSecretArn: secret('zk-digest'),
      secretsKmsKeyArns: `${key('1111aaaa-1111-1111-1111-111111111111')},${key('2222bbbb-2222-2222-2222-222222222222')}`,
      zkSubnetIds: 'subnet-0aaa,subnet-0bbb',
      zkSecurityGroupIds: 'sg-0ccc',
    },
  },
  devDynamo: {
    name: 'rules-dev-dynamodb',
    stage: 'dev',
    params: {
      alarmTopicArn: existingTopic,
      zkDigestSecretArn: secret('zk-digest'),
      secretsKmsKeyArns: key('3333cccc-3333-3333-3333-333333333333'),
      zkSubnetIds: 'subnet-0aaa',
      zkSecurityGroupIds: 'sg-0ccc',
    },
  },
  devDolphin: {
    name: 'rules-dev-dolphinscheduler',
    stage: 'dev',
    params: {
      store: 'dolphinscheduler',
      dsDatabaseSecretArn: secret('ds-database'),
      dsDialect: 'mysql',
      dsTimeZone: 'UTC',
      sweepSchedule: 'rate(1 minute)',
      alarmTopicArn: existingTopic,
      zkSubnetIds: 'subnet-0aaa',
      zkSecurityGroupIds: 'sg-0ccc',
    },
  },
} satisfies Record<string, Variant>;
type VariantName = keyof typeof variants;
const variantNames = Object.keys(variants) as VariantName[];

const raw = {} as Record<VariantName, Template>;
const templates = {} as Record<VariantName, Template>;
let db: SpecDatabase;

const paramsOf = (v: VariantName): Readonly<Record<string, string>> => (variants[v] as Variant).params ?? {};
const storeOf = (v: VariantName) => paramsOf(v).store ?? 'dynamodb';

/** A function's environment, with the values the tests resolve (names of tables and queues). */
function environmentOf(t: Template, fn: string): Record<string, string> {
  const vars = ((functionsOf(t).get(fn)?.properties.Environment as { Variables?: Record<string, unknown> })
    ?.Variables ?? {}) as Record<string, unknown>;
  return Object.fromEntries(Object.entries(vars).map(([k, v]) => [k, resolveString(t, v)]));
}

function roleOf(t: Template, fn: string): string {
  const role = referencedId(functionsOf(t).get(fn)?.properties.Role);
  if (!role) throw new Error(`function ${fn} has no role of the stack`);
  return role;
}

/** Managed policies the roles may use, with the actions they grant (on `*`). */
const managedPolicyActions: Record<string, readonly string[]> = {
  AWSXRayDaemonWriteAccess: [
    'xray:PutTraceSegments',
    'xray:PutTelemetryRecords',
    'xray:GetSamplingRules',
    'xray:GetSamplingTargets',
    'xray:GetSamplingStatisticSummaries',
  ],
  'service-role/AWSLambdaVPCAccessExecutionRole': [
    'ec2:CreateNetworkInterface',
    'ec2:DescribeNetworkInterfaces',
    'ec2:DescribeSubnets',
    'ec2:DeleteNetworkInterface',
    'ec2:AssignPrivateIpAddresses',
    'ec2:UnassignPrivateIpAddresses',
    'logs:CreateLogGroup',
    'logs:CreateLogStream',
    'logs:PutLogEvents',
  ],
};

/** Resource ARNs of a statement, resolved (`Fn::Split` of a list parameter included). */
function resourcesOf(t: Template, s: Statement): string[] {
  return asList(s.Resource as unknown).flatMap((r) => {
    const f = intrinsicOf(r);
    if (f?.[0] === 'Fn::Split') {
      const [sep, text] = f[1] as [string, unknown];
      return resolveString(t, text).split(sep);
    }
    return [resolveString(t, r)];
  });
}

const matches = (pattern: string, value: string) =>
  new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`).test(value);

/** Whether the role lets its function do `action` on `resource` (inline statements or managed policies). */
function allows(t: Template, roleId: string, action: string, resource: string): boolean {
  for (const policy of managedPolicies(t, roleId)) {
    const actions = managedPolicyActions[policy];
    if (!actions) throw new Error(`${roleId}: managed policy ${policy} is not known to these tests`);
    if (actions.includes(action)) return true;
  }
  return roleStatements(t, roleId).some(
    (s) =>
      s.Effect === 'Allow' &&
      asList(s.Action).some((a) => matches(a, action)) &&
      resourcesOf(t, s).some((r) => matches(r, resource)),
  );
}

/** The secrets a function reads at cold start, by what its handler loads (docs/configuration.md, note ¹). */
function secretsRead(t: Template, fn: string): { parameters: string[]; secrets: string[] } {
  const env = environmentOf(t, fn);
  const store = env.STORE ?? 'dynamodb';
  // The failover function reads the ZooKeeper settings only with the DolphinScheduler store; the watcher
  // and the sweep always. The database secret: the failover function and the sweep, with that store.
  const readsRegistry = fn !== 'failover' || store === 'dolphinscheduler';
  const readsDatabase = store === 'dolphinscheduler' && (fn === 'failover' || fn === 'sweep');
  const parameters = readsRegistry && env.ZK_CONNECT_PARAMETER ? [env.ZK_CONNECT_PARAMETER] : [];
  const secrets = [
    ...(readsRegistry && env.ZK_DIGEST_SECRET_ARN && env.ZK_DIGEST_SECRET_ARN !== 'none'
      ? [env.ZK_DIGEST_SECRET_ARN]
      : []),
    ...(readsDatabase && env.DS_DATABASE_SECRET_ARN && env.DS_DATABASE_SECRET_ARN !== 'none'
      ? [env.DS_DATABASE_SECRET_ARN]
      : []),
  ];
  return { parameters, secrets };
}

/** A CloudWatch metric reference: from an alarm, or from a dashboard widget's metric array. */
interface MetricRef {
  where: string;
  namespace: string;
  name: string;
  dimensions: Record<string, string>;
}

function alarmMetrics(t: Template): MetricRef[] {
  return Object.entries(t.Resources)
    .filter(([, r]) => r.Type === 'AWS::CloudWatch::Alarm')
    .map(([id, r]) => {
      const p = r.Properties ?? {};
      const dims = (p.Dimensions ?? []) as Array<{ Name: string; Value: unknown }>;
      return {
        where: id,
        namespace: String(p.Namespace),
        name: String(p.MetricName),
        dimensions: Object.fromEntries(dims.map((d) => [d.Name, resolveString(t, d.Value)])),
      };
    });
}

interface Widget {
  type: string;
  properties: { title?: string; metrics?: unknown[][]; region?: string; markdown?: string };
}

function dashboardOf(t: Template): { name: string; widgets: Widget[] } {
  const entries = Object.values(t.Resources).filter((r) => r.Type === 'AWS::CloudWatch::Dashboard');
  expect(entries).toHaveLength(1);
  const p = entries[0]?.Properties ?? {};
  const body = JSON.parse(resolveString(t, p.DashboardBody)) as { widgets: Widget[] };
  return { name: resolveString(t, p.DashboardName), widgets: body.widgets };
}

function dashboardMetrics(t: Template): MetricRef[] {
  return dashboardOf(t).widgets.flatMap((w) =>
    (w.properties.metrics ?? []).map((m) => {
      const parts = m.filter((x) => typeof x === 'string') as string[];
      const [namespace, name, ...pairs] = parts;
      expect(pairs.length % 2, `${w.properties.title}: ${JSON.stringify(m)}`).toBe(0);
      const dimensions: Record<string, string> = {};
      for (let i = 0; i < pairs.length; i += 2) dimensions[pairs[i] as string] = pairs[i + 1] as string;
      return {
        where: `dashboard "${w.properties.title}"`,
        namespace: String(namespace),
        name: String(name),
        dimensions,
      };
    }),
  );
}

/**
 * Every way a metric reference fails to name a series that exists: for our namespace, a metric no function
 * writes or dimensions other than the ones written; for AWS's, a metric or dimension set AWS does not
 * publish, or a dimension value naming no queue or function of the stack.
 */
function metricProblems(t: Template, refs: readonly MetricRef[]): string[] {
  const functions = functionsOf(t);
  const names = emittedMetricNames([...functions.keys()]);
  const series = new Map<string, MetricSeries>(
    [...functions.keys()].map((fn) => [fn, emittedSeries(environmentOf(t, fn))]),
  );
  const queueNames = new Set(
    Object.values(t.Resources)
      .filter((r) => r.Type === 'AWS::SQS::Queue')
      .map((r) => resolveString(t, r.Properties?.QueueName)),
  );
  const functionNames = new Set(
    [...functions.values()].map((f) => resolveString(t, f.properties.FunctionName)),
  );
  const problems: string[] = [];
  for (const ref of refs) {
    const label = `${ref.where}: ${ref.namespace}/${ref.name} ${JSON.stringify(ref.dimensions)}`;
    if (!ref.namespace.startsWith('AWS/')) {
      const writers = [...functions.keys()].filter((fn) => names.get(fn)?.has(ref.name));
      if (writers.length === 0) {
        problems.push(`${label}: no function writes this metric`);
        continue;
      }
      const same = writers.some((fn) => {
        const s = series.get(fn);
        return (
          s?.namespace === ref.namespace &&
          JSON.stringify(sorted(s.dimensions)) === JSON.stringify(sorted(ref.dimensions))
        );
      });
      if (!same)
        problems.push(
          `${label}: written as ${writers.map((fn) => `${fn} ${JSON.stringify(series.get(fn))}`).join('; ')}`,
        );
      continue;
    }
    const sets = awsMetricDimensionSets(db, ref.namespace, ref.name);
    if (!sets) {
      problems.push(`${label}: AWS publishes no such metric`);
      continue;
    }
    const dimNames = Object.keys(ref.dimensions).sort();
    if (!sets.some((s) => JSON.stringify(s) === JSON.stringify(dimNames)))
      problems.push(`${label}: AWS publishes it with dimensions ${JSON.stringify(sets)}`);
    for (const [dim, value] of Object.entries(ref.dimensions)) {
      if (dim === 'QueueName' && !queueNames.has(value))
        problems.push(`${label}: no queue ${value} in the stack`);
      if (dim === 'FunctionName' && !functionNames.has(value))
        problems.push(`${label}: no function ${value} in the stack`);
    }
  }
  return problems;
}

const sorted = (o: Record<string, string>) =>
  Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b)));

describe('generated templates of both stores, prod and dev (sls package, offline)', () => {
  beforeAll(async () => {
    db = await loadSpec();
    for (const v of variantNames) {
      raw[v] = packageTemplate(variants[v]);
      templates[v] = effectiveTemplate(raw[v]);
    }
  }, 300_000);

  describe('against AWS specifications', () => {
    it('matches the CloudFormation resource specification: types, properties at every depth, required properties, Fn::GetAtt attributes', () => {
      for (const v of variantNames) {
        expect(specProblems(raw[v], db), `${v} (both branches of each condition)`).toEqual([]);
        expect(specProblems(templates[v], db), `${v} (as deployed)`).toEqual([]);
      }
    });

    it('names only IAM actions and condition keys that exist, in every policy (roles, key policy, bucket policy, permissions)', async () => {
      for (const v of variantNames) expect(await iamProblems(raw[v]), v).toEqual([]);
    });

    it('rejects a deliberately broken copy of the template', async () => {
      const broken = structuredClone(templates.prodDynamo);
      const props = (id: string) => {
        const p = broken.Resources[id]?.Properties;
        if (!p) throw new Error(`no ${id}`);
        return p;
      };
      props('FailoverQueue').VisibilityTimeOut = 720; // misspelt property
      props('InstancesTable').PointInTimeRecoverySpecification = { Enabled: true }; // unknown nested property
      delete props('LocksTable').KeySchema; // required property
      props('WatcherLambdaFunction').Timeout = 'a minute'; // wrong type
      broken.Resources.Extra = { Type: 'AWS::SQS::Queues', Properties: {} }; // unknown resource type
      broken.Outputs = { ...broken.Outputs, QueueUrl: { Value: { 'Fn::GetAtt': ['FailoverQueue', 'Url'] } } }; // unknown attribute
      (
        props('FailoverRole').Policies as Array<{ PolicyDocument: { Statement: Statement[] } }>
      )[0]?.PolicyDocument.Statement.push(
        {
          Effect: 'Allow',
          Action: ['sqs:SendMessageBatch'],
          Resource: 'arn:aws:sqs:us-east-1:123456789012:q',
        },
        {
          Effect: 'Allow',
          Action: ['kms:Decrypt'],
          Resource: '*',
          Condition: { StringEquals: { 'kms:ViaServices': 'ssm.us-east-1.amazonaws.com' } },
        },
      );

      const spec = specProblems(broken, db);
      expect(spec).toEqual(
        expect.arrayContaining([
          expect.stringContaining(
            'FailoverQueue.Properties.VisibilityTimeOut: AWS::SQS::Queue has no property',
          ),
          expect.stringContaining('PointInTimeRecoverySpecification has no property Enabled'),
          expect.stringContaining('LocksTable.Properties: required property KeySchema'),
          expect.stringContaining('WatcherLambdaFunction.Properties.Timeout: expected a number'),
          expect.stringContaining('Extra: unknown resource type AWS::SQS::Queues'),
          expect.stringContaining('AWS::SQS::Queue has no attribute Url'),
        ]),
      );
      expect(spec).toHaveLength(6);
      expect(await iamProblems(broken)).toEqual([
        expect.stringContaining('sqs:SendMessageBatch is not an IAM action'),
        expect.stringContaining('unknown condition key kms:ViaServices'),
      ]);
    });
  });

  describe('service rules', () => {
    it('grants X-Ray writes to every function that traces', () => {
      for (const v of variantNames) {
        const t = templates[v];
        for (const [fn, f] of functionsOf(t)) {
          if ((f.properties.TracingConfig as { Mode?: string } | undefined)?.Mode !== 'Active') continue;
          for (const action of ['xray:PutTraceSegments', 'xray:PutTelemetryRecords'])
            expect(allows(t, roleOf(t, fn), action, '*'), `${v} ${fn} ${action}`).toBe(true);
        }
      }
    });

    it('puts the failover function in the private network with the DolphinScheduler store only, and grants ENIs exactly to VPC functions', () => {
      for (const v of variantNames) {
        const t = templates[v];
        const vpcOf = (fn: string) => functionsOf(t).get(fn)?.properties.VpcConfig;
        expect(vpcOf('watcher'), v).toBeDefined();
        expect(vpcOf('sweep'), v).toEqual(vpcOf('watcher'));
        if (storeOf(v) === 'dolphinscheduler') expect(vpcOf('failover'), v).toEqual(vpcOf('watcher'));
        else expect(vpcOf('failover'), v).toBeUndefined();
        for (const fn of functionsOf(t).keys()) {
          const enis = [
            'ec2:CreateNetworkInterface',
            'ec2:DescribeNetworkInterfaces',
            'ec2:DeleteNetworkInterface',
          ];
          for (const action of enis)
            expect(allows(t, roleOf(t, fn), action, '*'), `${v} ${fn} ${action}`).toBe(
              vpcOf(fn) !== undefined,
            );
        }
      }
      const failoverVpc = functionsOf(templates.prodDolphin).get('failover')?.properties.VpcConfig as
        | { SubnetIds: unknown }
        | undefined;
      const subnets = failoverVpc?.SubnetIds;
      expect(subnets).toEqual({ 'Fn::Split': [',', 'subnet-0aaa,subnet-0bbb'] });
    });

    it('lets each function write its own log group', () => {
      for (const v of variantNames) {
        const t = templates[v];
        for (const [fn, f] of functionsOf(t)) {
          const group = `arn:aws:logs:${region}:${account}:log-group:/aws/lambda/${resolveString(t, f.properties.FunctionName)}:log-stream:x`;
          for (const action of ['logs:CreateLogStream', 'logs:PutLogEvents'])
            expect(allows(t, roleOf(t, fn), action, group), `${v} ${fn} ${action}`).toBe(true);
        }
      }
    });

    it('grants exactly the SSM parameter, secrets and customer KMS keys each function reads, per store', () => {
      for (const v of variantNames) {
        const t = templates[v];
        const keys =
          (paramsOf(v).secretsKmsKeyArns ?? 'none') === 'none'
            ? []
            : String(paramsOf(v).secretsKmsKeyArns).split(',');
        for (const fn of functionsOf(t).keys()) {
          const role = roleOf(t, fn);
          const reads = secretsRead(t, fn);
          const parameterArns = reads.parameters.map((p) => `arn:aws:ssm:${region}:${account}:parameter${p}`);
          for (const arn of parameterArns)
            expect(allows(t, role, 'ssm:GetParameter', arn), `${v} ${fn} ${arn}`).toBe(true);
          for (const arn of reads.secrets)
            expect(allows(t, role, 'secretsmanager:GetSecretValue', arn), `${v} ${fn} ${arn}`).toBe(true);
          const readsAny = reads.parameters.length + reads.secrets.length > 0;
          for (const k of keys) expect(allows(t, role, 'kms:Decrypt', k), `${v} ${fn} ${k}`).toBe(readsAny);
          // Nothing more: each such statement names only what the function reads.
          const granted = (prefix: string) =>
            roleStatements(t, role)
              .filter((s) => asList(s.Action).some((a) => a.startsWith(prefix)))
              .flatMap((s) => resourcesOf(t, s))
              .sort();
          expect(granted('ssm:'), `${v} ${fn}`).toEqual(parameterArns.sort());
          expect(granted('secretsmanager:'), `${v} ${fn}`).toEqual([...reads.secrets].sort());
          expect(granted('kms:'), `${v} ${fn}`).toEqual(readsAny ? [...keys].sort() : []);
        }
      }
      // The key grant is usable only through SSM and Secrets Manager.
      const kms = roleStatements(templates.prodDolphin, 'FailoverRole').find((s) =>
        asList(s.Action).includes('kms:Decrypt'),
      );
      const via = (kms?.Condition?.StringEquals?.['kms:ViaService'] ?? []) as unknown[];
      expect(via.map((x) => resolveString(templates.prodDolphin, x))).toEqual([
        `ssm.${region}.amazonaws.com`,
        `secretsmanager.${region}.amazonaws.com`,
      ]);
    });

    it("lets the sweep reach the DynamoDB store's work, outbox and commands queue with that store only", () => {
      for (const v of variantNames) {
        const t = templates[v];
        const role = roleOf(t, 'sweep');
        const dynamo = storeOf(v) === 'dynamodb';
        const arn = (id: string, suffix = '') =>
          `${resolveString(t, { 'Fn::GetAtt': [id, 'Arn'] })}${suffix}`;
        // Its executing work and its outbox (DESIGN section 4): DolphinScheduler's database replaces both.
        expect(allows(t, role, 'dynamodb:Query', arn('InstancesTable', '/index/byHost')), v).toBe(dynamo);
        expect(allows(t, role, 'dynamodb:Query', arn('TasksTable', '/index/byHost')), v).toBe(dynamo);
        expect(allows(t, role, 'dynamodb:Query', arn('CommandsTable', '/index/pending')), v).toBe(dynamo);
        expect(allows(t, role, 'dynamodb:UpdateItem', arn('CommandsTable')), v).toBe(dynamo);
        expect(allows(t, role, 'sqs:SendMessage', arn('CommandsQueue')), v).toBe(dynamo);
        // Either store: failover requests and the membership mirror; the repairs' lease locks (D5).
        expect(allows(t, role, 'sqs:SendMessage', arn('FailoverQueue')), v).toBe(true);
        expect(allows(t, role, 'dynamodb:PutItem', arn('ServersTable')), v).toBe(true);
        expect(allows(t, role, 'dynamodb:UpdateItem', arn('LocksTable')), v).toBe(!dynamo);
      }
    });

    it('gives functions the KMS permissions of any customer key that protects a table or queue they use', () => {
      for (const v of variantNames) {
        const t = templates[v];
        for (const [id, r] of Object.entries(t.Resources)) {
          const p = r.Properties ?? {};
          const cmk =
            r.Type === 'AWS::SQS::Queue'
              ? p.KmsMasterKeyId
              : r.Type === 'AWS::DynamoDB::Table'
                ? (p.SSESpecification as { KMSMasterKeyId?: unknown } | undefined)?.KMSMasterKeyId
                : undefined;
          if (cmk === undefined) continue;
          const keyArn = resolveString(t, cmk);
          if (keyArn.startsWith('alias/aws/')) continue; // AWS managed: its policy admits the account's principals via the service
          for (const fn of functionsOf(t).keys()) {
            const role = roleOf(t, fn);
            const uses = JSON.stringify(roleStatements(t, role)).includes(`"${id}"`);
            if (uses) expect(allows(t, role, 'kms:Decrypt', keyArn), `${v} ${fn} uses ${id}`).toBe(true);
          }
        }
      }
    });

    it('gives each SQS queue a visibility timeout of at least 6x its consumer timeout, and FIFO event sources their limits', () => {
      for (const v of variantNames) {
        const t = templates[v];
        const mappings = Object.values(t.Resources).filter(
          (r) => r.Type === 'AWS::Lambda::EventSourceMapping',
        );
        expect(mappings.length, v).toBeGreaterThan(0);
        for (const m of mappings) {
          const p = m.Properties ?? {};
          const queueId = referencedId(p.EventSourceArn) as string;
          const queue = t.Resources[queueId]?.Properties ?? {};
          const fnId = referencedId(p.FunctionName) as string;
          const fn = [...functionsOf(t)].find(([, f]) => f.id === fnId);
          expect(fn, `${v} ${fnId}`).toBeDefined();
          const [fnName, f] = fn as [string, { properties: Record<string, unknown> }];
          const window = Number(p.MaximumBatchingWindowInSeconds ?? 0);
          expect(Number(queue.VisibilityTimeout), `${v} ${queueId}`).toBeGreaterThanOrEqual(
            6 * Number(f.properties.Timeout) + window,
          );
          expect(p.FunctionResponseTypes, v).toEqual(['ReportBatchItemFailures']);
          if (queue.FifoQueue === true) {
            expect(Number(p.BatchSize ?? 10), `${v} FIFO batch size`).toBeLessThanOrEqual(10);
            expect(window, `${v} FIFO batching window`).toBe(0);
          }
          const concurrency = (p.ScalingConfig as { MaximumConcurrency?: number } | undefined)
            ?.MaximumConcurrency;
          if (concurrency !== undefined) {
            expect(concurrency).toBeGreaterThanOrEqual(2);
            expect(concurrency).toBeLessThanOrEqual(1000);
            const reserved = f.properties.ReservedConcurrentExecutions;
            if (reserved !== undefined) expect(Number(reserved)).toBeGreaterThanOrEqual(concurrency);
          }
          const queueArn = resolveString(t, p.EventSourceArn);
          for (const action of ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:GetQueueAttributes'])
            expect(allows(t, roleOf(t, fnName), action, queueArn), `${v} ${action}`).toBe(true);
        }
        // A dead-letter queue has the type of its source; a standard one keeps the original enqueue time.
        for (const [id, r] of Object.entries(t.Resources)) {
          const redrive = r.Properties?.RedrivePolicy as { deadLetterTargetArn?: unknown } | undefined;
          if (r.Type !== 'AWS::SQS::Queue' || !redrive) continue;
          const dlq = t.Resources[referencedId(redrive.deadLetterTargetArn) as string]?.Properties ?? {};
          expect(dlq.FifoQueue === true, `${v} ${id}`).toBe(r.Properties?.FifoQueue === true);
          if (r.Properties?.FifoQueue !== true)
            expect(Number(dlq.MessageRetentionPeriod)).toBeGreaterThan(
              Number(r.Properties?.MessageRetentionPeriod),
            );
        }
      }
    });

    it('schedules with valid rate expressions, the sweep at its parameter', () => {
      const rate = /^rate\((1 (minute|hour|day)|([2-9]|[1-9]\d+) (minutes|hours|days))\)$/;
      for (const v of variantNames) {
        const rules = Object.values(templates[v].Resources).filter((r) => r.Type === 'AWS::Events::Rule');
        for (const r of rules) expect(String(r.Properties?.ScheduleExpression), v).toMatch(rate);
        const sweepRule = templates[v].Resources.SweepEventsRuleSchedule1;
        expect(sweepRule?.Properties?.ScheduleExpression, v).toBe(
          paramsOf(v).sweepSchedule ?? 'rate(5 minutes)',
        );
      }
    });
  });

  describe('alarms and dashboard', () => {
    it('encrypts the created alarm topic with a rotated customer key whose policy lets CloudWatch alarms publish', () => {
      const t = templates.prodDynamo;
      const topic = t.Resources.AlarmTopic?.Properties ?? {};
      const keyId = referencedId(topic.KmsMasterKeyId);
      expect(keyId, 'not alias/aws/sns: CloudWatch cannot use the AWS managed key').toBeDefined();
      const keyResource = t.Resources[keyId as string];
      expect(keyResource?.Type).toBe('AWS::KMS::Key');
      expect(keyResource?.Properties?.EnableKeyRotation).toBe(true);
      const statements =
        (keyResource?.Properties?.KeyPolicy as { Statement: Statement[] } | undefined)?.Statement ?? [];
      const grantsTo = (principal: string, action: string) =>
        statements.some(
          (s) =>
            s.Effect === 'Allow' &&
            JSON.stringify(s.Principal) === JSON.stringify({ Service: principal }) &&
            asList(s.Action).some((a) => matches(a, action)) &&
            asList(s.Resource as string).includes('*'),
        );
      expect(grantsTo('cloudwatch.amazonaws.com', 'kms:Decrypt')).toBe(true);
      expect(grantsTo('cloudwatch.amazonaws.com', 'kms:GenerateDataKey')).toBe(true);
      // The account keeps administering the key (CloudFormation refuses a policy that locks it out).
      const admin = statements.find((s) => asList(s.Action).includes('kms:*'));
      expect(resolveString(t, (admin?.Principal as { AWS: unknown } | undefined)?.AWS)).toBe(
        `arn:aws:iam::${account}:root`,
      );
      const alarms = Object.values(t.Resources).filter((r) => r.Type === 'AWS::CloudWatch::Alarm');
      expect(alarms.length).toBeGreaterThan(0);
      for (const a of alarms) expect(a.Properties?.AlarmActions).toEqual([{ Ref: 'AlarmTopic' }]);
    });

    it('sends the alarms to an existing topic when one is named, creating no topic and no key', () => {
      const t = templates.devDynamo;
      const types = Object.values(t.Resources).map((r) => r.Type);
      expect(types).not.toContain('AWS::SNS::Topic');
      expect(types).not.toContain('AWS::KMS::Key');
      for (const r of Object.values(t.Resources).filter((x) => x.Type === 'AWS::CloudWatch::Alarm'))
        expect(r.Properties?.AlarmActions).toEqual([existingTopic]);
      expect(t.Outputs?.AlarmTopicArn?.Value).toBe(existingTopic);
    });

    it('alarms only on metrics that exist as the functions write them (namespace, name, every dimension)', () => {
      for (const v of variantNames)
        expect(metricProblems(templates[v], alarmMetrics(templates[v])), v).toEqual([]);
      const today = structuredClone(templates.prodDynamo);
      const lock = today.Resources.LockContentionAlarm?.Properties as {
        Dimensions: Array<{ Value: unknown }>;
      };
      (lock.Dimensions[0] as { Value: unknown }).Value = 'zk-failover'; // the value every stage shared
      expect(metricProblems(today, alarmMetrics(today))).toEqual([
        expect.stringContaining(
          'LockContentionAlarm: ZkFailover/LockContention {"service":"zk-failover"}: written as',
        ),
      ]);
    });

    it('keeps the metric series of two stages apart, and each stage alarms on its own', () => {
      const own = (v: VariantName) => {
        const t = templates[v];
        return new Set(
          [...functionsOf(t).keys()].map((fn) => JSON.stringify(emittedSeries(environmentOf(t, fn)))),
        );
      };
      const prod = own('prodDynamo');
      const dev = own('devDynamo');
      expect([...prod].filter((s) => dev.has(s))).toEqual([]);
      expect(own('prodDolphin')).toEqual(prod);
      for (const v of variantNames) {
        const series = own(v);
        for (const ref of alarmMetrics(templates[v]).filter((r) => !r.namespace.startsWith('AWS/')))
          expect(
            series.has(JSON.stringify({ namespace: ref.namespace, dimensions: ref.dimensions })),
            `${v} ${ref.where}`,
          ).toBe(true);
      }
    });

    it("has a dashboard with the operators' widgets, every metric of which exists as written", () => {
      for (const v of variantNames) {
        const t = templates[v];
        const { name, widgets } = dashboardOf(t);
        expect(name).toBe(`zk-failover-${variants[v].stage}`);
        const titles = widgets.map((w) => w.properties.title ?? '');
        for (const wanted of [
          /failovers and instances per minute/i,
          /detection delay/i,
          /lock contention/i,
          /continuations/i,
          /dead-letter queue depths/i,
          /age of the oldest/i,
          /sweep.*orphan/i,
          /function errors/i,
          /function durations/i,
        ])
          expect(
            titles.some((x) => wanted.test(x)),
            `${v} ${wanted}`,
          ).toBe(true);
        for (const w of widgets.filter((x) => x.type === 'metric')) expect(w.properties.region).toBe(region);
        const refs = dashboardMetrics(t);
        expect(refs.length).toBeGreaterThan(15);
        expect(metricProblems(t, refs), v).toEqual([]);
      }
    });

    it('documents every dashboard widget in the runbook', () => {
      const runbook = readFileSync(join(projectRoot, 'docs/runbook.md'), 'utf8');
      const start = runbook.indexOf('\n## Dashboard');
      expect(start).toBeGreaterThan(0);
      const section = runbook.slice(start);
      for (const w of dashboardOf(templates.prodDynamo).widgets.filter((x) => x.type === 'metric'))
        expect(section, String(w.properties.title)).toContain(`**${w.properties.title}**`);
    });
  });
});
