// The Redis of multi-node tests: the real one the global setup found (TEST_REDIS_URL, default
// redis://127.0.0.1:6379/0). Each test gets a key prefix of its own under the run's, removed after it (and a run's
// leftovers by the global teardown), so tests and other users of the same Redis never see each other's keys.
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { describe, inject } from 'vitest';
import { deleteRedisKeys, TEST_REDIS_PREFIX } from '../global-setup.js';

export const redisUrl: string | null = inject('redisUrl');

/** A describe block that runs only where the global setup reached a Redis (always in CI). */
export function describeWithRedis(name: string, body: () => void): void {
  describe.skipIf(redisUrl === null)(name, body);
}

export interface TestRedis {
  url: string;
  /** REDIS_KEY_PREFIX for services of this test: a fresh one, under the run's. */
  prefix: string;
  /** The env of a service on this Redis, as one node (`NODE_ID`) of the test's deployment. */
  env(nodeId: string): Record<string, string>;
  /** Runs `work` on a connection of its own to the test's Redis (to look at keys), closed afterwards. */
  inspect<T>(work: (redis: Redis) => Promise<T>): Promise<T>;
  /** Deletes every key under `prefix`. */
  clean(): Promise<void>;
}

export function testRedis(): TestRedis {
  if (redisUrl === null) throw new Error('no Redis reachable (see the skip message at the start of the run)');
  const url = redisUrl;
  const prefix = `${TEST_REDIS_PREFIX}${inject('testRunId')}:${randomBytes(4).toString('hex')}:`;
  return {
    url,
    prefix,
    env: (nodeId) => ({ REDIS_URL: url, REDIS_KEY_PREFIX: prefix, NODE_ID: nodeId }),
    inspect: async (work) => {
      const redis = new Redis(url, { maxRetriesPerRequest: 1 });
      try {
        return await work(redis);
      } finally {
        redis.disconnect();
      }
    },
    clean: () => deleteRedisKeys(url, prefix),
  };
}
