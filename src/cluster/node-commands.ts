import { randomUUID } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import type { Redis } from 'ioredis';
import { ChatError, ErrorCodeSchema, type ChatErrorCode } from '../protocol/errors.js';
import type { RedisAccess } from './redis-access.js';

/** The receiving node does not hold the chat (any more): the sender routes the command again. */
export class NotOwnerError extends Error {
  constructor(chatId: string) {
    super(`this node does not own chat ${chatId}`);
    this.name = 'NotOwnerError';
  }
}

/** Nobody listens on the target node's channel, or it did not answer in time. */
export class NodeUnreachableError extends Error {
  constructor(
    readonly member: string,
    why: string,
  ) {
    super(`node ${member} ${why}`);
    this.name = 'NodeUnreachableError';
  }
}

interface Request {
  id: string;
  from: string;
  op: string;
  chatId: string;
  args: unknown;
}

type Reply = { id: string; ok: true; value: unknown } | { id: string; ok: false; kind: 'chat' | 'not_owner' | 'other'; code?: string; message: string };

/** While a reply is awaited, how often the target node's liveness is checked: a node that died mid-command fails it. */
const LIVENESS_CHECK_MS = 1_000;

/** Runs a command that arrived for a chat this node owns (throws NotOwnerError otherwise). */
export type CommandHandler = (op: string, chatId: string, args: unknown) => Promise<unknown>;

/**
 * Chat operations sent to the node that owns the chat, and their replies: each node listens on its pub/sub channel
 * `node:<member>:commands` (requests) and `node:<member>:replies` (replies to what it sent), on a connection of its
 * own. A request carries an id; its reply comes back with it. A ChatError on the owner is a ChatError here, with its
 * code. Pub/sub loses what is sent while the target is away: a request unanswered within its timeout fails, and the
 * caller decides (the channel answers `agent_unavailable`). A target that dies after it got the request never
 * answers: the wait ends as soon as its liveness lapses (checked every second), not at the timeout, so the caller can
 * take the chat over (a socket waiting on a command holds up its later frames).
 */
export class NodeCommands {
  private subscriber: Redis | undefined;
  private readonly waiting = new Map<string, { resolve(value: unknown): void; reject(err: Error): void }>();

  constructor(
    private readonly redis: RedisAccess,
    readonly member: string,
    private readonly handle: CommandHandler,
    private readonly log: FastifyBaseLogger,
    /** Whether a node's liveness key is current (NodeLiveness.isAlive). */
    private readonly isAlive: (member: string) => Promise<boolean> = async () => true,
  ) {}

  async start(): Promise<void> {
    this.subscriber = await this.redis.open('node-commands');
    this.subscriber.on('message', (channel: string, message: string) => {
      if (channel === this.channel(this.member, 'commands')) void this.serve(message);
      else this.settle(message);
    });
    await this.subscriber.subscribe(this.channel(this.member, 'commands'), this.channel(this.member, 'replies'));
  }

  async stop(): Promise<void> {
    for (const { reject } of this.waiting.values()) reject(new NodeUnreachableError(this.member, 'is shutting down'));
    this.waiting.clear();
    await this.subscriber?.unsubscribe().catch(() => undefined);
  }

  /** Sends the operation to `member` and waits for its reply. */
  async call(member: string, op: string, chatId: string, args: unknown, timeoutMs: number): Promise<unknown> {
    const request: Request = { id: randomUUID(), from: this.member, op, chatId, args };
    const reply = new Promise<unknown>((resolve, reject) => this.waiting.set(request.id, { resolve, reject }));
    const fail = (why: string) => {
      this.waiting.get(request.id)?.reject(new NodeUnreachableError(member, why));
      this.waiting.delete(request.id);
    };
    const timer = setTimeout(() => fail(`did not answer ${op} within ${timeoutMs} ms`), timeoutMs);
    timer.unref();
    const watch = setInterval(() => {
      this.isAlive(member).then(
        (alive) => alive || fail(`was lost before it answered ${op}`),
        () => undefined, // Redis unreachable: the timeout decides
      );
    }, LIVENESS_CHECK_MS);
    watch.unref();
    try {
      const receivers = await this.redis.client.publish(this.channel(member, 'commands'), JSON.stringify(request));
      if (receivers === 0) throw new NodeUnreachableError(member, 'does not listen for commands');
      return await reply;
    } finally {
      clearTimeout(timer);
      clearInterval(watch);
      this.waiting.delete(request.id);
    }
  }

  private async serve(message: string): Promise<void> {
    let request: Request;
    try {
      request = JSON.parse(message) as Request;
    } catch {
      return this.log.warn('ignored a command that is not JSON');
    }
    let reply: Reply;
    try {
      reply = { id: request.id, ok: true, value: (await this.handle(request.op, request.chatId, request.args)) ?? null };
    } catch (err) {
      if (err instanceof NotOwnerError) reply = { id: request.id, ok: false, kind: 'not_owner', message: err.message };
      else if (err instanceof ChatError) reply = { id: request.id, ok: false, kind: 'chat', code: err.code, message: err.message };
      else {
        this.log.error({ err, op: request.op, chat_id: request.chatId }, 'a command from another node failed');
        reply = { id: request.id, ok: false, kind: 'other', message: err instanceof Error ? err.message : String(err) };
      }
    }
    await this.redis.client
      .publish(this.channel(request.from, 'replies'), JSON.stringify(reply))
      .catch((err: unknown) => this.log.warn({ err, op: request.op }, 'could not reply to a command'));
  }

  private settle(message: string): void {
    const reply = JSON.parse(message) as Reply;
    const waiter = this.waiting.get(reply.id);
    if (!waiter) return; // timed out meanwhile
    this.waiting.delete(reply.id);
    if (reply.ok) return waiter.resolve(reply.value);
    if (reply.kind === 'not_owner') return waiter.reject(new NotOwnerError(''));
    const code = ErrorCodeSchema.safeParse(reply.code);
    if (reply.kind === 'chat' && code.success) return waiter.reject(new ChatError(code.data as ChatErrorCode, reply.message));
    waiter.reject(new Error(reply.message));
  }

  private channel(member: string, kind: 'commands' | 'replies'): string {
    return this.redis.key('node', member, kind);
  }
}
