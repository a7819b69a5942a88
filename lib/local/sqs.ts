import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { buildApp } from 'fauxqs';

interface StoreModule<T> {
  [name: string]: new () => T;
}

/**
 * fauxqs builds queue URLs as `sqs.<region>.<host>` (default host `localhost`), which does not
 * resolve here. With an empty host it uses the request's Host header instead, so URLs point at
 * this loopback endpoint. The store classes are not in the package's export map, so they are
 * loaded from their files.
 */
async function loopbackStores() {
  const dist = join(dirname(fileURLToPath(import.meta.resolve('fauxqs'))));
  const load = async <T>(file: string, name: string): Promise<T> => {
    const mod = (await import(pathToFileURL(join(dist, file)).href)) as StoreModule<T>;
    const Store = mod[name];
    if (!Store) throw new Error(`fauxqs has no ${name} in ${file}`);
    return new Store();
  };
  const sqsStore = await load<{ host: string }>('sqs/sqsStore.js', 'SqsStore');
  sqsStore.host = '';
  return {
    sqsStore,
    snsStore: await load<object>('sns/snsStore.js', 'SnsStore'),
    s3Store: await load<object>('s3/s3Store.js', 'S3Store'),
  };
}

export interface LocalSqs {
  readonly endpoint: string;
  readonly port: number;
  stop(): Promise<void>;
}

/**
 * Starts the fauxqs SQS emulator in this process, listening on 127.0.0.1 only (its own
 * `startFauxqs` binds every interface, so we build the app and listen ourselves). Queue URLs
 * take the request's Host header, so they resolve to this endpoint.
 */
export async function startSqs(options: { port?: number; region?: string } = {}): Promise<LocalSqs> {
  const stores = (await loopbackStores()) as unknown as NonNullable<Parameters<typeof buildApp>[0]>['stores'];
  const app = buildApp({ logger: false, defaultRegion: options.region ?? 'us-east-1', stores });
  await app.listen({ port: options.port ?? 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (!address || typeof address !== 'object') throw new Error('SQS emulator has no address');
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    port: address.port,
    stop: async () => {
      await app.close();
    },
  };
}
