// Runs once per `vitest run`: finds out whether the Postgres the store tests need is reachable, tells every test
// file (inject('postgresUrl')), and at the end drops any test database this run left behind.
import { Redis } from 'ioredis';
import pg from 'pg';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    /** An admin URL of a reachable Postgres (test databases are created through it), or null: Postgres tests skip. */
    postgresUrl: string | null;
    /** A URL of a reachable Redis (multi-node tests use keys under their own prefix), or null: those tests skip. */
    redisUrl: string | null;
    /** Names this run's test databases (`agent_chat_test_<runId>_...`), so the teardown finds leftovers. */
    testRunId: string;
  }
}

export const DEFAULT_TEST_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
export const DEFAULT_TEST_REDIS_URL = 'redis://127.0.0.1:6379/0';
/** Every test's Redis keys start with `<this><runId>:`, so the teardown removes a run's leftovers. */
export const TEST_REDIS_PREFIX = 'agent-chat-test:';

async function redisProblem(url: string): Promise<string | undefined> {
  const client = new Redis(url, { lazyConnect: true, connectTimeout: 3_000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  let problem: string | undefined;
  client.on('error', (err: Error) => (problem ??= err.message));
  try {
    await client.connect();
    await client.ping();
    return undefined;
  } catch (err) {
    return problem ?? (err instanceof Error ? err.message : String(err));
  } finally {
    client.disconnect();
  }
}

/** Deletes every key starting with `prefix` (SCAN, so a large Redis is not blocked). */
export async function deleteRedisKeys(url: string, prefix: string): Promise<void> {
  const client = new Redis(url, { maxRetriesPerRequest: 1 });
  try {
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      if (keys.length > 0) await client.unlink(...keys);
      cursor = next;
    } while (cursor !== '0');
  } finally {
    client.disconnect();
  }
}

async function reachable(url: string): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3_000 });
  try {
    await client.connect();
    await client.query('select 1');
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  } finally {
    await client.end().catch(() => undefined);
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const url = process.env.TEST_DATABASE_URL || DEFAULT_TEST_DATABASE_URL;
  const runId = `${process.pid.toString(36)}${Date.now().toString(36)}`;
  const problem = await reachable(url);
  if (problem && process.env.CI) {
    throw new Error(`CI runs the Postgres tests: no Postgres at ${url} (${problem})`);
  }
  if (problem) {
    console.warn(
      `\n  SKIPPING the PostgreSQL store tests: no Postgres at ${url} (${problem}).\n` +
        '  Set TEST_DATABASE_URL to an admin URL of a Postgres that may create databases to run them.\n',
    );
  }
  project.provide('postgresUrl', problem ? null : url);
  project.provide('testRunId', runId);

  const redisUrl = process.env.TEST_REDIS_URL || DEFAULT_TEST_REDIS_URL;
  const redisDown = await redisProblem(redisUrl);
  if (redisDown && process.env.CI) throw new Error(`CI runs the multi-node tests: no Redis at ${redisUrl} (${redisDown})`);
  if (redisDown) {
    console.warn(
      `\n  SKIPPING the Redis (multi-node) tests: no Redis at ${redisUrl} (${redisDown}).\n` +
        '  Set TEST_REDIS_URL to a Redis they may write keys to (under agent-chat-test:) to run them.\n',
    );
  }
  project.provide('redisUrl', redisDown ? null : redisUrl);

  return async () => {
    if (!redisDown) await deleteRedisKeys(redisUrl, `${TEST_REDIS_PREFIX}${runId}:`);
    if (problem) return;
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const { rows } = await client.query<{ datname: string }>(
        'select datname from pg_database where datname like $1',
        [`agent_chat_test_${runId}_%`],
      );
      for (const { datname } of rows) await client.query(`drop database if exists "${datname}" with (force)`);
    } finally {
      await client.end();
    }
  };
}
