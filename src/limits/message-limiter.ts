/**
 * The per-user limit of `chat` (and `retry`) frames, MESSAGES_PER_MINUTE, as the socket handler sees it: a token
 * bucket per key. One node keeps its buckets in memory (RateLimiter); several nodes keep them in Redis
 * (RedisRateLimiter), so a user's allowance holds over all their sockets on every node.
 */
export interface MessageLimiter {
  readonly perMinute: number;
  /** Takes one token for `key`: 0 when allowed, else the milliseconds until the next token. */
  take(key: string): number | Promise<number>;
}
