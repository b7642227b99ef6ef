import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

/**
 * What the cluster modules need of the node's Redis handle (src/cluster/redis.ts, made once in buildApp): the
 * command connection, key names under the deployment's prefix, and extra connections for blocking reads and
 * pub/sub. Structural, so tests hand in a connection of their own with a prefix of their own.
 */
export interface RedisAccess {
  readonly client: Redis;
  /** `<prefix><parts joined by ':'>`. */
  key(...parts: string[]): string;
  /** Another connection, for a part that blocks one (XREAD BLOCK, SUBSCRIBE). */
  open(name: string): Promise<Redis>;
}

/**
 * A Lua script run by its SHA (EVALSHA), loaded with EVAL the first time a server does not know it (NOSCRIPT: a new
 * or restarted Redis). Scripts are where a check and a write must be one step (a lease and the write it guards).
 */
export class LuaScript {
  private readonly sha: string;

  constructor(private readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  async run(redis: Redis, keys: string[], args: (string | number)[]): Promise<unknown> {
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return redis.eval(this.source, keys.length, ...keys, ...args);
    }
  }
}
