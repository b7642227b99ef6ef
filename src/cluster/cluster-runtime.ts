import type { FastifyBaseLogger } from 'fastify';
import type { AgentRegistry, AgentRegistryDeps } from '../agent/agent-registry.js';
import { ClusterChatChannel } from '../chat-channel/cluster-chat-channel.js';
import type { Store } from '../store/store.js';
import { ChatEventFeeds } from './chat-event-feeds.js';
import { ChatEventStream, DEFAULT_STREAM_TTL_MS } from './chat-event-stream.js';
import { ChatOwnership } from './chat-ownership.js';
import type { LeaseSettings } from './chat-lease.js';
import { NodeCommands } from './node-commands.js';
import type { NodeRun } from './node-identity.js';
import type { LivenessSettings } from './node-liveness.js';
import type { RedisAccess } from './redis-access.js';

/**
 * Entries a chat's stream keeps at least, whatever REPLAY_BUFFER_EVENTS says: every node's reader must find an
 * event in the stream after it was published, so the stream is never trimmed to nothing.
 */
const MIN_STREAM_EVENTS = 1_000;

export interface ClusterSettings {
  redis: RedisAccess;
  run: NodeRun;
  store: Store;
  log: FastifyBaseLogger;
  /** REPLAY_BUFFER_EVENTS: what a chat's stream keeps for replay. */
  replayEvents: number;
  liveness?: LivenessSettings;
  leases?: LeaseSettings;
}

/** A node's part in the cluster: its chat runtime (agents) and the channel the transport uses. */
export interface ClusterRuntime {
  agents: AgentRegistry;
  channel: ClusterChatChannel;
  /** This node's member id (`<NODE_ID>:<run id>`). */
  member: string;
  /** Shutdown: the agents stop (their chats are released), then the node leaves the cluster. */
  close(): Promise<void>;
}

/**
 * Puts the node in the cluster (docs/cluster.md): liveness and leases, the chat streams' reader, the command
 * channel, and the agent registry (made by `makeAgents`, with the hooks that tie its sessions to their leases).
 */
export async function startClusterRuntime(
  settings: ClusterSettings,
  makeAgents: (cluster: NonNullable<AgentRegistryDeps['cluster']>) => AgentRegistry,
): Promise<ClusterRuntime> {
  const { redis, log } = settings;
  const stream = new ChatEventStream(redis, { maxEvents: Math.max(settings.replayEvents, MIN_STREAM_EVENTS), ttlMs: DEFAULT_STREAM_TTL_MS });
  const ownership = new ChatOwnership({
    redis,
    run: settings.run,
    store: settings.store,
    stream,
    log,
    ...(settings.liveness ? { liveness: settings.liveness } : {}),
    ...(settings.leases ? { leases: settings.leases } : {}),
  });
  const agents = makeAgents({ sink: (chatId) => ownership.sink(chatId), forgotten: (chatId) => ownership.forgotten(chatId) });
  ownership.stopChat = (chatId) => agents.closeChat(chatId, { fast: true });
  ownership.inUse = (chatId) => agents.peek(chatId) !== undefined;
  let channel: ClusterChatChannel | undefined;
  const feeds = new ChatEventFeeds(
    redis,
    stream,
    (err, what) => log.warn({ err }, `could not ${what}`),
    (chatId, subscribers) => channel?.resubscribe(chatId, subscribers),
  );
  const commands = new NodeCommands(
    redis,
    ownership.member,
    (op, chatId, args) => channel!.handleCommand(op, chatId, args),
    log,
    (member) => ownership.isAlive(member),
  );
  channel = new ClusterChatChannel({ agents, ownership, stream, feeds, commands, log });
  await ownership.start();
  await feeds.start();
  await commands.start();
  log.info({ member: ownership.member }, 'joined the cluster');
  return {
    agents,
    channel,
    member: ownership.member,
    close: async () => {
      await agents.closeAll();
      await commands.stop();
      await feeds.stop();
      await ownership.stop();
    },
  };
}
