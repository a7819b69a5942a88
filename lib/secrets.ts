import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { ConfigError } from './config.ts';

/** How to reach ZooKeeper: connect string and optional digest credentials (`user:password`). */
export interface ZkConnection {
  connectString: string;
  digest?: string;
}

export interface ZkConnectionSettings {
  ZK_CONNECT?: string;
  ZK_CONNECT_PARAMETER?: string;
  ZK_DIGEST?: string;
  ZK_DIGEST_SECRET_ARN?: string;
}

export interface SecretSources {
  parameter(name: string): Promise<string | undefined>;
  secret(arn: string): Promise<string | undefined>;
}

/** SSM Parameter Store and Secrets Manager, clients created on first use (once per container). */
export function awsSecretSources(): SecretSources {
  let ssm: SSMClient | undefined;
  let secrets: SecretsManagerClient | undefined;
  return {
    async parameter(name) {
      ssm ??= new SSMClient({});
      const out = await ssm.send(new GetParameterCommand({ Name: name, WithDecryption: true }));
      return out.Parameter?.Value;
    },
    async secret(arn) {
      secrets ??= new SecretsManagerClient({});
      const out = await secrets.send(new GetSecretValueCommand({ SecretId: arn }));
      return out.SecretString;
    },
  };
}

const digestShape = /^[^:\s]+:\S+$/;

/**
 * Resolves the ZooKeeper connection. A plain ZK_CONNECT (local runs) wins; otherwise the connect
 * string is read from SSM and the digest credentials from Secrets Manager, so neither sits in the
 * function's environment. Call once per container and keep the promise.
 */
export async function resolveZkConnection(
  settings: ZkConnectionSettings,
  sources: SecretSources,
): Promise<ZkConnection> {
  let connectString = settings.ZK_CONNECT;
  if (!connectString) {
    if (!settings.ZK_CONNECT_PARAMETER) {
      throw new ConfigError('invalid configuration: ZK_CONNECT or ZK_CONNECT_PARAMETER must be set');
    }
    connectString = (await sources.parameter(settings.ZK_CONNECT_PARAMETER))?.trim();
    if (!connectString) {
      throw new ConfigError(`invalid configuration: SSM parameter ${settings.ZK_CONNECT_PARAMETER} is empty`);
    }
  }
  let digest = settings.ZK_DIGEST;
  if (!digest && settings.ZK_DIGEST_SECRET_ARN) {
    digest = (await sources.secret(settings.ZK_DIGEST_SECRET_ARN))?.trim();
    if (!digest || !digestShape.test(digest)) {
      throw new ConfigError(
        `invalid configuration: secret ${settings.ZK_DIGEST_SECRET_ARN} must hold "user:password" for ZooKeeper digest auth`,
      );
    }
  }
  return digest ? { connectString, digest } : { connectString };
}
