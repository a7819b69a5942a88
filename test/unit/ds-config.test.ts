// The DolphinScheduler store's configuration: the environment (lib/config.ts) and the connection target
// from a URL or a Secrets Manager secret in the shape RDS writes (lib/store/dolphinscheduler/database.ts).
// Every refusal must name what to fix, at cold start.
import { describe, expect, it } from 'vitest';
import { ConfigError, loadDolphinSchedulerConfig } from '../../lib/config.ts';
import {
  DatabaseConfigError,
  dialectOfScheme,
  parseDatabaseUrl,
  parseRdsSecret,
} from '../../lib/store/dolphinscheduler/database.ts';

const secretArn = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:ds-db-AbCdEf';

describe('dialectOfScheme', () => {
  it.each([
    ['postgres', 'postgresql'],
    ['postgresql', 'postgresql'],
    ['postgresql:', 'postgresql'],
    ['PostgreSQL', 'postgresql'],
    ['mysql', 'mysql'],
    ['mysql:', 'mysql'],
    ['mariadb', 'mysql'],
  ] as const)('reads %s as %s', (scheme, dialect) => {
    expect(dialectOfScheme(scheme)).toBe(dialect);
  });

  it.each(['sqlite', 'oracle', 'jdbc', ''])('refuses %j with DatabaseConfigError', (scheme) => {
    expect(() => dialectOfScheme(scheme)).toThrow(DatabaseConfigError);
  });
});

describe('parseDatabaseUrl', () => {
  it('reads a PostgreSQL URL with its parts, TLS off by default', () => {
    // Act
    const target = parseDatabaseUrl('postgresql://ds:secret@db.internal:5433/dolphinscheduler');

    // Assert
    expect(target).toEqual({
      dialect: 'postgresql',
      host: 'db.internal',
      port: 5433,
      user: 'ds',
      password: 'secret',
      database: 'dolphinscheduler',
      tls: false,
    });
  });

  it.each([
    ['postgres://u:p@h/db', 'postgresql', 5432],
    ['postgresql://u:p@h/db', 'postgresql', 5432],
    ['mysql://u:p@h/db', 'mysql', 3306],
    ['mariadb://u:p@h/db', 'mysql', 3306],
  ] as const)('reads %s as %s on default port %i', (url, dialect, port) => {
    const target = parseDatabaseUrl(url);

    expect(target.dialect).toBe(dialect);
    expect(target.port).toBe(port);
    expect(target.database).toBe('db');
  });

  it.each([
    'postgresql://u:p@h/db?sslmode=require',
    'postgresql://u:p@h/db?sslmode=verify-full',
    'postgresql://u:p@h/db?sslmode=verify-ca',
    'mysql://u:p@h/db?ssl=true',
    'mysql://u:p@h/db?ssl=1',
    'mariadb://u:p@h/db?ssl=TRUE',
  ])('turns TLS on for %s', (url) => {
    expect(parseDatabaseUrl(url).tls).toBe(true);
  });

  it.each([
    'postgresql://u:p@h/db',
    'postgresql://u:p@h/db?sslmode=disable',
    'mysql://u:p@h/db?ssl=false',
    'mysql://u:p@h/db?ssl=0',
  ])('leaves TLS off for %s', (url) => {
    expect(parseDatabaseUrl(url).tls).toBe(false);
  });

  it('decodes percent-encoded user, password and database name', () => {
    const target = parseDatabaseUrl('mysql://ds%40corp:p%40ss%3Aw%2Frd%20%25@h:3307/ds%2Dprod');

    expect(target.user).toBe('ds@corp');
    expect(target.password).toBe('p@ss:w/rd %');
    expect(target.database).toBe('ds-prod');
    expect(target.port).toBe(3307);
  });

  it('reads an IPv6 host without its brackets', () => {
    expect(parseDatabaseUrl('postgresql://u:p@[::1]:5433/db').host).toBe('::1');
  });

  it.each([
    ['no database name', 'postgresql://u:p@h:5432'],
    ['an empty database name', 'postgresql://u:p@h:5432/'],
    ['no host', 'postgresql:///db'],
  ])('refuses a URL with %s', (_what, url) => {
    expect(() => parseDatabaseUrl(url)).toThrow(DatabaseConfigError);
    expect(() => parseDatabaseUrl(url)).toThrow(/DS_DATABASE_URL needs a host and a database name/);
  });

  it('refuses what is not a URL, naming DS_DATABASE_URL', () => {
    expect(() => parseDatabaseUrl('host=db.internal dbname=ds')).toThrow(/DS_DATABASE_URL is not a URL/);
  });

  it('refuses an unsupported scheme', () => {
    expect(() => parseDatabaseUrl('sqlserver://u:p@h/db')).toThrow(DatabaseConfigError);
  });
});

describe('parseRdsSecret', () => {
  const base = { host: 'ds.cluster-abc.eu-west-1.rds.amazonaws.com', username: 'ds', password: 'pw' };

  it('reads the secret RDS writes for PostgreSQL, TLS on by default', () => {
    const text = JSON.stringify({ ...base, engine: 'postgres', port: 5432, dbname: 'dolphinscheduler' });

    const target = parseRdsSecret(text);

    expect(target).toEqual({
      dialect: 'postgresql',
      host: 'ds.cluster-abc.eu-west-1.rds.amazonaws.com',
      port: 5432,
      user: 'ds',
      password: 'pw',
      database: 'dolphinscheduler',
      tls: true,
    });
  });

  it.each([
    ['postgres', 'postgresql'],
    ['aurora-postgresql', 'postgresql'],
    ['mysql', 'mysql'],
    ['mariadb', 'mysql'],
    ['aurora-mysql', 'mysql'],
  ] as const)('reads engine %s as %s', (engine, dialect) => {
    expect(parseRdsSecret(JSON.stringify({ ...base, engine })).dialect).toBe(dialect);
  });

  it('refuses an engine it cannot speak', () => {
    expect(() => parseRdsSecret(JSON.stringify({ ...base, engine: 'sqlserver-ex' }))).toThrow(
      DatabaseConfigError,
    );
  });

  it('reads the port as a number or a string, and defaults it by engine', () => {
    expect(parseRdsSecret(JSON.stringify({ ...base, engine: 'mysql', port: 3307 })).port).toBe(3307);
    expect(parseRdsSecret(JSON.stringify({ ...base, engine: 'mysql', port: '3308' })).port).toBe(3308);
    expect(parseRdsSecret(JSON.stringify({ ...base, engine: 'mysql' })).port).toBe(3306);
    expect(parseRdsSecret(JSON.stringify({ ...base, engine: 'postgres' })).port).toBe(5432);
  });

  it('names the database dolphinscheduler when the secret has no dbname', () => {
    expect(parseRdsSecret(JSON.stringify({ ...base, engine: 'postgres' })).database).toBe('dolphinscheduler');
  });

  it.each([
    ['ssl false', { ssl: false }],
    ['ssl "false"', { ssl: 'false' }],
    ['sslmode disable', { sslmode: 'disable' }],
    ['sslmode DISABLE', { sslmode: 'DISABLE' }],
  ])('turns TLS off only when the secret says so: %s', (_what, setting) => {
    expect(parseRdsSecret(JSON.stringify({ ...base, engine: 'postgres', ...setting })).tls).toBe(false);
  });

  it.each([
    ['no setting', {}],
    ['ssl true', { ssl: true }],
    ['ssl "true"', { ssl: 'true' }],
    ['sslmode require', { sslmode: 'require' }],
    ['sslmode verify-full', { sslmode: 'verify-full' }],
  ])('keeps TLS on with %s', (_what, setting) => {
    expect(parseRdsSecret(JSON.stringify({ ...base, engine: 'mysql', ...setting })).tls).toBe(true);
  });

  it.each(['username', 'password', 'host', 'engine'])('refuses a secret without %s, naming it', (field) => {
    const secret: Record<string, unknown> = { ...base, engine: 'postgres' };
    delete secret[field];

    expect(() => parseRdsSecret(JSON.stringify(secret))).toThrow(new RegExp(`has no "${field}"`));
  });

  it.each([
    ['not JSON', 'host=h user=u'],
    ['JSON null', 'null'],
    ['a JSON string', '"postgres://u:p@h/db"'],
  ])('refuses a secret that is %s', (_what, text) => {
    expect(() => parseRdsSecret(text)).toThrow(DatabaseConfigError);
  });

  it('does not echo the password in its errors', () => {
    const text = JSON.stringify({ engine: 'postgres', username: 'ds', password: 'hunter2-very-secret' });

    expect(() => parseRdsSecret(text)).toThrow(DatabaseConfigError);
    expect(() => parseRdsSecret(text)).not.toThrow(/hunter2/);
  });
});

describe('loadDolphinSchedulerConfig', () => {
  const url = 'postgresql://ds:pw@127.0.0.1:5432/dolphinscheduler';

  it('applies the defaults: DS_VERSION 3.2, DS_SCAN_SPAN 50000, DS_POOL_MAX 5, DS_REPAIR_GRACE_MS 600000', () => {
    // Act
    const config = loadDolphinSchedulerConfig({ DS_TIME_ZONE: 'Asia/Shanghai', DS_DATABASE_URL: url });

    // Assert
    expect(config).toEqual({
      database: { url, dialect: 'postgresql' },
      version: '3.2',
      timeZone: 'Asia/Shanghai',
      scanSpan: 50_000,
      poolMax: 5,
      repairGraceMs: 600_000,
      batchSize: 200,
    });
  });

  it('reads every setting when given', () => {
    const config = loadDolphinSchedulerConfig({
      DS_TIME_ZONE: 'Europe/Berlin',
      DS_DATABASE_URL: 'mariadb://ds:pw@h/ds',
      DS_DIALECT: 'mysql',
      DS_VERSION: '3.1',
      DS_SCAN_SPAN: '10000',
      DS_POOL_MAX: '8',
      DS_REPAIR_GRACE_MS: '30000',
      DS_BATCH_SIZE: '500',
    });

    expect(config).toEqual({
      database: { url: 'mariadb://ds:pw@h/ds', dialect: 'mysql' },
      version: '3.1',
      timeZone: 'Europe/Berlin',
      scanSpan: 10_000,
      poolMax: 8,
      repairGraceMs: 30_000,
      batchSize: 500,
    });
  });

  it.each([
    ['postgres://u:p@h/db', 'postgresql'],
    ['postgresql://u:p@h/db', 'postgresql'],
    ['mysql://u:p@h/db', 'mysql'],
    ['mariadb://u:p@h/db', 'mysql'],
  ] as const)('derives the dialect of %s (%s)', (databaseUrl, dialect) => {
    const config = loadDolphinSchedulerConfig({ DS_TIME_ZONE: 'UTC', DS_DATABASE_URL: databaseUrl });

    expect(config.database).toEqual({ url: databaseUrl, dialect });
  });

  it('takes the secret with its dialect', () => {
    const config = loadDolphinSchedulerConfig({
      DS_TIME_ZONE: 'UTC',
      DS_DATABASE_SECRET_ARN: secretArn,
      DS_DIALECT: 'mysql',
    });

    expect(config.database).toEqual({ secretArn, dialect: 'mysql' });
  });

  it('prefers the URL when both the URL and the secret are set', () => {
    const config = loadDolphinSchedulerConfig({
      DS_TIME_ZONE: 'UTC',
      DS_DATABASE_URL: url,
      DS_DATABASE_SECRET_ARN: secretArn,
    });

    expect(config.database).toEqual({ url, dialect: 'postgresql' });
  });

  it.each([
    ['DS_TIME_ZONE is missing', { DS_DATABASE_URL: url }, /DS_TIME_ZONE: must be set/],
    ['DS_TIME_ZONE is empty', { DS_TIME_ZONE: '', DS_DATABASE_URL: url }, /DS_TIME_ZONE: must be set/],
    ['DS_TIME_ZONE is not a zone', { DS_TIME_ZONE: 'Asia/Atlantis', DS_DATABASE_URL: url }, /DS_TIME_ZONE: /],
    [
      'neither URL nor secret',
      { DS_TIME_ZONE: 'UTC' },
      /DS_DATABASE_URL or DS_DATABASE_SECRET_ARN must be set/,
    ],
    [
      'the secret is "none"',
      { DS_TIME_ZONE: 'UTC', DS_DATABASE_SECRET_ARN: 'none' },
      /DS_DATABASE_URL or DS_DATABASE_SECRET_ARN must be set/,
    ],
    [
      'the secret has no DS_DIALECT',
      { DS_TIME_ZONE: 'UTC', DS_DATABASE_SECRET_ARN: secretArn },
      /DS_DIALECT: must be set/,
    ],
    [
      'DS_DIALECT contradicts a PostgreSQL URL',
      { DS_TIME_ZONE: 'UTC', DS_DATABASE_URL: url, DS_DIALECT: 'mysql' },
      /DS_DIALECT: mysql does not match DS_DATABASE_URL \(postgresql\)/,
    ],
    [
      'DS_DIALECT contradicts a MariaDB URL',
      { DS_TIME_ZONE: 'UTC', DS_DATABASE_URL: 'mariadb://u:p@h/db', DS_DIALECT: 'postgresql' },
      /DS_DIALECT: postgresql does not match DS_DATABASE_URL \(mysql\)/,
    ],
    [
      'DS_DIALECT is unknown',
      { DS_TIME_ZONE: 'UTC', DS_DATABASE_URL: url, DS_DIALECT: 'oracle' },
      /DS_DIALECT: /,
    ],
    ['DS_VERSION is 3.3', { DS_TIME_ZONE: 'UTC', DS_DATABASE_URL: url, DS_VERSION: '3.3' }, /DS_VERSION: /],
    ['DS_VERSION is 1.3', { DS_TIME_ZONE: 'UTC', DS_DATABASE_URL: url, DS_VERSION: '1.3' }, /DS_VERSION: /],
    [
      'DS_DATABASE_URL has another scheme',
      { DS_TIME_ZONE: 'UTC', DS_DATABASE_URL: 'sqlite:///tmp/ds.db' },
      /DS_DATABASE_URL: /,
    ],
    ['DS_SCAN_SPAN is 0', { DS_TIME_ZONE: 'UTC', DS_DATABASE_URL: url, DS_SCAN_SPAN: '0' }, /DS_SCAN_SPAN: /],
    ['DS_POOL_MAX is 33', { DS_TIME_ZONE: 'UTC', DS_DATABASE_URL: url, DS_POOL_MAX: '33' }, /DS_POOL_MAX: /],
    [
      'DS_BATCH_SIZE is 1001',
      { DS_TIME_ZONE: 'UTC', DS_DATABASE_URL: url, DS_BATCH_SIZE: '1001' },
      /DS_BATCH_SIZE: /,
    ],
  ])('refuses a configuration where %s, naming the variable', (_what, env, message) => {
    expect(() => loadDolphinSchedulerConfig(env)).toThrow(ConfigError);
    expect(() => loadDolphinSchedulerConfig(env)).toThrow(message);
  });

  it('names every bad variable at once', () => {
    const env = { DS_TIME_ZONE: 'Nowhere/Land', DS_DATABASE_URL: url, DS_VERSION: '4.0', DS_POOL_MAX: 'x' };

    const error = (() => {
      try {
        loadDolphinSchedulerConfig(env);
        return undefined;
      } catch (e: unknown) {
        return e;
      }
    })();

    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toMatch(/DS_TIME_ZONE/);
    expect((error as Error).message).toMatch(/DS_VERSION/);
    expect((error as Error).message).toMatch(/DS_POOL_MAX/);
  });
});
