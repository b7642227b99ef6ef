import type { Redis } from 'ioredis';
import type { RedisHandle } from '../cluster/redis.js';
import type { MessageLimiter } from './message-limiter.js';

/**
 * The token bucket of RateLimiter, kept in Redis and updated by one script, so every node takes from the same
 * bucket and two nodes can never both take its last token. Time is Redis's own clock (TIME), not the nodes':
 * their clocks may disagree, Redis's is one. A bucket unused for longer than it takes to refill completely expires
 * (it holds no information then).
 *
 * KEYS[1] the bucket; ARGV[1] capacity (perMinute); ARGV[2] tokens added per millisecond.
 * Returns 0 when a token was taken, else the milliseconds until the next one.
 */
const TAKE_TOKEN_LUA = `
local capacity = tonumber(ARGV[1])
local refill_per_ms = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(bucket[1]) or capacity
local at = tonumber(bucket[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * refill_per_ms)
local wait = 0
if tokens < 1 then
  wait = math.ceil((1 - tokens) / refill_per_ms)
else
  tokens = tokens - 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / refill_per_ms) + 1000)
return wait
`;

type WithTakeToken = Redis & {
  agentChatTakeToken(key: string, capacity: number, refillPerMs: number): Promise<number>;
};

export class RedisRateLimiter implements MessageLimiter {
  private readonly redis: WithTakeToken;
  private readonly refillPerMs: number;

  /** `name` tells this limit's buckets from other limits' (`<prefix>limit:<name>:<key>`). */
  constructor(
    private readonly handle: RedisHandle,
    private readonly name: string,
    readonly perMinute: number,
  ) {
    if (!(perMinute > 0)) throw new RangeError('perMinute must be positive');
    this.refillPerMs = perMinute / 60_000;
    const client = handle.client as WithTakeToken;
    // EVALSHA with the script loaded on first use (and again after a Redis restart flushed it).
    if (typeof client.agentChatTakeToken !== 'function') {
      client.defineCommand('agentChatTakeToken', { numberOfKeys: 1, lua: TAKE_TOKEN_LUA });
    }
    this.redis = client;
  }

  async take(key: string): Promise<number> {
    return Number(await this.redis.agentChatTakeToken(this.handle.key('limit', this.name, key), this.perMinute, this.refillPerMs));
  }
}
