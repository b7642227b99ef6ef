// The message limit's token bucket in Redis (several nodes), on the real Redis: the same allowance and refill as the
// in-memory bucket, time taken from Redis's clock.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openRedis, type RedisHandle } from '../../src/cluster/redis.js';
import { RedisRateLimiter } from '../../src/limits/redis-rate-limiter.js';
import { describeWithRedis, testRedis, type TestRedis } from '../helpers/redis.js';

const silent = { warn: () => undefined, info: () => undefined } as unknown as Parameters<typeof openRedis>[1];

describeWithRedis('RedisRateLimiter', () => {
  let redis: TestRedis;
  let handle: RedisHandle;
  beforeAll(async () => {
    redis = testRedis();
    handle = await openRedis({ url: redis.url, keyPrefix: redis.prefix }, silent);
  });
  afterAll(async () => {
    await handle?.close();
    await redis?.clean();
  });

  it('lets a burst of the whole allowance through, then refills one token per 60/perMinute seconds', async () => {
    // 120 a minute: one token every 500 ms. The takes reach Redis together (one pipeline), well within 500 ms.
    const limiter = new RedisRateLimiter(handle, 'test', 120);
    const first = await Promise.all(Array.from({ length: 121 }, () => limiter.take('user:a')));
    expect(first.slice(0, 120)).toEqual(Array(120).fill(0));
    const wait = first[120]!;
    expect(wait).toBeGreaterThan(0);
    expect(wait).toBeLessThanOrEqual(500);
    // Another key has its own bucket; a second limiter on the same name (another node) shares this one.
    expect(await limiter.take('user:b')).toBe(0);
    expect(await new RedisRateLimiter(handle, 'test', 120).take('user:a')).toBeGreaterThan(0);

    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(await limiter.take('user:a')).toBe(0);
    expect(await limiter.take('user:a')).toBeGreaterThan(0);
  });

  it('keeps a bucket only as long as it takes to refill', async () => {
    const limiter = new RedisRateLimiter(handle, 'expiry', 60);
    await limiter.take('user:c');
    const ttl = await redis.inspect((r) => r.pttl(`${redis.prefix}limit:expiry:user:c`));
    expect(ttl).toBeGreaterThan(55_000);
    expect(ttl).toBeLessThanOrEqual(61_000);
  });
});
