import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../../lib/local/service.ts';

interface Template {
  Resources: Record<string, { Type: string; Properties: Record<string, unknown> }>;
}

describe('sls package', () => {
  it('builds the CloudFormation template offline, without AWS credentials', () => {
    const env: NodeJS.ProcessEnv = { ...process.env, SLS_TELEMETRY_DISABLED: '1' };
    for (const k of Object.keys(env)) if (k.startsWith('AWS_')) delete env[k];
    execFileSync('npx', ['sls', 'package', '--stage', 'ci', '--package', '.serverless-ci'], {
      cwd: projectRoot,
      env,
      stdio: 'pipe',
      timeout: 120_000,
    });
    const template = JSON.parse(
      readFileSync(join(projectRoot, '.serverless-ci', 'cloudformation-template-update-stack.json'), 'utf8'),
    ) as Template;
    const functions = Object.values(template.Resources).filter((r) => r.Type === 'AWS::Lambda::Function');
    expect(functions).toHaveLength(3);
    for (const f of functions) expect(f.Properties.Runtime).toBe('nodejs22.x');
    const mapping = Object.values(template.Resources).find(
      (r) => r.Type === 'AWS::Lambda::EventSourceMapping',
    );
    expect(mapping?.Properties.FunctionResponseTypes).toEqual(['ReportBatchItemFailures']);
    const tables = Object.values(template.Resources).filter((r) => r.Type === 'AWS::DynamoDB::Table');
    expect(tables).toHaveLength(5);
    const queues = Object.values(template.Resources).filter((r) => r.Type === 'AWS::SQS::Queue');
    expect(queues.map((q) => q.Properties.FifoQueue)).toEqual([true, true, true, true]);
    const rules = Object.values(template.Resources).filter((r) => r.Type === 'AWS::Events::Rule');
    expect(rules.map((r) => r.Properties.ScheduleExpression).sort()).toEqual([
      'rate(1 minute)',
      'rate(5 minutes)',
    ]);
  });
});
