import { monotonicNow } from '../lib/clock.js';
/** Above this many tracked keys, buckets that have refilled completely are dropped (they hold no information). */
const SWEEP_THRESHOLD = 10_000;

/**
 * A token bucket per key: `perMinute` tokens, refilled continuously at `perMinute` a minute. A client may burst up
 * to the whole allowance, then gets one more every 60/perMinute seconds. Built once (in buildApp) and shared by
 * every socket, so a user's limit holds across all their connections.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly refillPerMs: number;

  constructor(
    readonly perMinute: number,
    private readonly now: () => number = monotonicNow,
  ) {
    if (!(perMinute > 0)) throw new RangeError('perMinute must be positive');
    this.refillPerMs = perMinute / 60_000;
  }

  /** Takes one token for `key`. Returns 0 when allowed, else the milliseconds until the next token. */
  take(key: string): number {
    const now = this.now();
    const tokens = this.tokensAt(key, now);
    if (tokens < 1) {
      this.buckets.set(key, { tokens, at: now });
      return Math.ceil((1 - tokens) / this.refillPerMs);
    }
    this.buckets.set(key, { tokens: tokens - 1, at: now });
    if (this.buckets.size > SWEEP_THRESHOLD) this.sweep(now);
    return 0;
  }

  get trackedKeys(): number {
    return this.buckets.size;
  }

  private tokensAt(key: string, now: number): number {
    const bucket = this.buckets.get(key);
    if (!bucket) return this.perMinute;
    return Math.min(this.perMinute, bucket.tokens + Math.max(0, now - bucket.at) * this.refillPerMs);
  }

  private sweep(now: number): void {
    for (const key of this.buckets.keys()) if (this.tokensAt(key, now) >= this.perMinute) this.buckets.delete(key);
  }
}
