import fs from 'node:fs';
import { STATUS_CODES } from 'node:http';
import path from 'node:path';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyServerOptions } from 'fastify';
import { serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { openSeqOrigin } from './agent/seq-origin.js';
import { AgentRegistry, type AgentRegistryDeps } from './agent/agent-registry.js';
import type { AgentConnectionFactory } from './agent/agent-events.js';
import { buildAgentEnv, missingCredentials } from './agent/agent-env.js';
import { agentPriority } from './agent/agent-priority.js';
import { enforceConfinementPolicy, resolveConfinement, type AgentConfinement } from './agent/confinement.js';
import { loadMcpServers } from './agent/mcp-servers.js';
import { recoverFromCrash } from './agent/crash-recovery.js';
import { Metrics } from './observability/metrics.js';
import { sdkConnectionFactory } from './agent/sdk-connection.js';
import { chatTranscripts } from './agent/chat-transcripts.js';
import { installAuth } from './auth/auth.plugin.js';
import { AuthService } from './auth/auth.service.js';
import { checkExposure } from './auth/exposure.js';
import { isLoopbackHost } from './auth/loopback.js';
import { metricsAccess } from './auth/metrics-access.js';
import { ChatService, type ChatServiceOptions } from './chats/chat.service.js';
import type { ImageLimits } from './chats/images.js';
import type { ChatChannel } from './chat-channel/chat-channel.js';
import { LocalChatChannel } from './chat-channel/local-chat-channel.js';
import { startClusterRuntime, type ClusterRuntime } from './cluster/cluster-runtime.js';
import { ChatTitles } from './chats/chat-titles.js';
import { ChatUpdates } from './chats/chat-updates.js';
import { LoopTurns } from './lib/loop-turns.js';
import { TitleModel } from './chats/title-model.js';
import { sessionStoreKind, type Config } from './config/config.js';
import { newNodeRun } from './cluster/node-identity.js';
import { openRedis, type RedisHandle, type RedisSettings } from './cluster/redis.js';
import { openDatabase } from './db/database.js';
import { RateLimiter } from './limits/rate-limiter.js';
import { RedisRateLimiter } from './limits/redis-rate-limiter.js';
import { RedisTicketStore } from './auth/redis-tickets.js';
import { registerRestRateLimit } from './limits/rest-rate-limit.js';
import { Store } from './store/store.js';
import { authRoutes } from './transport/rest/auth.routes.js';
import { chatsRoutes } from './transport/rest/chats.routes.js';
import { registerCors } from './transport/rest/cors.js';
import { installErrorHandler } from './transport/rest/errors.js';
import { healthRoutes } from './transport/rest/health.routes.js';
import { registerOpenApi } from './transport/rest/openapi.js';
import { installJsonBodyParser } from './transport/rest/json-body.js';
import { wsRoutes, type WsRoutesOptions } from './transport/ws/ws.routes.js';
import { infoRoutes, serviceInfo } from './transport/rest/info.routes.js';
import { webClientPlugin } from './transport/web/web.plugin.js';
import { APP_VERSION } from './version.js';
import { importBodyLimit } from './chats/chat-import.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** The chats' agent sessions (read by operations endpoints and tests). */
    agents: AgentRegistry;
  }
}

/** How much longer than AGENT_API_TIMEOUT_MS a model stream may stay silent before the service ends the query. */
const MODEL_STALL_GRACE_MS = 5_000;

/**
 * The settings of every part, derived from the configuration once (appSettings) and handed down unchanged: a
 * part gets its own slice, and values shared by several parts (the image limits) are the same object in each.
 * The start-up steps that act on the machine (exposure check, confinement probe, crash recovery, the agents'
 * environment and SDK options, the title model) read the configuration itself: each runs once, in buildApp.
 */
export interface AppSettings {
  /** What a message may carry: live `chat` frames and imported chats are held to the same limits. */
  images: ImageLimits;
  maxMessageChars: number;
  /** The chat runtime's settings (AgentRegistry), without the parts it is given at run time. */
  agents: Omit<AgentRegistryDeps, 'store' | 'connect' | 'preflight' | 'log' | 'tap' | 'hooks' | 'seqOrigin' | 'transcripts'>;
  chats: ChatServiceOptions;
  rest: { pageSize: number; importBodyLimit: number };
  /**
   * This node in a deployment: its id (logs, metrics, the rows of the work it runs) and, in multi-node mode, the
   * Redis the nodes share.
   */
  cluster: { nodeId: string; redis?: RedisSettings };
  socket: Pick<WsRoutesOptions, 'images' | 'maxMessageChars' | 'prewarm' | 'maxBufferedBytes' | 'heartbeatMs' | 'corsOrigins' | 'maxSocketsPerUser'> & {
    /** `chat` frames per minute per user; 0: unlimited. */
    messagesPerMinute: number;
  };
}

export function appSettings(config: Config): AppSettings {
  const images: ImageLimits = { maxCount: config.MAX_IMAGES_PER_MESSAGE, maxBytes: config.MAX_IMAGE_BYTES };
  return {
    images,
    maxMessageChars: config.MAX_MESSAGE_CHARS,
    agents: {
      workspaceDir: config.WORKSPACE_DIR,
      agentHomeDir: config.AGENT_HOME_DIR,
      interruptTimeoutMs: config.AGENT_INTERRUPT_TIMEOUT_MS,
      // Past the CLI's own per-call timeout, so a request that gets no answer at all still ends with the CLI's error.
      modelSilenceMs: config.AGENT_API_TIMEOUT_MS + MODEL_STALL_GRACE_MS,
      checkpointMs: config.STREAM_CHECKPOINT_MS,
      replay: { maxEvents: config.REPLAY_BUFFER_EVENTS, maxBytes: config.REPLAY_BUFFER_BYTES },
      permissionTimeoutMs: config.PERMISSION_TIMEOUT_MS,
      permissionFallback: config.PERMISSION_FALLBACK,
      snapshot: {
        maxMessages: config.PAGE_SIZE,
        maxBytes: config.HISTORY_MAX_BYTES,
        toolOutputMaxChars: config.TOOL_OUTPUT_MAX_CHARS,
      },
      maxLiveAgents: config.MAX_LIVE_AGENTS,
      idleTimeoutMs: config.AGENT_IDLE_TIMEOUT_MS,
      startBackoff: { firstDelayMs: config.AGENT_START_BACKOFF_MS, maxDelayMs: config.AGENT_START_BACKOFF_MAX_MS },
      budgets: {
        ...(config.MAX_COST_PER_MESSAGE_USD !== undefined ? { perMessageUsd: config.MAX_COST_PER_MESSAGE_USD } : {}),
        ...(config.MAX_COST_PER_USER_PER_DAY_USD !== undefined ? { perUserPerDayUsd: config.MAX_COST_PER_USER_PER_DAY_USD } : {}),
      },
    },
    chats: {
      maxChatsPerUser: config.MAX_CHATS_PER_USER,
      settingsPolicy: {
        allowedTools: config.ALLOWED_TOOLS,
        permissionMode: config.PERMISSION_MODE,
        ...(config.ALLOWED_MODELS ? { allowedModels: config.ALLOWED_MODELS } : {}),
      },
      importLimits: { images, maxMessageChars: config.MAX_MESSAGE_CHARS },
    },
    rest: { pageSize: config.PAGE_SIZE, importBodyLimit: importBodyLimit({ images }) },
    cluster: {
      nodeId: config.NODE_ID,
      ...(config.REDIS_URL ? { redis: { url: config.REDIS_URL, keyPrefix: config.REDIS_KEY_PREFIX } } : {}),
    },
    socket: {
      images,
      maxMessageChars: config.MAX_MESSAGE_CHARS,
      prewarm: config.AGENT_PREWARM,
      maxBufferedBytes: config.WS_MAX_BUFFERED_BYTES,
      heartbeatMs: config.WS_HEARTBEAT_MS,
      corsOrigins: config.CORS_ORIGINS,
      maxSocketsPerUser: config.MAX_SOCKETS_PER_USER,
      messagesPerMinute: config.MESSAGES_PER_MINUTE,
    },
  };
}

export interface AppOptions {
  /** Fastify's logger option; server.ts passes pino settings, tests usually `false`. */
  logger?: FastifyServerOptions['logger'];
  /** The clock used for stored timestamps. */
  now?: () => Date;
  /** How chats reach an agent; the real Claude Agent SDK unless a test of the chat logic passes its own. */
  connect?: AgentConnectionFactory;
}

/**
 * Wires config → storage → domain services → transport. Never listens: server.ts does, and tests call
 * `app.inject()` or `app.listen({port: 0})` on an app of their own. `app.close()` releases everything it opened.
 */
export async function buildApp(config: Config, options: AppOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: options.logger ?? false,
    trustProxy: config.TRUST_PROXY,
    // Chat ids and titles are short; a body of a few MB is an image-free mistake or an attack.
    bodyLimit: 1024 * 1024,
    // A request Node cannot even parse (headers too large: 431, a malformed request: 400) is answered by this
    // hook, not by a route: the same `{detail}` shape, then the connection closes.
    clientErrorHandler: (err: NodeJS.ErrnoException, socket) => {
      if (!socket.writable) return void socket.destroy();
      const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
      const body = JSON.stringify({ detail: status === 431 ? 'request headers too large' : 'malformed HTTP request' });
      socket.end(
        `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: application/json; charset=utf-8\r\n` +
          `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
    },
    // Requests Fastify rejects before routing (a malformed URL) answer in the same `{detail}` shape.
    frameworkErrors: (err, _req, reply) => {
      void (reply as FastifyReply).code(err.statusCode ?? 400).send({ detail: err.message });
    },
  }).withTypeProvider<ZodTypeProvider>();
  const settings = appSettings(config);
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  installErrorHandler(app);
  installJsonBodyParser(app);

  for (const dir of [config.WORKSPACE_DIR, config.AGENT_HOME_DIR]) fs.mkdirSync(dir, { recursive: true });
  const mcpServers = config.MCP_SERVERS_FILE ? loadMcpServers(config.MCP_SERVERS_FILE) : undefined;
  const db = await openDatabase(config.DATABASE_URL, {
    onConnectionError: (err) => app.log.warn({ err }, 'an idle database connection broke; the next query reconnects'),
  });
  // This run of this node: recorded on the queries it starts, so recovery repairs only what it left (node-identity.ts).
  // In a cluster its member id (memberOf(nodeRun)) is the one the other nodes see, so a node that finds it dead
  // repairs exactly its rows with recoverNode(store, parseMember(member)).
  const nodeRun = newNodeRun(settings.cluster.nodeId);
  const store = new Store(db, options.now, nodeRun);
  // Multi-node mode: a node that cannot reach the shared state must not serve (its limits and tickets would be
  // its own), so an unreachable Redis stops the start here, before crash recovery and agents.
  let redis: RedisHandle | undefined;
  try {
    if (settings.cluster.redis) redis = await openRedis(settings.cluster.redis, app.log);
  } catch (err) {
    await db.destroy();
    throw err;
  }
  const auth = new AuthService({
    store,
    disabled: config.AUTH_DISABLED,
    // A ticket asked for on one node may open a socket on another.
    ...(redis ? { tickets: new RedisTicketStore(redis) } : {}),
  });
  let confinement: AgentConfinement;
  try {
    // Before anything else runs: a service that must not start touches nothing (no crash recovery, no agents).
    await checkExposure({ host: config.HOST, authDisabled: config.AUTH_DISABLED }, auth, app.log);
    confinement = await resolveConfinement(config.AGENT_CONFINEMENT, {
      agentHomeDir: config.AGENT_HOME_DIR,
      extraReadOnly: config.AGENT_READONLY_PATHS,
    });
    const multiUser = config.AUTH_DISABLED || !isLoopbackHost(config.HOST) || (await auth.mode()) === 'enabled';
    enforceConfinementPolicy(
      confinement,
      { setting: config.AGENT_CONFINEMENT, multiUser, allowUnconfined: config.ALLOW_UNCONFINED_AGENTS },
      app.log,
    );
  } catch (err) {
    await redis?.close();
    await db.destroy();
    throw err;
  }
  // Alone on its database every unfinished row is this node's; in a cluster only those of its own name.
  await recoverFromCrash(config, store, app.log, redis ? { kind: 'node', nodeId: nodeRun.nodeId } : { kind: 'all' });
  if (config.AGENT_SANDBOX && confinement.kind === 'bwrap') {
    // The CLI's sandbox is a bubblewrap of its own, and namespaces cannot be nested inside ours (it drops the
    // privileges that needs). Ours already confines Bash's files; what is lost is the CLI's network filter.
    app.log.warn(
      "AGENT_SANDBOX=true is not applied: the agents' own confinement (AGENT_CONFINEMENT) already keeps Bash " +
        "inside the chat's workspace, and the CLI's sandbox cannot run inside it. For the CLI's sandbox (and its " +
        'network filter) instead, set AGENT_CONFINEMENT=off.',
    );
  }

  const sessionStore = sessionStoreKind(config);
  if (sessionStore === 'files' && config.REDIS_URL) {
    app.log.warn(
      "SESSION_STORE=files with REDIS_URL: each node keeps its chats' agent transcripts, so a chat whose agent moves " +
        'to another node loses its model context there. SESSION_STORE=database keeps them in the shared database.',
    );
  }
  const agentNice = agentPriority(config.AGENT_NICE);
  if (config.AGENT_NICE > 0 && !agentNice) {
    app.log.warn(`AGENT_NICE=${config.AGENT_NICE} is not applied: no \`nice\` command on the PATH; agents run at the service's priority`);
  }
  const transcripts = chatTranscripts(
    sessionStore,
    store.agentTranscripts,
    { agentHomeDir: config.AGENT_HOME_DIR, workspaceDir: config.WORKSPACE_DIR },
    app.log,
  );
  const connect =
    options.connect ??
    sdkConnectionFactory(
      {
        systemPrompt: config.SYSTEM_PROMPT,
        maxTurns: config.MAX_TURNS,
        allowedTools: [...config.ALLOWED_TOOLS],
        permissionMode: config.PERMISSION_MODE,
        ...(config.MODEL ? { model: config.MODEL } : {}),
        ...(mcpServers ? { mcpServers } : {}),
        env: buildAgentEnv(config, process.getuid?.() === 0),
        agentHomeDir: config.AGENT_HOME_DIR,
        ...(confinement.kind === 'bwrap' ? { confinement: confinement.sandbox } : {}),
        sandbox: config.AGENT_SANDBOX && confinement.kind !== 'bwrap',
        ...(config.AGENT_CLI_PATH ? { cliPath: config.AGENT_CLI_PATH } : {}),
        ...(agentNice ? { priority: agentNice } : {}),
        sessionStore: (chatId) => transcripts.sessionStore(chatId),
      },
      app.log,
    );
  // Client frames and chat-list updates take turns of the event loop, so the agents' output is read between them.
  const loopTurns = new LoopTurns();
  const chatUpdates = new ChatUpdates(loopTurns);
  const titles = new ChatTitles(
    store,
    chatUpdates,
    config.TITLE_MODEL
      ? new TitleModel({
          model: config.TITLE_MODEL,
          ...(config.ANTHROPIC_API_KEY ? { apiKey: config.ANTHROPIC_API_KEY } : {}),
          ...(config.ANTHROPIC_AUTH_TOKEN ? { authToken: config.ANTHROPIC_AUTH_TOKEN } : {}),
          ...(config.ANTHROPIC_BASE_URL ? { baseUrl: config.ANTHROPIC_BASE_URL } : {}),
        })
      : undefined,
    app.log,
  );
  const openSockets = new Set<unknown>();
  const metrics: Metrics = new Metrics({
    node: settings.cluster.nodeId,
    liveAgents: (): number => agents.liveAgents,
    openSockets: () => openSockets.size,
  });
  const eventNumbering = await openSeqOrigin(store.settings, app.log);
  const agentDeps: AgentRegistryDeps = {
    ...settings.agents,
    seqOrigin: eventNumbering.origin,
    // The chats' background writes take turns of the event loop of their own (beside the client frames' turns).
    writeTurns: new LoopTurns(),
    store,
    transcripts,
    connect,
    preflight: () => missingCredentials(config),
    log: app.log,
    tap: metrics.observe,
    hooks: titles,
  };
  // The transport reaches the chat runtime only through the channel (WebSocket frames, and REST through ChatService):
  // this process's agents alone, or, with Redis, the cluster's (docs/cluster.md).
  let agents: AgentRegistry;
  let channel: ChatChannel;
  let cluster: ClusterRuntime | undefined;
  if (redis) {
    cluster = await startClusterRuntime(
      { redis, run: nodeRun, store, log: app.log, replayEvents: settings.agents.replay.maxEvents },
      (hooks) => new AgentRegistry({ ...agentDeps, cluster: hooks }),
    );
    agents = cluster.agents;
    channel = cluster.channel;
  } else {
    agents = new AgentRegistry(agentDeps);
    channel = new LocalChatChannel(agents);
  }
  const chats = new ChatService(store, channel, chatUpdates, settings.chats);
  app.decorate('agents', agents);

  // Shutdown order: agents stop first (running answers end `cancelled`, partial text stored) while the WebSocket
  // clients are still connected to hear it (preClose runs before @fastify/websocket closes them, as this hook is
  // added first); with several nodes the node then leaves the cluster; the database closes last.
  app.addHook('preClose', async () => {
    if (cluster) await cluster.close();
    else await agents.closeAll();
  });
  app.addHook('onClose', async () => {
    await eventNumbering.stop();
    await db.destroy();
    await redis?.close();
  });

  // CORS first (its hook answers preflights and decorates refusals), then authentication with the rate limit.
  await registerCors(app, config.CORS_ORIGINS);
  const limit = config.RATE_LIMIT_PER_MINUTE > 0 ? await registerRestRateLimit(app, config.RATE_LIMIT_PER_MINUTE, redis) : undefined;
  installAuth(app, { auth, corsOrigins: config.CORS_ORIGINS, ...(limit ? { limit } : {}) });

  await registerOpenApi(app, APP_VERSION);
  await app.register(healthRoutes, {
    db,
    ...(redis ? { redis } : {}),
    metrics,
    metricsAccess: metricsAccess({ metricsToken: config.METRICS_TOKEN, auth, ...(limit ? { limit } : {}) }),
  });
  await app.register(chatsRoutes, { chats, ...settings.rest });
  await app.register(authRoutes, { auth });
  await app.register(infoRoutes, { info: serviceInfo(APP_VERSION, config) });
  const { messagesPerMinute, ...socketSettings } = settings.socket;
  await app.register(wsRoutes, {
    channel,
    chatAccess: (principal, chatId) => chats.canAccess(principal, chatId),
    auth,
    chatUpdates,
    loopTurns,
    ...socketSettings,
    ...(limit ? { authFailureLimit: limit } : {}),
    ...(messagesPerMinute > 0
      ? {
          // Several nodes: one bucket per user in Redis, whichever nodes their sockets are on.
          messageLimiter: redis ? new RedisRateLimiter(redis, 'messages', messagesPerMinute) : new RateLimiter(messagesPerMinute),
        }
      : {}),
    onFrameError: (code) => metrics.frameError(code),
    openSockets,
  });
  await app.register(webClientPlugin);
  return app;
}
