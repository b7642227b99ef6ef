import { randomUUID } from 'node:crypto';
import type { RedisAccess } from './redis-access.js';

export interface LivenessSettings {
  /** A node whose liveness key is this old is dead. */
  ttlMs: number;
  /** How often the key is renewed: a few renewals fit in one TTL, so one slow round trip does not kill a node. */
  beatEveryMs: number;
}

export const DEFAULT_LIVENESS: LivenessSettings = { ttlMs: 10_000, beatEveryMs: 3_000 };

/**
 * This node's presence in the cluster, and the others'. A member is `<NODE_ID>:<run id>`: a node restarted under
 * the same name is a new member, and its previous run a dead one to clean up after.
 *
 * Keys: the hash `nodes` (member → start time, every member not cleaned up yet) and `node:<member>:alive` (set with a
 * TTL, renewed every `beatEveryMs`). A member in `nodes` without its alive key is dead.
 */
export class NodeLiveness {
  readonly member: string;
  private timer: NodeJS.Timeout | undefined;
  /** When the last renewal succeeded (0: never). */
  lastBeatAt = 0;

  constructor(
    private readonly redis: RedisAccess,
    readonly nodeId: string,
    private readonly settings: LivenessSettings = DEFAULT_LIVENESS,
    bootId: string = randomUUID(),
    private readonly onBeatFailed: (err: unknown) => void = () => {},
  ) {
    this.member = `${nodeId}:${bootId}`;
  }

  /** How long a member's liveness lasts without a renewal: a member killed now is dead at most this much later. */
  get ttlMs(): number {
    return this.settings.ttlMs;
  }

  /** Registers the node and keeps it alive until stop(). */
  async start(): Promise<void> {
    await this.redis.client.hset(this.redis.key('nodes'), this.member, String(Date.now()));
    await this.beat();
    this.timer = setInterval(() => void this.beat().catch(this.onBeatFailed), this.settings.beatEveryMs);
    this.timer.unref();
  }

  /** A clean shutdown: the node leaves at once instead of being found dead a TTL later. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.redis.client.multi().del(this.aliveKey(this.member)).hdel(this.redis.key('nodes'), this.member).exec();
  }

  /** Stops renewing without leaving (what a killed node does; for tests). */
  halt(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  async beat(): Promise<void> {
    await this.redis.client.set(this.aliveKey(this.member), String(Date.now()), 'PX', this.settings.ttlMs);
    this.lastBeatAt = Date.now();
  }

  async isAlive(member: string): Promise<boolean> {
    return (await this.redis.client.exists(this.aliveKey(member))) === 1;
  }

  /** Registered members other than this one whose liveness key is gone. */
  async deadMembers(): Promise<string[]> {
    const members = (await this.redis.client.hkeys(this.redis.key('nodes'))).filter((m) => m !== this.member);
    if (members.length === 0) return [];
    const alive = await this.redis.client.mget(members.map((m) => this.aliveKey(m)));
    return members.filter((_, i) => alive[i] === null);
  }

  /** Earlier runs of this node's name that are still registered (alive or not: this run replaces them). */
  async earlierRuns(): Promise<string[]> {
    const members = await this.redis.client.hkeys(this.redis.key('nodes'));
    return members.filter((m) => m !== this.member && m.startsWith(`${this.nodeId}:`));
  }

  /**
   * Takes the right to clean up after a dead member; false if another node has it. The lock expires by itself, so
   * a survivor that dies while cleaning up leaves the work to the next one.
   */
  async claimCleanup(member: string, ttlMs: number): Promise<boolean> {
    return (await this.redis.client.set(this.redis.key('node', member, 'cleanup'), this.member, 'PX', ttlMs, 'NX')) === 'OK';
  }

  /** The dead member is cleaned up: it leaves the registry. */
  async forget(member: string): Promise<void> {
    await this.redis.client
      .multi()
      .hdel(this.redis.key('nodes'), member)
      .del(this.redis.key('node', member, 'chats'), this.redis.key('node', member, 'cleanup'), this.aliveKey(member))
      .exec();
  }

  private aliveKey(member: string): string {
    return this.redis.key('node', member, 'alive');
  }
}
