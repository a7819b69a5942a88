import type { Config } from '../config.ts';
import { awsSecretSources, resolveZkConnection, type SecretSources, type ZkConnection } from '../secrets.ts';
import { createLayout, type RegistryLayout } from './layout.ts';
import { connectZk, type RegistryLogger, type ZkSession } from './zk-client.ts';

/** The settings a function needs to reach the registry. */
export const registrySettings = [
  'ZK_CONNECT',
  'ZK_CONNECT_PARAMETER',
  'ZK_DIGEST',
  'ZK_DIGEST_SECRET_ARN',
  'ZK_SESSION_TIMEOUT_MS',
  'REGISTRY_ROOT',
  'REGISTRY_LAYOUT',
  'REGISTRY_TZ_OFFSET_MINUTES',
] as const;

export interface Registry {
  readonly layout: RegistryLayout;
  readonly timeZoneOffsetMinutes: number;
  /** A new session (digest auth when configured); ZkConnectError if none is ready within `timeoutMs`. */
  connect(timeoutMs: number): Promise<ZkSession>;
}

type RegistryConfig = Omit<
  Config<(typeof registrySettings)[number]>,
  'ZK_CONNECT_PARAMETER' | 'ZK_DIGEST_SECRET_ARN'
> &
  Partial<Pick<Config<(typeof registrySettings)[number]>, 'ZK_CONNECT_PARAMETER' | 'ZK_DIGEST_SECRET_ARN'>>;

/**
 * Builds the registry access from configuration (throws InvalidLayoutError for a bad root: fail fast).
 * The connect string and digest credentials are resolved on the first connect (SSM and Secrets Manager
 * in AWS, plain ZK_CONNECT / ZK_DIGEST locally) and kept for the container's life; a failed resolution
 * is retried on the next connect.
 */
export function registryFromConfig(
  config: RegistryConfig,
  logger?: RegistryLogger,
  sources: SecretSources = awsSecretSources(),
): Registry {
  const layout = createLayout({ name: config.REGISTRY_LAYOUT, root: config.REGISTRY_ROOT });
  let connection: Promise<ZkConnection> | undefined;
  const resolveConnection = () => {
    connection ??= resolveZkConnection(config, sources).catch((error: unknown) => {
      connection = undefined;
      throw error;
    });
    return connection;
  };
  return {
    layout,
    timeZoneOffsetMinutes: config.REGISTRY_TZ_OFFSET_MINUTES,
    connect: async (timeoutMs) => {
      const { connectString, digest } = await resolveConnection();
      return connectZk({
        connectString,
        sessionTimeoutMs: config.ZK_SESSION_TIMEOUT_MS,
        connectTimeoutMs: timeoutMs,
        auth: digest === undefined ? undefined : { scheme: 'digest', credentials: digest },
        logger,
      });
    },
  };
}

/** The shape of Powertools' Logger methods used here (a message, then one object of data). */
interface StructuredLogger {
  info(message: string, ...data: Array<Record<string, unknown>>): void;
  warn(message: string, ...data: Array<Record<string, unknown>>): void;
  error(message: string, ...data: Array<Record<string, unknown>>): void;
}

/** Adapts a Powertools Logger (whose data argument is not optional in its types) to RegistryLogger. */
export function registryLogger(logger: StructuredLogger): RegistryLogger {
  return {
    info: (message, data) => logger.info(message, data ?? {}),
    warn: (message, data) => logger.warn(message, data ?? {}),
    error: (message, data) => logger.error(message, data ?? {}),
  };
}
