// `zkf status`: the registry (live ZooKeeper listing and the membership mirror), dead servers, executing
// work per host, locks and their holders, pending commands, queue and DLQ depths. On DolphinScheduler's
// database the work and the commands are read from its tables (lib/cli/commands/ds-status.ts).
import { intOption } from '../args.ts';
import type { CliCommand } from '../command.ts';
import { isoTime, Progress, relative, table } from '../format.ts';
import {
  listRegistry,
  type QueueDepth,
  queueDepth,
  readLocks,
  readMirror,
  readPendingCommands,
  scanWork,
  type WorkByHost,
} from '../inspect.ts';
import { type DsStatusParts, readDsStatus, renderDsStatus } from './ds-status.ts';

const zxidHex = (czxid: string | undefined) =>
  czxid === undefined ? '-' : `0x${BigInt(czxid).toString(16)}`;

export const statusCommand: CliCommand = {
  words: ['status'],
  summary: 'registry members, dead servers, executing work per host, locks, pending commands, queue depths',
  synopsis: '[--no-work] [--limit N]',
  description: `Shows, read-only:
  - registry: the servers registered in ZooKeeper now (when a connect string is known: READY, or
    --zookeeper) with their incarnation (czxid, startupTime), next to the membership mirror the watcher
    keeps (servers table), which is what the failover function trusts for liveness (F3);
  - dead servers: mirror rows not alive (removed incarnations), and live rows ZooKeeper no longer lists
    (the mirror lags, or no watcher is running);
  - executing work per host: process instances in F1 states per owning master (and unowned ones: failed
    over, not yet taken over by a master), tasks in F5 states per worker and NEED_FAULT_TOLERANCE ones.
    This scans both tables once (projection host/state; progress on stderr); --no-work skips it;
  - locks (failover/<type>/<host>): holder, fence, lease expiry;
  - pending commands: written by a failover but not yet marked enqueued (the outbox);
  - queue depths: failover and commands queues and their DLQs (visible / in flight / delayed).

On DolphinScheduler's database (the READY line's store, or --store postgresql|mysql) the work comes from
its tables instead: executing workflow instances per host (one scan of t_ds_process_instance: it has no
index on host), the unowned ones (host 'NULL' with a command pending in t_ds_command, host 'NULL' without
one, SQL NULL host) with when the sweep repairs them, the commands waiting in t_ds_command and those in
t_ds_error_command, and DolphinScheduler's own failover locks in ZooKeeper.`,
  options: [
    { name: 'no-work', description: 'skip the scan of the instances and tasks tables' },
    { name: 'limit', value: 'N', description: 'rows per table in the human output (default 30)' },
  ],
  async run(context) {
    const { io, options } = context;
    const limit = intOption(options, 'limit', 30, { min: 1, max: 100_000 }, 'status');
    const target = await context.target();
    const now = io.now();
    const progress = new Progress(io.stderr, 'status');
    const ds = target.store.kind === 'dolphinscheduler' ? target.store : undefined;
    const [registry, mirror, locks, pending, depths] = await Promise.all([
      listRegistry({
        zookeeper: target.zookeeper,
        root: target.registryRoot,
        layout: target.layout,
        digest: io.env.ZK_DIGEST,
      }),
      readMirror(target.dynamodb, target.tables.servers),
      readLocks(target.dynamodb, target.tables.locks, now),
      ds === undefined ? readPendingCommands(target.dynamodb, target.tables.commands) : undefined,
      Promise.all(
        (['failover', 'failoverDlq', 'commands', 'commandsDlq'] as const).map(
          async (q) => [q, await queueDepth(target.sqs, target.queues[q])] as const,
        ),
      ),
    ]);
    const listed = new Map(registry.servers.map((s) => [`${s.nodeType}/${s.host}`, s]));
    const isLive = (nodeType: string, host: string): boolean | null => {
      if (registry.status === 'listed') return listed.has(`${nodeType}/${host}`);
      const row = mirror.find((r) => r.id === `${nodeType}/${host}`);
      return row === undefined ? null : row.alive;
    };
    let work: WorkByHost | undefined;
    let dsParts: DsStatusParts | undefined;
    if (ds !== undefined) {
      dsParts = await readDsStatus(target, ds, {
        scanWork: options.get('no-work') === undefined,
        digest: io.env.ZK_DIGEST,
        isLive: async (host) => isLive('master', host),
      });
    } else if (options.get('no-work') === undefined) {
      work = await scanWork(target.dynamodb, target.tables, (n) => progress.update(`${n} items scanned`));
      progress.done(
        `scanned ${work.itemsRead} items of ${target.tables.instances} and ${target.tables.tasks}`,
      );
    }
    const dead = mirror
      .filter((r) => !r.alive || (registry.status === 'listed' && !listed.has(r.id)))
      .map((r) => ({
        nodeType: r.nodeType,
        host: r.host,
        czxid: r.czxid,
        startupTime: r.startupTime,
        removedAt: r.removedAt ?? null,
        why: r.alive
          ? 'not in ZooKeeper, still alive in the mirror (mirror lag or no watcher running)'
          : 'removed',
      }));
    const hosts = (map: Map<string, number> | undefined, nodeType: 'master' | 'worker') =>
      [...(map ?? new Map<string, number>()).entries()]
        .filter(([host]) => host !== '')
        .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
        .map(([host, executing]) => ({ host, executing, live: isLive(nodeType, host) }));
    const result = {
      target: {
        mode: target.mode,
        description: target.description,
        tables: target.tables,
        queues: target.queues,
        store:
          ds === undefined
            ? { kind: 'dynamodb' as const }
            : {
                kind: ds.kind,
                dialect: ds.dialect,
                database: ds.location,
                timeZone: ds.timeZone,
                version: ds.version,
                source: ds.source,
              },
      },
      registry: {
        status: registry.status,
        ...(registry.error === undefined ? {} : { error: registry.error }),
        members: registry.servers.map((s) => ({
          nodeType: s.nodeType,
          host: s.host,
          czxid: s.czxid,
          startupTime: s.startupTime,
          startupTimeSource: s.startupTimeSource,
          ephemeralOwner: s.ephemeralOwner,
        })),
      },
      mirror: mirror.map((r) => ({
        nodeType: r.nodeType,
        host: r.host,
        alive: r.alive,
        czxid: r.czxid,
        startupTime: r.startupTime,
        seenAt: r.seenAt,
        removedAt: r.removedAt ?? null,
        previousCzxid: r.previousCzxid ?? null,
        pendingRequests: r.pending?.size ?? 0,
      })),
      dead,
      work:
        dsParts !== undefined
          ? dsParts.work
          : work === undefined
            ? null
            : {
                instances: hosts(work.instances, 'master'),
                unownedInstances: work.instances.get('') ?? 0,
                tasks: hosts(work.tasks, 'worker'),
                needFaultTolerance: Object.fromEntries(work.needFaultTolerance),
                itemsScanned: work.itemsRead,
              },
      locks,
      ...(pending === undefined ? {} : { pendingCommands: pending }),
      ...(dsParts === undefined
        ? {}
        : { commands: dsParts.commands, dolphinSchedulerLocks: dsParts.dolphinSchedulerLocks }),
      queues: Object.fromEntries(depths) as Record<string, QueueDepth>,
    };
    if (context.json) {
      context.print('', result);
      return 0;
    }
    const out: string[] = [
      `zk-failover status: ${target.description}`,
      ...(ds === undefined
        ? []
        : [
            `store: DolphinScheduler ${ds.version} database (${ds.dialect}) ${ds.location}, times in ${ds.timeZone} (from ${ds.source})`,
          ]),
      '',
    ];
    const more = (n: number) => (n > limit ? [`  ... ${n - limit} more (--limit)`] : []);
    out.push(
      `REGISTRY (ZooKeeper ${target.zookeeper ?? 'not given'}, ${target.layout} at ${target.registryRoot}): ${
        registry.status === 'listed'
          ? `${registry.servers.length} registered`
          : registry.status === 'unavailable'
            ? `unavailable (${registry.error ?? ''})`
            : 'not listed (give --zookeeper for a live listing)'
      }`,
    );
    const mirrorById = new Map(mirror.map((r) => [r.id, r]));
    const members = [...new Set([...listed.keys(), ...mirror.map((r) => r.id)])].sort();
    if (members.length > 0) {
      out.push(
        table(
          ['type', 'host', 'zookeeper', 'czxid', 'startupTime', 'mirror', 'mirror czxid', 'seen'],
          members.slice(0, limit).map((id) => {
            const z = listed.get(id);
            const r = mirrorById.get(id);
            return [
              z?.nodeType ?? r?.nodeType ?? '?',
              z?.host ?? r?.host ?? '?',
              registry.status === 'listed' ? (z ? 'registered' : 'absent') : '?',
              zxidHex(z?.czxid),
              isoTime(z?.startupTime ?? r?.startupTime),
              r === undefined ? 'no row' : r.alive ? 'alive' : `removed ${relative(r.removedAt, now)}`,
              zxidHex(r?.czxid),
              r === undefined ? '-' : relative(r.seenAt, now),
            ];
          }),
        ),
        ...more(members.length),
      );
    }
    out.push('', `DEAD SERVERS: ${dead.length}`);
    if (dead.length > 0) {
      out.push(
        table(
          ['type', 'host', 'last czxid', 'removed', 'why'],
          dead
            .slice(0, limit)
            .map((d) => [d.nodeType, d.host, zxidHex(d.czxid), relative(d.removedAt, now), d.why]),
        ),
        ...more(dead.length),
      );
    }
    out.push('');
    if (dsParts !== undefined && ds !== undefined) {
      out.push(...renderDsStatus(dsParts, ds, limit, now));
    } else if (work === undefined) {
      out.push('EXECUTING WORK: not scanned (--no-work)');
    } else {
      const w = {
        instances: hosts(work.instances, 'master'),
        unownedInstances: work.instances.get('') ?? 0,
        tasks: hosts(work.tasks, 'worker'),
        needFaultTolerance: Object.fromEntries(work.needFaultTolerance),
      };
      const liveCell = (live: boolean | null) =>
        live === null ? 'unknown' : live ? 'live' : 'NOT LIVE (orphan)';
      out.push(
        `EXECUTING PROCESS INSTANCES per master (F1 states); unowned (failed over, not yet taken over): ${w.unownedInstances}`,
      );
      if (w.instances.length > 0) {
        out.push(
          table(
            ['host', 'executing', 'host is'],
            w.instances.slice(0, limit).map((h) => [h.host, String(h.executing), liveCell(h.live)]),
          ),
          ...more(w.instances.length),
        );
      }
      out.push('', 'EXECUTING TASKS per worker (F5 states), and NEED_FAULT_TOLERANCE ones');
      const workers = [
        ...new Set([...w.tasks.map((t) => t.host), ...Object.keys(w.needFaultTolerance)]),
      ].filter((h) => h !== '');
      if (workers.length > 0) {
        out.push(
          table(
            ['host', 'executing', 'need fault tolerance', 'host is'],
            workers
              .slice(0, limit)
              .map((h) => [
                h,
                String(w.tasks.find((t) => t.host === h)?.executing ?? 0),
                String(w.needFaultTolerance[h] ?? 0),
                liveCell(isLive('worker', h)),
              ]),
          ),
          ...more(workers.length),
        );
      }
    }
    out.push('', `LOCKS: ${locks.length} (${locks.filter((l) => l.state === 'held').length} held)`);
    if (locks.length > 0) {
      out.push(
        table(
          ['lock', 'state', 'owner', 'fence', 'lease expires', 'checkpoint'],
          locks
            .slice(0, limit)
            .map((l) => [
              l.name,
              l.state,
              l.owner ?? '-',
              String(l.fence ?? '-'),
              l.state === 'free' ? '-' : relative(l.leaseExpiresAt, now),
              l.checkpoint ? 'yes' : '-',
            ]),
        ),
        ...more(locks.length),
      );
    }
    if (pending !== undefined) {
      out.push(
        '',
        `PENDING COMMANDS (written, not yet on the queue): ${pending.count}${
          pending.oldestCreatedAt === undefined ? '' : `, oldest ${relative(pending.oldestCreatedAt, now)}`
        }${pending.malformed > 0 ? `, ${pending.malformed} malformed` : ''}`,
      );
      if (pending.count > 0) {
        out.push(
          table(
            ['failed host', 'pending'],
            Object.entries(pending.byHost).map(([h, n]) => [h, String(n)]),
          ),
        );
      }
    }
    out.push(
      '',
      'QUEUES',
      table(
        ['queue', 'visible', 'in flight', 'delayed'],
        depths.map(([q, d]) => [
          {
            failover: 'failover',
            failoverDlq: 'failover DLQ',
            commands: 'commands',
            commandsDlq: 'commands DLQ',
          }[q],
          String(d.visible),
          String(d.inFlight),
          String(d.delayed),
        ]),
      ),
    );
    context.print(out.join('\n'), result);
    return 0;
  },
};
