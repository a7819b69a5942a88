// The stack's CloudWatch dashboard: what an operator looks at first. docs/runbook.md ("Dashboard") says
// what each widget means and what to do when it turns red; the template tests check every metric it
// names against what the functions emit (namespace, name, dimensions) and against AWS's metric catalogue.
//
// Written as code because a dashboard body is one JSON string in CloudFormation: the widgets are plain
// objects here, and the names CloudFormation knows only at deploy time (region, queue and function names)
// are spliced in with Fn::Join, without `${...}` text the Serverless variable resolver would claim.

/** A CloudFormation value inside the body: a marker in the JSON text, replaced by the intrinsic. */
function bodyWith(build) {
  const intrinsics = [];
  const cfn = (value) => {
    intrinsics.push(value);
    return `@@cfn${intrinsics.length - 1}@@`;
  };
  const text = JSON.stringify(build(cfn));
  const parts = text.split(/@@cfn(\d+)@@/).map((part, i) => (i % 2 === 1 ? intrinsics[Number(part)] : part));
  return { 'Fn::Join': ['', parts.filter((p) => p !== '')] };
}

module.exports = async ({ resolveVariable }) => {
  const service = await resolveVariable('self:service');
  const stage = await resolveVariable('sls:stage');
  const namespace = await resolveVariable('self:custom.metricsNamespace');
  const metricsService = await resolveVariable('self:custom.metricsService');
  const timeoutMs = async (fn) => 1000 * Number(await resolveVariable(`self:functions.${fn}.timeout`));
  const timeouts = {
    watcher: await timeoutMs('watcher'),
    failover: await timeoutMs('failover'),
    sweep: await timeoutMs('sweep'),
  };

  const body = bodyWith((cfn) => {
    const region = cfn({ Ref: 'AWS::Region' });
    /** A metric the functions write (EMF through Powertools): one series per stage, by `service`. */
    const own = (name, options) => [namespace, name, 'service', metricsService, options];
    const queue = (name, logicalId, label) => [
      'AWS/SQS',
      name,
      'QueueName',
      cfn({ 'Fn::GetAtt': [logicalId, 'QueueName'] }),
      { label },
    ];
    const lambda = (name, fn, options) => [
      'AWS/Lambda',
      name,
      'FunctionName',
      cfn({ Ref: `${fn[0].toUpperCase()}${fn.slice(1)}LambdaFunction` }),
      { label: fn, ...options },
    ];
    const graph = (x, y, width, title, properties) => ({
      type: 'metric',
      x,
      y,
      width,
      height: 6,
      properties: { title, region, view: 'timeSeries', stacked: false, ...properties },
    });
    const alarmLine = (label, value) => ({ horizontal: [{ label, value, color: '#d62728' }] });
    return {
      start: '-PT6H',
      widgets: [
        {
          type: 'text',
          x: 0,
          y: 0,
          width: 24,
          height: 2,
          properties: {
            markdown: `## ${service} ${stage}\nWhat each widget means and what to do when it turns red: docs/runbook.md, section "Dashboard". Red lines are alarm thresholds.`,
          },
        },
        graph(0, 2, 12, 'Failovers and instances per minute', {
          period: 60,
          stat: 'Sum',
          metrics: [
            own('FailoverDuration', { stat: 'SampleCount', label: 'failover requests handled' }),
            own('InstancesFailedOver', { label: 'process instances failed over' }),
            own('TasksFailedOver', { label: 'task instances failed over' }),
            own('CommandsEnqueued', { label: 'recovery commands enqueued' }),
          ],
        }),
        graph(12, 2, 12, 'Detection delay (watch event to request sent, ms)', {
          period: 60,
          metrics: [
            own('DetectionDelay', { stat: 'p50', label: 'p50' }),
            own('DetectionDelay', { stat: 'p99', label: 'p99' }),
            own('DetectionDelay', { stat: 'Maximum', label: 'max' }),
          ],
          yAxis: { left: { min: 0 } },
        }),
        graph(0, 8, 8, 'Lock contention (per 5 minutes)', {
          period: 300,
          stat: 'Sum',
          metrics: [own('LockContention', { label: 'lock found held' })],
          annotations: alarmLine('LockContentionAlarm', 20),
        }),
        graph(8, 8, 8, 'Continuations (per minute)', {
          period: 60,
          stat: 'Sum',
          metrics: [own('Continuations', { label: 'continuation requests sent' })],
        }),
        graph(16, 8, 8, 'Failed and poison requests (per minute)', {
          period: 60,
          stat: 'Sum',
          metrics: [
            own('FailedRequests', { label: 'failover attempts failed (retried)' }),
            own('PoisonMessages', { label: 'poison messages dead-lettered' }),
          ],
        }),
        graph(0, 14, 8, 'Dead-letter queue depths', {
          period: 60,
          stat: 'Maximum',
          metrics: [
            queue('ApproximateNumberOfMessagesVisible', 'FailoverDeadLetterQueue', 'failover DLQ'),
            queue('ApproximateNumberOfMessagesVisible', 'CommandsDeadLetterQueue', 'commands DLQ'),
          ],
          annotations: alarmLine('FailoverDeadLetterAlarm / CommandsDeadLetterAlarm', 0),
        }),
        graph(8, 14, 8, 'Age of the oldest message (s)', {
          period: 60,
          stat: 'Maximum',
          metrics: [
            queue('ApproximateAgeOfOldestMessage', 'FailoverQueue', 'oldest failover request'),
            queue('ApproximateAgeOfOldestMessage', 'CommandsQueue', 'oldest unconsumed command'),
          ],
          annotations: alarmLine('FailoverRequestAgeAlarm', 300),
        }),
        graph(16, 14, 8, 'Sweep: orphan hosts found (per run)', {
          period: 300,
          stat: 'Maximum',
          metrics: [
            own('OrphanHosts', { label: 'orphan hosts' }),
            own('RegistryUnavailable', { stat: 'Sum', label: 'runs without a registry listing' }),
          ],
        }),
        graph(0, 20, 12, 'Function errors (per 5 minutes)', {
          period: 300,
          stat: 'Sum',
          metrics: [
            lambda('Errors', 'watcher'),
            lambda('Errors', 'failover'),
            lambda('Errors', 'sweep'),
            lambda('Throttles', 'failover', { label: 'failover throttles' }),
          ],
          annotations: alarmLine('WatcherErrorsAlarm / FailoverErrorsAlarm / SweepErrorsAlarm', 0),
        }),
        graph(12, 20, 12, 'Function durations (maximum, ms)', {
          period: 60,
          stat: 'Maximum',
          metrics: [
            lambda('Duration', 'watcher'),
            lambda('Duration', 'failover'),
            lambda('Duration', 'sweep'),
          ],
          yAxis: { left: { min: 0 } },
          annotations: {
            horizontal: Object.entries(timeouts).map(([fn, value]) => ({
              label: `${fn} timeout`,
              value,
              color: '#ff7f0e',
            })),
          },
        }),
      ],
    };
  });

  return {
    Resources: {
      Dashboard: {
        Type: 'AWS::CloudWatch::Dashboard',
        Properties: { DashboardName: `${service}-${stage}`, DashboardBody: body },
      },
    },
    Outputs: {
      DashboardName: { Value: { Ref: 'Dashboard' } },
    },
  };
};
