// The heartbeats real DolphinScheduler releases write (shared/dolphinscheduler.md section 1), byte for
// byte: the ds-3 layout must take each one's startupTime, and the registry listing must show a node
// carrying it as a live server with that startup time.
import { describe, expect, it } from 'vitest';
import { parseHeartbeat } from '../../lib/registry/heartbeat.ts';
import { createLayout } from '../../lib/registry/layout.ts';
import { RegistryView } from '../../lib/registry/listing.ts';
import type { ZkChildren, ZkNodeData, ZkSession, ZkStat } from '../../lib/registry/zk-client.ts';

const ds31Master =
  '{"startupTime":1703123456789,"reportTime":1703123556789,"cpuUsage":0.12,"memoryUsage":0.61,"loadAverage":1.37,"availablePhysicalMemorySize":5.43,"maxCpuloadAvg":16.0,"reservedMemory":0.3,"diskAvailable":87.21,"processId":2871}';
/** 3.1 worker: the master's fields plus an integer serverStatus (0 normal, 1 abnormal, 2 busy). */
const ds31Worker = (serverStatus: 0 | 1 | 2) =>
  `{"startupTime":1703123456790,"reportTime":1703123556790,"cpuUsage":0.12,"memoryUsage":0.61,"loadAverage":1.37,"availablePhysicalMemorySize":5.43,"maxCpuloadAvg":16.0,"reservedMemory":0.3,"diskAvailable":87.21,"processId":2872,"serverStatus":${serverStatus},"workerHostWeight":100,"workerWaitingTaskCount":0,"workerExecThreadCount":100}`;
const ds32Master =
  '{"processId":2871,"startupTime":1721462400123,"reportTime":1721466012345,"jvmCpuUsage":0.0123,"cpuUsage":0.1531,"jvmMemoryUsage":0.1874,"memoryUsage":0.612,"diskUsage":0.0,"serverStatus":"NORMAL","host":"172.18.0.5","port":5678}';
const ds32Worker =
  '{"processId":2872,"startupTime":1721462400456,"reportTime":1721466012345,"jvmCpuUsage":0.0123,"cpuUsage":0.1531,"jvmMemoryUsage":0.1874,"memoryUsage":0.612,"diskUsage":0.0,"serverStatus":"BUSY","host":"172.18.0.6","port":1234,"workerHostWeight":100,"threadPoolUsage":2}';
/** The development branch (3.3): threadPoolUsage is a ratio. */
const devWorker =
  '{"processId":2873,"startupTime":1730000000789,"reportTime":1730000360000,"jvmCpuUsage":0.0123,"cpuUsage":0.1531,"jvmMemoryUsage":0.1874,"memoryUsage":0.612,"diskUsage":0.0,"serverStatus":"NORMAL","host":"172.18.0.7","port":1234,"workerHostWeight":100,"threadPoolUsage":0.2}';

const ctime = 1_700_000_000_000;

const releases = [
  { release: '3.1 master', nodeType: 'master', data: ds31Master, startupTime: 1_703_123_456_789 },
  { release: '3.1 worker, normal', nodeType: 'worker', data: ds31Worker(0), startupTime: 1_703_123_456_790 },
  {
    release: '3.1 worker, abnormal',
    nodeType: 'worker',
    data: ds31Worker(1),
    startupTime: 1_703_123_456_790,
  },
  { release: '3.1 worker, busy', nodeType: 'worker', data: ds31Worker(2), startupTime: 1_703_123_456_790 },
  { release: '3.2 master', nodeType: 'master', data: ds32Master, startupTime: 1_721_462_400_123 },
  { release: '3.2 worker', nodeType: 'worker', data: ds32Worker, startupTime: 1_721_462_400_456 },
  { release: 'dev worker', nodeType: 'worker', data: devWorker, startupTime: 1_730_000_000_789 },
] as const;

describe('parseHeartbeat ds-3 with the heartbeats of real releases', () => {
  it.each(releases)('$release: startupTime from the heartbeat', ({ data, startupTime }) => {
    const fromText = parseHeartbeat('ds-3', data, { ctime });
    const fromBytes = parseHeartbeat('ds-3', Buffer.from(data, 'utf8'), { ctime });

    expect(fromText).toEqual({ startupTime, startupTimeSource: 'heartbeat' });
    expect(fromBytes).toEqual(fromText);
  });

  it('a node registered with empty data (before its first heartbeat) takes its ctime', () => {
    expect(parseHeartbeat('ds-3', Buffer.alloc(0), { ctime })).toMatchObject({
      startupTime: ctime,
      startupTimeSource: 'ctime',
    });
  });
});

// --- the listing ----------------------------------------------------------------------------------------

interface FakeNode {
  data: string;
  czxid: number;
}

const stat = (czxid: number, numChildren = 0): ZkStat => ({
  czxid: String(czxid),
  mzxid: String(czxid),
  pzxid: String(czxid),
  ctime: ctime + czxid,
  mtime: ctime + czxid,
  ephemeralOwner: czxid === 0 ? '0' : 'abc123',
  version: 0,
  cversion: numChildren,
  dataLength: 0,
  numChildren,
});

/**
 * The two reads RegistryView makes, over a fixed tree. No ZooKeeper here: the session's behaviour against a
 * real server is covered in test/integration (zk-client, ds-failover-lock); this checks what the listing
 * makes of each payload.
 */
function fixedRegistry(nodes: ReadonlyMap<string, FakeNode>): ZkSession {
  const childrenOf = (parent: string) =>
    [...nodes.keys()]
      .filter((path) => path.slice(0, path.lastIndexOf('/')) === parent)
      .map((path) => path.slice(parent.length + 1));
  const reads = {
    async childrenWithStat(path: string): Promise<ZkChildren | null> {
      const children = childrenOf(path);
      const newest = Math.max(0, ...children.map((name) => nodes.get(`${path}/${name}`)?.czxid ?? 0));
      return { children, stat: { ...stat(0, children.length), pzxid: String(newest) } };
    },
    async data(path: string): Promise<ZkNodeData | null> {
      const node = nodes.get(path);
      return node === undefined ? null : { data: Buffer.from(node.data, 'utf8'), stat: stat(node.czxid) };
    },
  };
  // RegistryView needs only these two reads of the session.
  return reads as unknown as ZkSession;
}

describe('the registry listing with the heartbeats of real releases', () => {
  it('lists a node carrying each payload as a live server with its startupTime', async () => {
    // Arrange
    const layout = createLayout({ name: 'ds-3', root: '/dolphinscheduler' });
    const nodes = new Map<string, FakeNode>();
    const expected = new Map<string, { startupTime: number; startupTimeSource: string }>();
    releases.forEach(({ nodeType, data, startupTime }, index) => {
      const host = `10.0.0.${index + 1}:${nodeType === 'master' ? 5678 : 1234}`;
      nodes.set(layout.serverPath(nodeType, host), { data, czxid: 100 + index });
      expected.set(`${nodeType}/${host}`, { startupTime, startupTimeSource: 'heartbeat' });
    });
    nodes.set(layout.serverPath('worker', '10.0.0.99:1234'), { data: '', czxid: 200 });
    expected.set('worker/10.0.0.99:1234', { startupTime: ctime + 200, startupTimeSource: 'ctime' });
    const view = new RegistryView(fixedRegistry(nodes), { layout });

    // Act
    await view.listAll();
    const servers = view.servers();

    // Assert
    expect(
      new Map(
        [...servers].map(([id, s]) => [
          id,
          { startupTime: s.startupTime, startupTimeSource: s.startupTimeSource },
        ]),
      ),
    ).toEqual(expected);
    expect(view.liveHosts().master.size + view.liveHosts().worker.size).toBe(releases.length + 1);
  });
});
