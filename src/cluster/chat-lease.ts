import { withTimeout } from '../lib/timeout.js';
import { LuaScript, type RedisAccess } from './redis-access.js';

export interface LeaseSettings {
  /** A lease not renewed for this long expires. */
  ttlMs: number;
  /** How often held leases are renewed. */
  renewEveryMs: number;
}

export const DEFAULT_LEASES: LeaseSettings = { ttlMs: 10_000, renewEveryMs: 3_000 };

/** A chat's lease as this node holds it; `value` is what the lease key holds: `<member>/<token>`. */
export interface Lease {
  chatId: string;
  member: string;
  /** The fencing token: it grows at every acquisition of the chat, whoever acquires it. */
  token: number;
  value: string;
}

/** Who holds a chat's lease, read from Redis. */
export interface LeaseHolder {
  member: string;
  token: number;
}

export function parseLeaseValue(value: string): LeaseHolder {
  const at = value.lastIndexOf('/');
  return { member: value.slice(0, at), token: Number(value.slice(at + 1)) };
}

/** KEYS: lease, fence counter, the member's chat set. ARGV: member, ttl, chat id. Returns the lease value now. */
const ACQUIRE = new LuaScript(`
local current = redis.call('GET', KEYS[1])
if current then
  if string.sub(current, 1, #ARGV[1] + 1) == ARGV[1] .. '/' then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
  end
  return current
end
local value = ARGV[1] .. '/' .. redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
redis.call('SADD', KEYS[3], ARGV[3])
return value
`);

/** KEYS: leases. ARGV: ttl, then the value expected in each. Returns 1 (renewed) or 0 (lost) per lease. */
const RENEW = new LuaScript(`
local renewed = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[i + 1] then
    redis.call('PEXPIRE', key, ARGV[1])
    renewed[i] = 1
  else
    renewed[i] = 0
  end
end
return renewed
`);

/**
 * KEYS: lease, the holder's chat set. ARGV: the holder's member, chat id. Deletes the lease if that member holds it
 * (whatever its token); the chat leaves the member's set either way. Returns 1 if a lease was deleted.
 */
const RELEASE = new LuaScript(`
redis.call('SREM', KEYS[2], ARGV[2])
local current = redis.call('GET', KEYS[1])
if current and string.sub(current, 1, #ARGV[1] + 1) == ARGV[1] .. '/' then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`);

/**
 * The leases on chats this node holds: one live agent per chat in the cluster. `chat:<id>:lease` holds
 * `<member>/<token>` with a TTL; `chat:<id>:fence` counts acquisitions (the token); `node:<member>:chats` lists the
 * chats a member acquired, for whoever cleans up after it.
 *
 * Held leases are renewed together every `renewEveryMs`. One found expired or taken is reported lost
 * (`onLost`, why `taken`: it is not this node's any more). If no renewal succeeded for `ttlMs - renewEveryMs` (Redis unreachable, the process stalled), the
 * node can no longer be sure of any lease: every one is reported lost before it can expire (self-fencing), so the
 * node stops those agents before another node may start them.
 */
export class ChatLeases {
  private readonly held = new Map<string, Lease>();
  private timer: NodeJS.Timeout | undefined;
  /** Armed by a failed renewal: fences at the deadline unless a renewal succeeds first (see armFence). */
  private fenceTimer: NodeJS.Timeout | undefined;
  private lastRenewedAt: number;
  private renewing = false;

  constructor(
    private readonly redis: RedisAccess,
    readonly member: string,
    private readonly onLost: (lease: Lease, why: 'taken' | 'unrenewed') => void,
    private readonly settings: LeaseSettings = DEFAULT_LEASES,
    private readonly now: () => number = Date.now,
  ) {
    this.lastRenewedAt = now();
  }

  start(): void {
    this.lastRenewedAt = this.now();
    this.timer = setInterval(() => void this.renew(), this.settings.renewEveryMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    clearTimeout(this.fenceTimer);
    this.fenceTimer = undefined;
  }

  /** The lease this node holds on the chat, as far as it knows. */
  get(chatId: string): Lease | undefined {
    return this.held.get(chatId);
  }

  get chatIds(): string[] {
    return [...this.held.keys()];
  }

  /** Takes the chat's lease (or renews it if this node has it); the holder if another member has it. */
  async acquire(chatId: string): Promise<{ lease: Lease } | { heldBy: LeaseHolder }> {
    const value = String(
      await ACQUIRE.run(
        this.redis.client,
        [this.leaseKey(chatId), this.redis.key('chat', chatId, 'fence'), this.chatSetKey(this.member)],
        [this.member, this.settings.ttlMs, chatId],
      ),
    );
    const holder = parseLeaseValue(value);
    if (holder.member !== this.member) return { heldBy: holder };
    const lease: Lease = { chatId, member: this.member, token: holder.token, value };
    this.held.set(chatId, lease);
    return { lease };
  }

  /** Who holds the chat's lease now (none: nobody owns the chat). */
  async holder(chatId: string): Promise<LeaseHolder | undefined> {
    const value = await this.redis.client.get(this.leaseKey(chatId));
    return value === null ? undefined : parseLeaseValue(value);
  }

  /** Gives the chat up (its session ended here). */
  async release(chatId: string): Promise<void> {
    if (!this.held.delete(chatId)) return;
    await this.releaseFor(chatId, this.member);
  }

  /** Deletes the lease a dead member left on the chat, if it still holds it; true if it did. */
  async releaseFor(chatId: string, member: string): Promise<boolean> {
    return (await RELEASE.run(this.redis.client, [this.leaseKey(chatId), this.chatSetKey(member)], [member, chatId])) === 1;
  }

  /** The chats a member acquired and did not release. */
  chatsOf(member: string): Promise<string[]> {
    return this.redis.client.smembers(this.chatSetKey(member));
  }

  /** Forgets every lease without touching Redis: they expire (what a killed node leaves; for tests). */
  abandon(): void {
    this.stop();
    this.held.clear();
  }

  /** Renews every held lease; reports those lost, and all of them if renewals failed for too long. */
  async renew(): Promise<void> {
    if (this.renewing) return this.fenceIfStale();
    this.renewing = true;
    try {
      const leases = [...this.held.values()];
      const startedAt = this.now();
      if (leases.length > 0) {
        const renewed = (await withTimeout(
          RENEW.run(this.redis.client, leases.map((l) => this.leaseKey(l.chatId)), [this.settings.ttlMs, ...leases.map((l) => l.value)]),
          this.settings.renewEveryMs,
          'renewing chat leases',
        )) as number[];
        leases.forEach((lease, i) => {
          if (renewed[i] === 1 || this.held.get(lease.chatId) !== lease) return;
          this.held.delete(lease.chatId);
          this.onLost(lease, 'taken');
        });
      }
      this.lastRenewedAt = startedAt;
      clearTimeout(this.fenceTimer);
      this.fenceTimer = undefined;
    } catch {
      this.fenceIfStale();
      this.armFence();
    } finally {
      this.renewing = false;
    }
  }

  private fenceIfStale(): void {
    if (this.now() - this.lastRenewedAt < this.settings.ttlMs - this.settings.renewEveryMs) return;
    this.fence();
  }

  /**
   * After a failed renewal: fences at `ttlMs - renewEveryMs` after the last successful one, unless one succeeds
   * before. Checking only on the renewal ticks is not enough: when that deadline falls a millisecond after a tick, the
   * next tick comes `renewEveryMs` later, as the leases expire in Redis, and another node may start the chat's agent
   * while this one still runs it.
   */
  private armFence(): void {
    if (this.fenceTimer || this.held.size === 0) return;
    const renewedAt = this.lastRenewedAt;
    const deadline = renewedAt + this.settings.ttlMs - this.settings.renewEveryMs;
    this.fenceTimer = setTimeout(() => {
      this.fenceTimer = undefined;
      if (this.lastRenewedAt === renewedAt) this.fence();
    }, Math.max(0, deadline - this.now()));
    this.fenceTimer.unref();
  }

  private fence(): void {
    const leases = [...this.held.values()];
    this.held.clear();
    for (const lease of leases) this.onLost(lease, 'unrenewed');
  }

  private leaseKey(chatId: string): string {
    return this.redis.key('chat', chatId, 'lease');
  }

  private chatSetKey(member: string): string {
    return this.redis.key('node', member, 'chats');
  }
}
