import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../lib/config.ts';
import { resolveZkConnection, type SecretSources } from '../../lib/secrets.ts';

function sources(values: Record<string, string | undefined>): SecretSources & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    parameter: async (name) => {
      asked.push(name);
      return values[name];
    },
    secret: async (arn) => {
      asked.push(arn);
      return values[arn];
    },
  };
}

describe('resolveZkConnection', () => {
  it('uses a plain ZK_CONNECT without asking SSM (local runs)', async () => {
    const s = sources({});
    await expect(resolveZkConnection({ ZK_CONNECT: '127.0.0.1:2181' }, s)).resolves.toEqual({
      connectString: '127.0.0.1:2181',
    });
    expect(s.asked).toEqual([]);
  });

  it('reads the connect string from SSM and the digest from Secrets Manager', async () => {
    const s = sources({ '/zkf/prod/zk': ' zk1:2181,zk2:2181 ', 'arn:secret': 'ds:s3cret' });
    await expect(
      resolveZkConnection({ ZK_CONNECT_PARAMETER: '/zkf/prod/zk', ZK_DIGEST_SECRET_ARN: 'arn:secret' }, s),
    ).resolves.toEqual({ connectString: 'zk1:2181,zk2:2181', digest: 'ds:s3cret' });
  });

  it('fails with the setting name when nothing says where ZooKeeper is', async () => {
    await expect(resolveZkConnection({}, sources({}))).rejects.toThrow(/ZK_CONNECT_PARAMETER/);
  });

  it('rejects an empty parameter and a malformed digest secret', async () => {
    await expect(
      resolveZkConnection({ ZK_CONNECT_PARAMETER: '/p' }, sources({ '/p': '  ' })),
    ).rejects.toBeInstanceOf(ConfigError);
    await expect(
      resolveZkConnection(
        { ZK_CONNECT: 'a:1', ZK_DIGEST_SECRET_ARN: 'arn:x' },
        sources({ 'arn:x': 'no-colon' }),
      ),
    ).rejects.toThrow(/user:password/);
  });
});
