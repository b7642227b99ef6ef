// The real Redis the cluster tests use (TEST_REDIS_URL, default 127.0.0.1:6379), each test under a key prefix of its
// own that it removes afterwards. Where no Redis answers, the cluster tests skip, saying so (in CI they fail).
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type { RedisAccess } from '../../src/cluster/redis-access.js';

export const TEST_REDIS_URL = process.env.TEST_REDIS_URL || 'redis://127.0.0.1:6379';

async function probe(): Promise<string | undefined> {
  const redis = new Redis(TEST_REDIS_URL, { lazyConnect: true, connectTimeout: 2_000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  redis.on('error', () => {});
  try {
    await redis.connect();
    await redis.ping();
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  } finally {
    redis.disconnect();
  }
}

const problem = await probe();
if (problem && process.env.CI) throw new Error(`CI runs the cluster tests: no Redis at ${TEST_REDIS_URL} (${problem})`);
if (problem) console.warn(`\n  SKIPPING the cluster tests: no Redis at ${TEST_REDIS_URL} (${problem}).\n`);
export const redisAvailable = problem === undefined;

export interface TestRedis extends RedisAccess {
  prefix: string;
  /** Deletes every key under the prefix and closes every connection opened. */
  close(): Promise<void>;
}

/** Connections to the test Redis under a fresh key prefix. */
export async function openTestRedis(prefix = `test-cluster-${randomBytes(4).toString('hex')}:`): Promise<TestRedis> {
  const connections: Redis[] = [];
  const open = async (name: string): Promise<Redis> => {
    const redis = new Redis(TEST_REDIS_URL, { lazyConnect: true, connectionName: name });
    redis.on('error', () => {});
    await redis.connect();
    connections.push(redis);
    return redis;
  };
  const client = await open('test-main');
  return {
    client,
    prefix,
    key: (...parts) => prefix + parts.join(':'),
    open,
    close: async () => {
      await deleteKeys(client, prefix);
      for (const redis of connections) redis.disconnect();
    },
  };
}

export async function deleteKeys(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== '0');
}
