// The store flags of the local commands (`npm run local`, `npm start`): `--store`, `--db-url`,
// `--ds-time-zone`, `--ds-version`, parsed in one place so that both commands accept and refuse the same
// things with the same words. `zkf` validates its values with the same checks.
import { type Dialect, dialectOfUrl, dialects, redactUrl } from './database.ts';
import type { DolphinSchedulerStoreOptions, StoreKind } from './stack.ts';

export class StoreFlagError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StoreFlagError';
  }
}

export const storeKinds: readonly StoreKind[] = ['dynamodb', ...dialects];
export const dsVersions = ['3.1', '3.2'] as const;
export type DsVersion = (typeof dsVersions)[number];

/** The flags this module parses, as they are written. */
export const storeFlagNames = ['--store', '--db-url', '--ds-time-zone', '--ds-version'] as const;

/** Help lines of the store flags (two-space indent, descriptions from column 26). */
export const storeFlagsUsage = `  --store STORE          where the functions keep the work they fail over:
                           dynamodb     the DynamoDB tables of serverless.yml (default)
                           postgresql   DolphinScheduler's tables in a local PostgreSQL started here
                           mysql        DolphinScheduler's tables in a local MariaDB started here
  --db-url URL           use an existing DolphinScheduler database instead of starting one
                         (postgresql://user:pass@host:port/db or mysql://...; its t_ds_* tables must exist)
  --ds-time-zone ZONE    time zone of DolphinScheduler's JVM, in which its times are stored (default UTC)
  --ds-version 3.1|3.2   DolphinScheduler release of the cluster (default 3.2)`;

export function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** `--store`'s value, checked. */
export function parseStoreKind(raw: string): StoreKind {
  const kind = storeKinds.find((k) => k === raw);
  if (kind === undefined) {
    throw new StoreFlagError(`--store must be one of ${storeKinds.join(', ')}, got ${JSON.stringify(raw)}`);
  }
  return kind;
}

/** `--db-url`'s value, checked: its dialect (the message never shows the password). */
export function parseDbUrl(raw: string): Dialect {
  try {
    return dialectOfUrl(raw);
  } catch (error: unknown) {
    throw new StoreFlagError(`--db-url: ${error instanceof Error ? error.message : String(error)}`);
  }
}

export function parseDsTimeZone(raw: string): string {
  if (!isTimeZone(raw)) {
    throw new StoreFlagError(
      `--ds-time-zone: unknown time zone ${JSON.stringify(raw)} (e.g. UTC, Asia/Shanghai)`,
    );
  }
  return raw;
}

export function parseDsVersion(raw: string): DsVersion {
  const known = dsVersions.find((v) => v === raw);
  if (known === undefined) {
    throw new StoreFlagError(`--ds-version must be ${dsVersions.join(' or ')}, got ${JSON.stringify(raw)}`);
  }
  return known;
}

/** What the store flags chose. */
export interface StoreChoice {
  store: StoreKind;
  /** With a DolphinScheduler database: how the local stack gets it. */
  dolphinScheduler?: DolphinSchedulerStoreOptions;
}

/**
 * Collects the store flags of one command line: `take` each flag as it comes (the caller's loop reads
 * values its own way), then `choice()` checks them together. Throws StoreFlagError.
 */
export class StoreFlags {
  #store: StoreKind | undefined;
  #dbUrl: string | undefined;
  #timeZone: string | undefined;
  #version: DsVersion | undefined;
  readonly #seen = new Set<string>();

  /** Takes one flag: false when it is not a store flag (`value` is then not called). */
  take(flag: string, value: () => string): boolean {
    switch (flag) {
      case '--store':
        this.#store = parseStoreKind(value());
        break;
      case '--db-url': {
        const raw = value();
        parseDbUrl(raw);
        this.#dbUrl = raw;
        break;
      }
      case '--ds-time-zone':
        this.#timeZone = parseDsTimeZone(value());
        break;
      case '--ds-version':
        this.#version = parseDsVersion(value());
        break;
      default:
        return false;
    }
    this.#seen.add(flag);
    return true;
  }

  choice(): StoreChoice {
    let store = this.#store;
    if (this.#dbUrl !== undefined) {
      const dialect = dialectOfUrl(this.#dbUrl);
      if (store !== undefined && store !== dialect) {
        throw new StoreFlagError(
          `--db-url is a ${dialect} database (${redactUrl(this.#dbUrl)}), but --store is ${store}`,
        );
      }
      store = dialect;
    }
    const chosen = store ?? 'dynamodb';
    if (chosen === 'dynamodb') {
      for (const flag of ['--ds-time-zone', '--ds-version']) {
        if (this.#seen.has(flag)) {
          throw new StoreFlagError(
            `${flag} needs a DolphinScheduler database (--store postgresql|mysql or --db-url)`,
          );
        }
      }
      return { store: chosen };
    }
    return {
      store: chosen,
      dolphinScheduler: {
        database: this.#dbUrl !== undefined ? { url: this.#dbUrl } : { start: chosen },
        ...(this.#timeZone !== undefined ? { timeZone: this.#timeZone } : {}),
        ...(this.#version !== undefined ? { version: this.#version } : {}),
      },
    };
  }
}
