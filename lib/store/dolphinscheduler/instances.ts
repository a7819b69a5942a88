// DolphinScheduler's workflow instances as the failover core's host item store (DESIGN D1, D2, D7): a
// host's executing instances read by primary-key ranges, and per batch one transaction that moves the rows
// still matching to host 'NULL' and writes exactly one recovery command for each row it changed.
import type {
  CommandReceipt,
  FailoverWrite,
  FenceStamp,
  HostItemStore,
  Page,
  TransactOutcome,
  WriteOptions,
} from '../../failover/ports.ts';
import type { RecoveryCommand } from '../../messages.ts';
import { priorityName, workflowStateName } from './codes.ts';
import { type DsProcessInstance, recoveryCommandParam } from './command-row.ts';
import type { Database, DriverError, Queryable } from './database.ts';
import { scheduleKey, schedulesOf, type WorkflowSchedule } from './schedules.ts';
import {
  type FailoverTarget,
  hostInstancesSql,
  type InstanceRow,
  instancesByIdSql,
  type LockedInstanceRow,
  maxInstanceIdSql,
  mysqlInsertCommandsSql,
  mysqlInsertedCommandsSql,
  mysqlLockSql,
  mysqlReleaseSql,
  pgFailoverSql,
} from './sql.ts';
import type { WallClock } from './wall-time.ts';

export interface DsInstanceStoreOptions {
  /** DolphinScheduler's time zone (DS_TIME_ZONE): how its stored times read as instants. */
  clock: WallClock;
  /** Ids covered by one page read (a primary-key range; default 50,000). */
  scanSpan?: number;
}

export const DEFAULT_SCAN_SPAN = 50_000;

/** Transient database failures after which the same batch may simply be tried again. */
const RETRYABLE_PG = new Set(['40001', '40P01', '55P03', '57014', '53300']);
const RETRYABLE_MYSQL = new Set(['ER_LOCK_DEADLOCK', 'ER_LOCK_WAIT_TIMEOUT', 'ER_QUERY_INTERRUPTED']);
/** The database refused the data itself (too long, out of range): split the batch or skip the instance. */
const INVALID_PG = new Set(['22001', '22003', '22P02', '23502', '23514']);
const INVALID_MYSQL = new Set([
  'ER_DATA_TOO_LONG',
  'ER_WARN_DATA_OUT_OF_RANGE',
  'ER_BAD_NULL_ERROR',
  'ER_TRUNCATED_WRONG_VALUE',
]);

export class DsInstanceStore implements HostItemStore<DsProcessInstance, RecoveryCommand> {
  readonly #scanSpan: number;

  constructor(
    private readonly db: Database,
    private readonly options: DsInstanceStoreOptions,
  ) {
    this.#scanSpan = options.scanSpan ?? DEFAULT_SCAN_SPAN;
  }

  /**
   * One page: the next primary-key range (`scanSpan` ids) read for the host's executing instances. The
   * cursor is `<last id read>/<highest id when the scan began>`: instances created later belong to live
   * masters (a dead master creates none), so the scan ends there.
   */
  async pageByHost(host: string, limit: number, cursor?: string): Promise<Page<DsProcessInstance>> {
    const { afterId, maxId } =
      cursor === undefined ? { afterId: 0, maxId: await this.maxId() } : decodeCursor(cursor);
    const toId = Math.min(maxId, afterId + this.#scanSpan);
    const statement = hostInstancesSql(this.db.dialect, host, { afterId, toId }, limit);
    const rows = await this.db.query<InstanceRow>(statement.sql, statement.params);
    const page = await this.collect(rows);
    const last = rows.at(-1);
    const readTo = rows.length >= limit && last !== undefined ? Number(last.id) : toId;
    if (readTo < maxId) page.cursor = `${readTo}/${maxId}`;
    return page;
  }

  async getMany(ids: readonly string[]): Promise<Map<string, DsProcessInstance>> {
    const found = new Map<string, DsProcessInstance>();
    const numeric = ids.map(Number).filter((id) => Number.isSafeInteger(id));
    if (numeric.length === 0) return found;
    const statement = instancesByIdSql(this.db.dialect, numeric);
    const page = await this.collect(await this.db.query<InstanceRow>(statement.sql, statement.params));
    for (const item of page.items) found.set(item.id, item);
    return found;
  }

  async failOver(
    writes: ReadonlyArray<FailoverWrite<DsProcessInstance, RecoveryCommand>>,
    stamp: FenceStamp,
    options: WriteOptions = {},
  ): Promise<TransactOutcome> {
    if (stamp.startedBefore === undefined) {
      // Never reached from the core (a request always carries its observation time); refuse rather than
      // write without the F3 bound.
      return { status: 'invalid', reason: 'no F3 bound (startedBefore) for a DolphinScheduler write' };
    }
    if (!Number.isFinite(stamp.startedBefore)) {
      return { status: 'committed', notWritten: writes.map((w) => w.item.id), receipts: [] };
    }
    const targets: FailoverTarget[] = writes.map((w) => ({
      id: Number(w.item.id),
      commandParam: recoveryCommandParam(Number(w.item.id), w.item.storedCommandParam, w.item.schedule),
    }));
    try {
      const receipts =
        this.db.dialect === 'postgresql'
          ? await this.failOverPg(targets, stamp, options)
          : await this.failOverMysql(targets, stamp, options);
      const written = new Set(receipts.map((r) => r.itemId));
      const notWritten = writes.map((w) => w.item.id).filter((id) => !written.has(id));
      return { status: 'committed', receipts, ...(notWritten.length > 0 ? { notWritten } : {}) };
    } catch (error: unknown) {
      const code = driverCode(error);
      if (code !== undefined && (RETRYABLE_PG.has(code) || RETRYABLE_MYSQL.has(code))) {
        return { status: 'cancelled', conditionFailed: [], retryable: true, reasons: [code] };
      }
      if (code !== undefined && (INVALID_PG.has(code) || INVALID_MYSQL.has(code))) {
        return { status: 'invalid', reason: `${code}: ${(error as DriverError).message}` };
      }
      throw error;
    }
  }

  /** One statement: the update of the rows still matching and a command for each row it changed. */
  private async failOverPg(
    targets: readonly FailoverTarget[],
    stamp: FenceStamp,
    options: WriteOptions,
  ): Promise<CommandReceipt[]> {
    const statement = pgFailoverSql(
      targets,
      stamp.host,
      this.bound(stamp.startedBefore as number),
      this.options.clock.format(stamp.now, 'ms'),
    );
    // In an explicit transaction, so that only the client's COMMIT commits: a lone statement commits by
    // itself once it ends, even after its connection was lost (a cut while it waited for a row lock) and
    // this run, taking the loss for a failure, gave DolphinScheduler's lock back; a master that took it
    // meanwhile would then write the same rows again, unconditionally (docs/chaos.md, "Bugs found").
    const rows = await this.db.transaction(async (tx) => {
      const written = await tx.query<{ id: number | string; process_instance_id: number | string }>(
        statement.sql,
        statement.params,
      );
      options.beforeCommit?.();
      return written;
    });
    return rows.map((r) => ({ itemId: String(r.process_instance_id), commandId: String(r.id) }));
  }

  /** Locking read, update, insert, in one transaction. */
  private async failOverMysql(
    targets: readonly FailoverTarget[],
    stamp: FenceStamp,
    options: WriteOptions,
  ): Promise<CommandReceipt[]> {
    const params = new Map(targets.map((t) => [t.id, t.commandParam]));
    const bound = this.bound(stamp.startedBefore as number);
    return this.db.transaction(async (tx) => {
      const lock = mysqlLockSql(
        targets.map((t) => t.id),
        stamp.host,
        bound,
      );
      const locked = await tx.query<LockedInstanceRow>(lock.sql, lock.params);
      if (locked.length === 0) return [];
      const ids = locked.map((r) => Number(r.id));
      const release = mysqlReleaseSql(ids, stamp.host, bound);
      await tx.query(release.sql, release.params);
      if (tx.affectedRows() !== ids.length) {
        throw new Error(`released ${tx.affectedRows()} of ${ids.length} locked instances`);
      }
      const insert = mysqlInsertCommandsSql(
        locked.map((r) => ({ ...r, commandParam: params.get(Number(r.id)) ?? '' })),
        this.options.clock.format(stamp.now, 's'),
      );
      await tx.query(insert.sql, insert.params);
      const receipts = await readReceipts(tx, ids);
      options.beforeCommit?.();
      return receipts;
    });
  }

  /**
   * The F3 bound as DolphinScheduler's wall time. MySQL's `datetime` keeps whole seconds: an instance
   * stored as 12:00:00 may have started at 12:00:00.999, so the bound is cut to its second, and such an
   * instance counts as started at the bound (not eligible), never before it.
   */
  private bound(startedBefore: number): string {
    return this.db.dialect === 'postgresql'
      ? this.options.clock.format(startedBefore, 'ms')
      : this.options.clock.format(startedBefore, 's');
  }

  private async maxId(): Promise<number> {
    const statement = maxInstanceIdSql();
    const [row] = await this.db.query<{ max_id: number | string | null }>(statement.sql, statement.params);
    return row?.max_id === null || row?.max_id === undefined ? 0 : Number(row.max_id);
  }

  /** The rows as the rules see them (with their workflows' schedules, read in one go), or what is wrong. */
  private async collect(rows: readonly InstanceRow[]): Promise<Page<DsProcessInstance>> {
    const page: Page<DsProcessInstance> = { items: [], malformed: [] };
    if (rows.length === 0) return page;
    const schedules = await schedulesOf(
      this.db,
      this.db.dialect,
      rows.map((r) => r.process_definition_code),
    );
    for (const row of rows) {
      const parsed = this.parse(row, schedules.get(scheduleKey(row.process_definition_code)) ?? null);
      if (typeof parsed === 'string') page.malformed.push({ id: String(row.id), problem: parsed });
      else page.items.push(parsed);
    }
    return page;
  }

  /** A row as the rules see it, or what is wrong with it. */
  private parse(row: InstanceRow, schedule: WorkflowSchedule | null): DsProcessInstance | string {
    const id = Number(row.id);
    const code = Number(row.process_definition_code);
    if (row.process_definition_code === null || !Number.isSafeInteger(code)) {
      return `process_definition_code ${String(row.process_definition_code)} is not a safe integer`;
    }
    const stateCode = Number(row.state);
    const priorityCode = row.process_instance_priority === null ? 2 : Number(row.process_instance_priority);
    const startTime = this.instant(row.start_time);
    const restartTime = this.instant(row.restart_time);
    if (typeof startTime === 'string') return startTime;
    if (typeof restartTime === 'string') return restartTime;
    return {
      id: String(id),
      ...(row.host === null ? {} : { host: row.host }),
      state: workflowStateName(stateCode),
      stateCode,
      processDefinitionCode: code,
      processDefinitionVersion: Number(row.process_definition_version ?? 1),
      executorId: Number(row.executor_id ?? 0),
      priority: priorityName(priorityCode),
      priorityCode,
      // A missing start time cannot be proved older than a restart (F3): NaN makes the rules skip it.
      startTime: startTime ?? Number.NaN,
      ...(restartTime === undefined ? {} : { restartTime }),
      ...(row.command_param === null ? {} : { commandParam: row.command_param }),
      storedCommandParam: row.command_param,
      testFlag: row.test_flag === null ? null : Number(row.test_flag),
      schedule,
    };
  }

  /**
   * A stored time as the latest instant it can stand for: MySQL keeps whole seconds, so 12:00:00 may be
   * 12:00:00.999 (F3 then never takes it for older than it may be).
   */
  private instant(text: string | null): number | undefined | string {
    if (text === null) return undefined;
    try {
      const epoch = this.options.clock.parse(text);
      return this.db.dialect === 'mysql' && !text.includes('.') ? epoch + 999 : epoch;
    } catch {
      return `time ${JSON.stringify(text)} is not a wall-clock time`;
    }
  }
}

async function readReceipts(tx: Queryable, ids: readonly number[]): Promise<CommandReceipt[]> {
  const select = mysqlInsertedCommandsSql(ids);
  const rows = await tx.query<{ id: number | string; process_instance_id: number | string }>(
    select.sql,
    select.params,
  );
  if (rows.length !== ids.length) throw new Error(`found ${rows.length} of ${ids.length} inserted commands`);
  return rows.map((r) => ({ itemId: String(r.process_instance_id), commandId: String(r.id) }));
}

function decodeCursor(cursor: string): { afterId: number; maxId: number } {
  const match = /^(\d+)\/(\d+)$/.exec(cursor);
  if (match === null) throw new TypeError(`not a DolphinScheduler page cursor: ${cursor}`);
  return { afterId: Number(match[1]), maxId: Number(match[2]) };
}

function driverCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}
