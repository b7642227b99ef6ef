import type { FastifyBaseLogger } from 'fastify';
import { recoverNode } from '../agent/crash-recovery.js';
import type { EventSink } from '../agent/event-log.js';
import type { ServerEvent } from '../protocol/ws.js';
import type { Store } from '../store/store.js';
import { ChatLeases, DEFAULT_LEASES, type Lease, type LeaseHolder, type LeaseSettings } from './chat-lease.js';
import { FencedError, type ChatEventStream } from './chat-event-stream.js';
import { parseMember, type NodeRun } from './node-identity.js';
import { DEFAULT_LIVENESS, NodeLiveness, type LivenessSettings } from './node-liveness.js';
import type { RedisAccess } from './redis-access.js';

/** How often a node looks for dead ones (one HKEYS and one MGET): a lost node's chats are freed this soon after its TTL. */
const DEAD_NODE_CHECK_MS = 1_000;
/** How long one survivor may take to clean up after a dead node before another may try. */
const CLEANUP_LOCK_MS = 60_000;

export const NODE_LOST_MESSAGE =
  'The node running this answer was lost (stopped, or cut off); the text streamed so far is kept. Send a message to continue: the conversation resumes on a live node.';

export interface ChatOwnershipDeps {
  redis: RedisAccess;
  /** This node's run: its member id in Redis is the one its rows record (queries.node_id, node_run). */
  run: NodeRun;
  store: Store;
  stream: ChatEventStream;
  log: FastifyBaseLogger;
  liveness?: LivenessSettings;
  leases?: LeaseSettings;
  now?: () => number;
}

/** A chat this node owns: the lease its session publishes under, and the seq it numbers on from. */
interface Owned {
  lease: Lease;
  firstSeq: number;
}

/**
 * Which chats this node runs, and the clean-up after nodes that died (docs/cluster.md). A chat is owned through its
 * lease (chat-lease.ts); taking one ends, first, a query its previous owner left running (that owner is gone: a live
 * owner stops its agents before its lease can lapse), with one terminal `error` (`node_lost`) on the chat's stream
 * and its rows repaired as a crash recovery would. The owned chat's session publishes its events under the lease
 * (sink); losing the lease stops the session (stopChat).
 *
 * Dead nodes are looked for every second: the first survivor to claim one takes each chat it held, ends its
 * running query, and lets the chat go (unless a session here uses it by then).
 */
export class ChatOwnership {
  readonly liveness: NodeLiveness;
  readonly leases: ChatLeases;
  private readonly owned = new Map<string, Owned>();
  /** One acquisition per chat at a time on this node. */
  private readonly taking = new Map<string, Promise<LeaseHolder | undefined>>();
  private watcher: NodeJS.Timeout | undefined;
  private readonly now: () => number;
  /** Stops the chat's session here (its lease is lost). Set by whoever runs the sessions. */
  stopChat: (chatId: string) => Promise<void> = async () => {};
  /** Whether a session here uses the chat (a dead node's chat taken for clean-up is then kept). */
  inUse: (chatId: string) => boolean = () => false;

  constructor(private readonly deps: ChatOwnershipDeps) {
    this.now = deps.now ?? Date.now;
    this.liveness = new NodeLiveness(deps.redis, deps.run.nodeId, deps.liveness ?? DEFAULT_LIVENESS, deps.run.runId, (err) =>
      deps.log.warn({ err }, 'could not renew this node\'s liveness in Redis'),
    );
    this.leases = new ChatLeases(deps.redis, this.liveness.member, (lease, why) => this.lost(lease, why), deps.leases ?? DEFAULT_LEASES, this.now);
  }

  get member(): string {
    return this.liveness.member;
  }

  async start(): Promise<void> {
    await this.liveness.start();
    this.leases.start();
    // This node's earlier runs are dead whatever their keys say: this run replaces them.
    for (const member of await this.liveness.earlierRuns()) await this.cleanUpAfter(member);
    this.watcher = setInterval(() => void this.watchDeadNodes(), DEAD_NODE_CHECK_MS);
    this.watcher.unref();
  }

  /** Leaves the cluster (after the sessions closed and released their chats). */
  async stop(): Promise<void> {
    clearInterval(this.watcher);
    this.leases.stop();
    await this.liveness.stop();
  }

  /** Whether this node owns the chat now. */
  owns(chatId: string): boolean {
    return this.owned.has(chatId) && this.leases.get(chatId) !== undefined;
  }

  /** Takes the chat if nobody holds it; undefined once this node owns it, else who holds it. */
  take(chatId: string): Promise<LeaseHolder | undefined> {
    if (this.owns(chatId)) return Promise.resolve(undefined);
    let taking = this.taking.get(chatId);
    if (!taking) {
      taking = this.acquire(chatId).finally(() => this.taking.delete(chatId));
      this.taking.set(chatId, taking);
    }
    return taking;
  }

  /** The chat's holder is dead: its lease is removed (if still its), and the chat taken. */
  async takeFromDead(chatId: string, member: string): Promise<LeaseHolder | undefined> {
    // This node is taking the chat right now: the lease in Redis is already its new one, the chat not yet counted as
    // owned. Releasing it would take the chat from under that acquisition (which then stops the chat's agent).
    const inFlight = this.taking.get(chatId);
    if (inFlight) return inFlight;
    await this.leases.releaseFor(chatId, member);
    return this.take(chatId);
  }

  holder(chatId: string): Promise<LeaseHolder | undefined> {
    return this.leases.holder(chatId);
  }

  isAlive(member: string): Promise<boolean> {
    return this.liveness.isAlive(member);
  }

  /** What the session of an owned chat publishes its events to (AgentRegistry's cluster hooks). */
  sink(chatId: string): EventSink & { answersPermissions(): boolean } {
    const owned = this.owned.get(chatId);
    if (!owned) throw new Error(`chat ${chatId} is not owned by this node`);
    return {
      firstSeq: owned.firstSeq,
      publish: (seq, event, json) => {
        this.deps.stream.publish(owned.lease, seq, event, json).catch((err: unknown) => {
          if (err instanceof FencedError) {
            if (this.owned.get(chatId) === owned) this.lost(owned.lease, 'taken');
            return;
          }
          this.deps.log.error({ err, chat_id: chatId, seq }, 'could not publish a chat event');
        });
      },
      // Another node's socket may answer: the owner cannot see their capabilities (docs/cluster.md, limits).
      answersPermissions: () => true,
    };
  }

  /** The chat's session here ended: the chat is free for any node. */
  forgotten(chatId: string): void {
    if (!this.owned.delete(chatId)) return;
    this.leases.release(chatId).catch((err: unknown) => this.deps.log.warn({ err, chat_id: chatId }, 'could not release a chat lease'));
  }

  private async acquire(chatId: string): Promise<LeaseHolder | undefined> {
    const got = await this.leases.acquire(chatId);
    if ('heldBy' in got) return got.heldBy;
    // The numbering goes on where the chat's stream ends, so a socket that follows the chat across the move sees no
    // gap (seq grows by one per event of a chat); a new or expired stream starts from the clock, above anything
    // numbered for the chat before.
    const last = await this.deps.stream.lastSeq(chatId);
    const firstSeq = await this.endLostQuery(got.lease, last ?? this.now() * 1000);
    await this.deps.stream.numberingFrom(chatId, firstSeq);
    this.owned.set(chatId, { lease: got.lease, firstSeq });
    return undefined;
  }

  /**
   * Ends the query the chat's previous owner left running, if any: the text block it left open ends, then the query
   * with `node_lost`; its rows are repaired. Returns the last seq used.
   */
  private async endLostQuery(lease: Lease, lastSeq: number): Promise<number> {
    const { chatId } = lease;
    const running = await this.deps.stream.running(chatId);
    if (!running) return lastSeq;
    const { queryId } = running;
    this.deps.log.warn({ chat_id: chatId, query_id: queryId }, 'ending a query whose node was lost');
    const { store } = this.deps;
    await store.messages.interruptStreamsOf(queryId);
    await store.queries.failIfRunning(queryId, 'the node running the query was lost');
    await store.toolUses.interruptOpen(queryId);
    let seq = lastSeq;
    const publish = async (body: Record<string, unknown>) => {
      seq++;
      const event = { ...body, chat_id: chatId, seq, query_id: queryId } as ServerEvent;
      await this.deps.stream.publish(lease, seq, event, JSON.stringify(event));
    };
    if (running.streamOpen) await publish({ type: 'stream_end' });
    await publish({ type: 'error', code: 'node_lost', error: NODE_LOST_MESSAGE });
    return seq;
  }

  private lost(lease: Lease, why: 'taken' | 'unrenewed'): void {
    const { chatId } = lease;
    if (this.owned.get(chatId)?.lease.value !== lease.value) return;
    this.owned.delete(chatId);
    this.deps.log.warn({ chat_id: chatId, why }, 'lost the lease on a chat: stopping its agent here');
    this.stopChat(chatId).catch((err: unknown) => this.deps.log.error({ err, chat_id: chatId }, 'could not stop a chat whose lease was lost'));
  }

  private watching = false;

  private async watchDeadNodes(): Promise<void> {
    if (this.watching) return;
    this.watching = true;
    try {
      for (const member of await this.liveness.deadMembers()) {
        if (await this.liveness.claimCleanup(member, CLEANUP_LOCK_MS)) await this.cleanUpAfter(member);
      }
    } catch (err) {
      this.deps.log.warn({ err }, 'could not check for dead nodes');
    } finally {
      this.watching = false;
    }
  }

  /**
   * Ends what a dead member left running (a terminal event on each of its chats' streams, then every row of that
   * run repaired, chats it held or not), frees its chats, and removes it from the cluster.
   */
  private async cleanUpAfter(member: string): Promise<void> {
    const chats = await this.leases.chatsOf(member);
    this.deps.log.warn({ lost_member: member, chats: chats.length }, 'a node is gone: ending its running queries and freeing its chats');
    for (const chatId of chats) {
      try {
        if ((await this.takeFromDead(chatId, member)) === undefined && !this.inUse(chatId)) this.forgotten(chatId);
      } catch (err) {
        this.deps.log.warn({ err, chat_id: chatId, lost_member: member }, 'could not free a chat of a dead node');
      }
    }
    try {
      const repaired = await recoverNode(this.deps.store, parseMember(member), 'the node running the query was lost');
      if (repaired.streams + repaired.queries + repaired.tools > 0) this.deps.log.warn({ lost_member: member, ...repaired }, 'repaired the work of a lost node');
    } catch (err) {
      this.deps.log.warn({ err, lost_member: member }, 'could not repair the rows of a lost node');
    }
    await this.liveness.forget(member);
  }
}
