// The loopback TCP proxy in front of a real PostgreSQL: traffic passes intact (also delayed), is counted,
// and a cut drops the open connections while new ones still get through.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalDatabase, startLocalDatabase } from '../../lib/local/database.ts';
import { startTcpProxy, type TcpProxy } from '../../lib/local/tcp-proxy.ts';
import { type Database, openDatabase, parseDatabaseUrl } from '../../lib/store/dolphinscheduler/database.ts';

describe.each(['postgresql', 'mysql'] as const)('tcp proxy before %s', (dialect) => {
  let server: LocalDatabase;
  let proxy: TcpProxy;
  let db: Database;

  beforeAll(async () => {
    server = await startLocalDatabase(dialect);
    const target = parseDatabaseUrl(server.url);
    proxy = await startTcpProxy({ target: { host: target.host, port: target.port }, roundTripMs: 4 });
    db = openDatabase(parseDatabaseUrl(proxy.proxiedUrl(server.url)));
  });

  afterAll(async () => {
    await db?.close();
    await proxy?.stop();
    await server?.stop();
  });

  it('passes statements and results intact, delayed, and counts the exchanges', async () => {
    proxy.resetCounts();

    const rows = (
      await db.query<{ n: number | string; s: string }>(
        dialect === 'postgresql'
          ? "SELECT generate_series(1, 1000) AS n, repeat('x', 200) AS s"
          : "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 1000) SELECT n, repeat('x', 200) AS s FROM g",
      )
    ).map((r) => ({ n: Number(r.n), s: r.s }));

    expect(rows).toHaveLength(1000);
    expect(rows[999]).toEqual({ n: 1000, s: 'x'.repeat(200) });
    const counts = proxy.counts();
    expect(counts.clientChunks).toBeGreaterThanOrEqual(1);
    expect(counts.serverBytes).toBeGreaterThan(1000 * 200);
  });

  it('a cut fails the open transaction; the next one connects again', async () => {
    const open = db.transaction(async (tx) => {
      await tx.query('SELECT 1');
      await new Promise((r) => setTimeout(r, 200));
      await tx.query('SELECT 2');
    });
    await new Promise((r) => setTimeout(r, 50));

    const dropped = proxy.dropConnections();

    expect(dropped).toBeGreaterThan(0);
    await expect(open).rejects.toThrow();
    expect(await db.query<{ one: number }>('SELECT 1 AS one')).toEqual([{ one: 1 }]);
  });
});
