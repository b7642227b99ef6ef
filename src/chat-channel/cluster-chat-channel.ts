import type { FastifyBaseLogger } from 'fastify';
import type { AgentRegistry } from '../agent/agent-registry.js';
import type { ChatEventFeeds } from '../cluster/chat-event-feeds.js';
import type { ChatEventStream } from '../cluster/chat-event-stream.js';
import type { ChatOwnership } from '../cluster/chat-ownership.js';
import { FencedError } from '../cluster/chat-event-stream.js';
import { NodeUnreachableError, NotOwnerError, type NodeCommands } from '../cluster/node-commands.js';
import { monotonicNow } from '../lib/clock.js';
import type { ChatSettings, ImageMediaType } from '../protocol/chat.js';
import { ChatError } from '../protocol/errors.js';
import type { ServerEvent } from '../protocol/ws.js';
import type { ImageToStore } from '../store/messages.repository.js';
import type { ChatChannel, ChatSubscriber, Delivery, SubscribeOptions } from './chat-channel.js';

/** How long a node waits for the owner's reply to a routed operation (a send includes starting the agent). */
const COMMAND_TIMEOUT_MS = 60_000;
/** Routing attempts of one operation (the chat can change hands between reading its lease and arriving). */
const MAX_ROUTES = 4;
/** How often the liveness of an owner that stopped answering is checked while the operation waits to take over. */
const OWNER_LOST_POLL_MS = 500;
/**
 * The chat changed hands during a routing attempt (its holder released or lost it, another node took it while this
 * one was taking it): the operation is routed again, to where the chat is now.
 */
class RouteAgain extends Error {}

/** A snapshot taken by the chat's owner: the events to send, and the seq they stand at. */
interface Snapshot {
  seq: number;
  events: { event: ServerEvent; json: string }[];
}

/** What a chat operation does where the chat is owned, and whether it takes a chat nobody owns. */
interface Operation {
  /** Runs on the owning node. */
  run(chatId: string, args: never): Promise<unknown>;
  /** Taking the chat is worth it (the operation needs its agent or state); otherwise `idle` is the answer. */
  takes: boolean;
  idle?: unknown;
}

export interface ClusterChatChannelDeps {
  agents: AgentRegistry;
  ownership: ChatOwnership;
  stream: ChatEventStream;
  feeds: ChatEventFeeds;
  /** Set after construction: the commands need the channel as their handler (start wires them). */
  commands?: NodeCommands;
  log: FastifyBaseLogger;
}

/**
 * The chat channel of a node among several (docs/cluster.md). A chat's agent runs on its owner; an operation on a
 * chat owned by another live node is sent there (NodeCommands), a chat nobody owns is taken by the node that needs it,
 * and a chat whose owner died is taken after ending what that owner left running. Subscribers on any node get the
 * chat's events from its Redis stream (ChatEventFeeds), replayed from there after `last_seq`.
 */
export class ClusterChatChannel implements ChatChannel {
  private readonly operations: Record<string, Operation>;

  constructor(private readonly deps: ClusterChatChannelDeps) {
    const session = (chatId: string) => deps.agents.get(chatId);
    this.operations = {
      send: {
        takes: true,
        run: (
          chatId,
          { content, images, clientId }: { content: string; images: { mediaType: ImageMediaType; data: string }[]; clientId?: string },
        ) =>
          session(chatId).send(
            content,
            images.map((i) => ({ mediaType: i.mediaType, data: Buffer.from(i.data, 'base64') })),
            clientId,
          ),
      },
      retry: { takes: true, run: (chatId) => session(chatId).retry() },
      clear: { takes: true, run: (chatId) => session(chatId).clear() },
      prewarm: { takes: true, run: (chatId) => session(chatId).prewarm() },
      snapshot: { takes: true, run: (chatId, { imageRefs }: { imageRefs: boolean }) => this.snapshotHere(chatId, imageRefs) },
      stop: { takes: false, idle: false, run: (chatId) => session(chatId).stop() },
      answerPermission: {
        takes: false,
        idle: false,
        run: async (chatId, a: { requestId: string; allow: boolean; remember?: boolean }) =>
          session(chatId).answerPermission(a.requestId, a.allow, a.remember),
      },
      settingsChanged: {
        takes: false,
        run: (chatId, a: { before: ChatSettings; after: ChatSettings }) => deps.agents.settingsChanged(chatId, a.before, a.after),
      },
      discard: { takes: false, run: (chatId) => deps.agents.discardChat(chatId) },
    };
  }

  /** Runs an operation another node sent for a chat this node owns. */
  handleCommand = async (op: string, chatId: string, args: unknown): Promise<unknown> => {
    const operation = this.operations[op];
    if (!operation) throw new Error(`unknown chat operation ${op}`);
    if (!this.deps.ownership.owns(chatId)) throw new NotOwnerError(chatId);
    return operation.run(chatId, args as never);
  };

  async subscribe(chatId: string, subscriber: ChatSubscriber, { lastSeq, imageRefs = false }: SubscribeOptions = {}): Promise<void> {
    const snapshot: Delivery = { snapshot: true };
    if (lastSeq !== undefined) {
      const missed = await this.deps.stream.since(chatId, lastSeq);
      if (missed) {
        for (const { event, json } of missed) subscriber.send(event, json, snapshot);
        return this.deps.feeds.follow(chatId, subscriber, missed.at(-1)?.seq ?? lastSeq);
      }
    }
    const state = (await this.route(chatId, 'snapshot', { imageRefs })) as Snapshot;
    const sendState = () => {
      for (const { event, json } of state.events) subscriber.send(event, json, snapshot);
    };
    // A subscriber that follows the chat already keeps every event: those up to the snapshot's seq it has not had
    // yet come first, then the snapshot, then what follows it (as on one node, where it never misses one).
    if (await this.deps.feeds.resync(chatId, subscriber, state.seq, sendState)) return;
    sendState();
    await this.deps.feeds.follow(chatId, subscriber, state.seq);
  }

  /** The reader fell behind the stream's trimmed part: these subscribers get the chat's full state again. */
  resubscribe = (chatId: string, subscribers: ChatSubscriber[]): void => {
    for (const subscriber of subscribers) {
      this.subscribe(chatId, subscriber).catch((err: unknown) =>
        this.deps.log.warn({ err, chat_id: chatId }, 'could not send a lagging subscriber the chat state again'),
      );
    }
  };

  unsubscribe(chatId: string, subscriber: ChatSubscriber): void {
    this.deps.feeds.unfollow(chatId, subscriber);
  }

  isSubscribed(chatId: string, subscriber: ChatSubscriber): boolean {
    return this.deps.feeds.has(chatId, subscriber);
  }

  async send(chatId: string, content: string, images: ImageToStore[], clientId?: string): Promise<string> {
    const wire = images.map((i) => ({ mediaType: i.mediaType, data: i.data.toString('base64') }));
    return (await this.route(chatId, 'send', { content, images: wire, ...(clientId ? { clientId } : {}) })) as string;
  }

  async retry(chatId: string): Promise<string> {
    return (await this.route(chatId, 'retry', {})) as string;
  }

  async stop(chatId: string): Promise<boolean> {
    return (await this.route(chatId, 'stop', {})) as boolean;
  }

  async answerPermission(chatId: string, requestId: string, allow: boolean, remember?: boolean): Promise<boolean> {
    return (await this.route(chatId, 'answerPermission', { requestId, allow, ...(remember !== undefined ? { remember } : {}) })) as boolean;
  }

  async clear(chatId: string): Promise<void> {
    await this.route(chatId, 'clear', {});
  }

  async prewarm(chatId: string): Promise<void> {
    await this.route(chatId, 'prewarm', {});
  }

  async discard(chatId: string): Promise<void> {
    await this.route(chatId, 'discard', {});
    // What this node kept of the chat (a workspace and agent home from when it owned it) goes too.
    if (!this.deps.ownership.owns(chatId)) await this.deps.agents.discardChat(chatId);
  }

  async settingsChanged(chatId: string, before: ChatSettings, after: ChatSettings): Promise<void> {
    await this.route(chatId, 'settingsChanged', { before, after });
  }

  copyTranscripts(fromChatId: string, toChatId: string, sessionIds: string[]): Promise<string[]> {
    return this.deps.agents.copyTranscripts(fromChatId, toChatId, sessionIds);
  }

  /**
   * Runs the operation where the chat is owned: here (taking the chat if nobody owns it and the operation needs
   * it), on its live owner through Redis, or here after taking it from a dead owner.
   */
  private async route(chatId: string, op: string, args: unknown): Promise<unknown> {
    const operation = this.operations[op]!;
    const { ownership, commands } = this.deps;
    for (let attempt = 0; attempt < MAX_ROUTES; attempt++) {
      try {
        return await this.routeOnce(chatId, op, operation, args);
      } catch (err) {
        if (err instanceof RouteAgain) continue;
        throw err;
      }
    }
    throw new ChatError('agent_unavailable', 'the chat is moving between nodes; try again in a moment');
  }

  /** One routing attempt: the operation's result; RouteAgain when the chat changed hands meanwhile. */
  private async routeOnce(chatId: string, op: string, operation: Operation, args: unknown): Promise<unknown> {
    const { ownership, commands } = this.deps;
    if (ownership.owns(chatId)) return operation.run(chatId, args as never);
    const holder = await this.coordinate(() => ownership.holder(chatId));
    if (!holder) {
      if (!operation.takes) return operation.idle;
      if ((await this.coordinate(() => ownership.take(chatId))) === undefined) return operation.run(chatId, args as never);
      throw new RouteAgain();
    }
    if (holder.member === ownership.member) {
      // A lease of this node it no longer counts as its own (lost and not yet expired): take it afresh.
      await this.coordinate(() => ownership.takeFromDead(chatId, holder.member));
      throw new RouteAgain();
    }
    if (!(await this.coordinate(() => ownership.isAlive(holder.member)))) {
      if (!operation.takes) {
        await this.coordinate(() => ownership.takeFromDead(chatId, holder.member));
        if (ownership.owns(chatId)) return operation.run(chatId, args as never);
        throw new RouteAgain();
      }
      if ((await this.coordinate(() => ownership.takeFromDead(chatId, holder.member))) === undefined) return operation.run(chatId, args as never);
      throw new RouteAgain();
    }
    try {
      return await commands!.call(holder.member, op, chatId, args, COMMAND_TIMEOUT_MS);
    } catch (err) {
      if (err instanceof NotOwnerError) throw new RouteAgain();
      if (err instanceof NodeUnreachableError) {
        this.deps.log.warn({ chat_id: chatId, owner: holder.member, op, reason: err.message }, 'the node owning a chat did not answer');
        // A killed owner stays "alive" until its liveness lapses (at most its TTL): the operation waits for that
        // and then takes the chat over, instead of failing every frame sent to the chat meanwhile.
        if (await this.ownerLost(holder.member)) throw new RouteAgain();
        throw new ChatError('agent_unavailable', `the node running this chat did not answer; try again`);
      }
      throw err;
    }
  }

  /** Waits (up to the liveness TTL and a little) for `member`'s liveness to lapse; false if it stays alive. */
  private async ownerLost(member: string): Promise<boolean> {
    const { ownership } = this.deps;
    const deadline = monotonicNow() + ownership.liveness.ttlMs + 2_000;
    for (;;) {
      if (!(await this.coordinate(() => ownership.isAlive(member)))) return true;
      if (monotonicNow() >= deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, OWNER_LOST_POLL_MS));
    }
  }

  /**
   * A step of the cluster's coordination (leases, liveness) through Redis. Without Redis no node can safely own a
   * chat: the operation is refused with a code the client knows (try again), not as an internal error.
   */
  private async coordinate<T>(step: () => Promise<T>): Promise<T> {
    try {
      return await step();
    } catch (err) {
      if (err instanceof ChatError) throw err;
      if (err instanceof FencedError) throw new RouteAgain();
      this.deps.log.warn({ reason: (err as Error).message }, 'chat coordination failed (Redis unreachable?)');
      throw new ChatError('agent_unavailable', 'the chat service cannot coordinate its nodes right now (Redis unreachable); try again shortly');
    }
  }

  /** The chat's state as a new subscriber gets it, taken by its session here (this node owns the chat). */
  private async snapshotHere(chatId: string, imageRefs: boolean): Promise<Snapshot> {
    const events: Snapshot['events'] = [];
    const collector: ChatSubscriber = {
      send: (event, json, delivery) => {
        if (delivery?.snapshot) events.push({ event, json: json ?? JSON.stringify(event) });
      },
    };
    const session = this.deps.agents.get(chatId);
    await session.subscribe(collector, undefined, { imageRefs });
    session.unsubscribe(collector);
    const seq = events.length > 0 && 'seq' in events[0]!.event ? Number(events[0]!.event.seq) : 0;
    return { seq, events };
  }
}
