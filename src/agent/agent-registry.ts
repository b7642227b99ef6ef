import { monotonicNow } from '../lib/clock.js';
import type { SeqOrigin } from './seq-origin.js';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { FastifyBaseLogger } from 'fastify';
import type { ChatSettings } from '../protocol/chat.js';
import type { ServerEvent } from '../protocol/ws.js';
import type { Store } from '../store/store.js';
import type { AgentConnection, AgentConnectionFactory } from './agent-events.js';
import { chatAgentHome } from './agent-home.js';
import type { ChatTranscripts } from './chat-transcripts.js';
import { ChatError } from '../protocol/errors.js';
import type { SnapshotLimits } from './chat-recorder.js';
import { ChatSession, type Budgets, type ChatHooks, type ChatSessionDeps } from './chat-session.js';
import type { EventLogLimits } from './event-log.js';
import type { LoopTurns } from '../lib/loop-turns.js';
import { Serial } from '../lib/serial.js';
import { reportIfSlow } from '../lib/timeout.js';
import { StartBackoff, type StartBackoffSettings } from './start-backoff.js';

export interface AgentRegistryDeps {
  store: Store;
  connect: AgentConnectionFactory;
  workspaceDir: string;
  /** AGENT_HOME_DIR: each chat's agent has its own home below it (agent-home.ts). */
  agentHomeDir: string;
  /** Where the chats' agent session transcripts live (SESSION_STORE). */
  transcripts: ChatTranscripts;
  interruptTimeoutMs: number;
  modelSilenceMs: number;
  checkpointMs: number;
  replay: EventLogLimits;
  /** Where chats' event numbering starts (seq-origin.ts). */
  seqOrigin: SeqOrigin;
  /** Turns of the event loop for the chats' background writes (chat-recorder.ts). */
  writeTurns?: LoopTurns;
  permissionTimeoutMs: number;
  permissionFallback: 'deny' | 'wait';
  /** Bounds of the snapshot sent on subscribe. */
  snapshot: SnapshotLimits;
  /** Most agent processes alive at once; the least recently used idle one is closed to make room. */
  maxLiveAgents: number;
  /** An agent idle this long is closed (its chat resumes on the next message). */
  idleTimeoutMs: number;
  preflight(): string | undefined;
  /** Waits between agent starts after the CLI failed to start (the crash-loop guard). */
  startBackoff: StartBackoffSettings;
  log: FastifyBaseLogger;
  /** Sees every event of every chat (metrics). */
  tap?: (event: ServerEvent) => void;
  hooks?: ChatHooks;
  budgets?: Budgets;
  /**
   * Several nodes (src/chat-channel/cluster-chat-channel.ts): what a chat's new session publishes its events to, and
   * word of a session forgotten (its chat's lease is then released).
   */
  cluster?: {
    sink(chatId: string): NonNullable<ChatSessionDeps['sink']>;
    forgotten(chatId: string): void;
  };
}

/**
 * Owns every ChatSession: creates one per chat on first use, bounds the live agent processes (LRU eviction and
 * idle timeout), and closes them on delete and on shutdown.
 */
export class AgentRegistry {
  private readonly sessions = new Map<string, ChatSession>();
  /** Admissions run one at a time, so two chats never both take the last free slot. */
  private readonly admissions = new Serial();
  private readonly sweeper: NodeJS.Timeout;
  private readonly starts: StartBackoff;
  private closing = false;

  constructor(private readonly deps: AgentRegistryDeps) {
    this.starts = new StartBackoff(deps.startBackoff);
    const every = Math.max(1_000, Math.min(60_000, Math.floor(deps.idleTimeoutMs / 4)));
    this.sweeper = setInterval(() => void this.sweep(), every);
    this.sweeper.unref();
  }

  /** The chat's session (the caller has checked that the chat exists). */
  get(chatId: string): ChatSession {
    let session = this.sessions.get(chatId);
    if (!session) {
      if (this.closing) throw new ChatError('agent_unavailable', 'the service is shutting down');
      const cwd = path.join(this.deps.workspaceDir, chatId);
      session = new ChatSession({
        chatId,
        store: this.deps.store,
        connect: this.deps.connect,
        cwd,
        interruptTimeoutMs: this.deps.interruptTimeoutMs,
        modelSilenceMs: this.deps.modelSilenceMs,
        checkpointMs: this.deps.checkpointMs,
        replay: this.deps.replay,
        seqOrigin: this.deps.seqOrigin,
        ...(this.deps.writeTurns ? { writeTurns: this.deps.writeTurns } : {}),
        permissionTimeoutMs: this.deps.permissionTimeoutMs,
        permissionFallback: this.deps.permissionFallback,
        snapshot: this.deps.snapshot,
        transcriptExists: (sessionId) => this.deps.transcripts.exists(chatId, sessionId),
        preflight: this.deps.preflight,
        admitAgent: (s, start, options) => this.admit(s, start, options),
        agentStarts: {
          started: () => this.startSucceeded(),
          failed: (reason) => this.startFailed(reason),
          waitMs: () => this.starts.waitMs(),
        },
        log: this.deps.log.child({ chat_id: chatId }),
        ...(this.deps.tap ? { tap: this.deps.tap } : {}),
        ...(this.deps.hooks ? { hooks: this.deps.hooks } : {}),
        ...(this.deps.budgets ? { budgets: this.deps.budgets } : {}),
        ...(this.deps.cluster ? { sink: this.deps.cluster.sink(chatId) } : {}),
      });
      this.sessions.set(chatId, session);
    }
    return session;
  }

  peek(chatId: string): ChatSession | undefined {
    return this.sessions.get(chatId);
  }

  get size(): number {
    return this.sessions.size;
  }

  get liveAgents(): number {
    return this.live().length;
  }

  /** Process ids of the live agent CLIs (for operators and the orphan tests). */
  agentPids(): number[] {
    return this.live().flatMap((s) => (s.agentPid === undefined ? [] : [s.agentPid]));
  }

  /** Stops the chat's agent and forgets the session. */
  async closeChat(chatId: string, options: { fast?: boolean } = {}): Promise<void> {
    const session = this.sessions.get(chatId);
    if (!session) return;
    this.sessions.delete(chatId);
    try {
      await session.close(options);
    } finally {
      this.forgotten(session);
    }
  }

  /** The chat's settings changed: its running agent, if any, applies them (ChatSession.settingsChanged). */
  async settingsChanged(chatId: string, before: ChatSettings, after: ChatSettings): Promise<void> {
    await this.sessions.get(chatId)?.settingsChanged(before, after);
  }

  /**
   * A fork's agent resumes sessions of the chat it was forked from: their transcripts are copied to the fork (into
   * its own agent home, or its own rows: each chat's agent sees only its own). Returns the sessions that had no
   * transcript left.
   */
  async copyTranscripts(fromChatId: string, toChatId: string, sessionIds: string[]): Promise<string[]> {
    const missing: string[] = [];
    for (const sessionId of sessionIds) {
      if (!(await this.deps.transcripts.copy(fromChatId, toChatId, sessionId))) missing.push(sessionId);
    }
    return missing;
  }

  /** The chat is being deleted: stop its agent at once, then remove its working directory and its agent's home. */
  async discardChat(chatId: string): Promise<void> {
    await this.closeChat(chatId, { fast: true });
    // The folders go after the agent has exited; removing them is retried (a file still being released), and a
    // folder that cannot be removed is logged, never a reason to keep the chat the user deleted.
    for (const folder of [path.join(this.deps.workspaceDir, chatId), chatAgentHome(this.deps.agentHomeDir, chatId).home]) {
      await fs.rm(folder, { recursive: true, force: true, maxRetries: 5 }).catch((err: unknown) => {
        this.deps.log.warn({ err, chat_id: chatId, folder }, 'could not remove a deleted chat\'s folder');
      });
    }
  }

  /**
   * Shutdown: running queries end `cancelled` with their partial text stored, and every agent process is ended
   * (not interrupted politely: the service is going away). Resolves when all have exited.
   */
  async closeAll(): Promise<void> {
    this.closing = true;
    clearInterval(this.sweeper);
    const sessions = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.allSettled(sessions.map((s) => s.close({ fast: true }).finally(() => this.forgotten(s))));
  }

  /** A session is gone for good: with several nodes, its chat's lease goes with it. */
  private forgotten(session: ChatSession): void {
    if (this.sessions.get(session.chatId) !== session) this.deps.cluster?.forgotten(session.chatId);
  }

  private live(): ChatSession[] {
    return [...this.sessions.values()].filter((s) => s.hasLiveAgent);
  }

  /**
   * Starts an agent for `session` within the live-agent limit. At the limit, the least recently used idle agent
   * is closed first; if every agent is busy answering, a message gets a clear error and a prewarm just waits for
   * the next message (`evict: false` returns undefined).
   */
  private admit(
    session: ChatSession,
    start: () => Promise<AgentConnection>,
    { evict }: { evict: boolean },
  ): Promise<AgentConnection | undefined> {
    const admitted = this.admissions.run(async () => {
      if (this.closing) throw new ChatError('agent_unavailable', 'the service is shutting down');
      const waitMs = this.starts.waitMs();
      if (waitMs > 0) {
        if (!evict) return undefined;
        throw new ChatError(
          'agent_unavailable',
          `The agent could not start (${this.starts.failuresInARow} failed start(s) in a row, the last: ${this.starts.reason}). ` +
            `The service tries again in ${Math.ceil(waitMs / 1000)} s; nothing was stored.`,
        );
      }
      const others = this.live().filter((s) => s !== session);
      if (others.length >= this.deps.maxLiveAgents) {
        if (!evict) return undefined;
        let excess = others.length - this.deps.maxLiveAgents + 1;
        const idle = others.filter((s) => s.isIdle).sort((a, b) => a.lastActivity - b.lastActivity);
        for (const victim of idle) {
          if (excess === 0) break;
          this.deps.log.info({ chat_id: victim.chatId }, 'closing the least recently used agent to make room');
          // Re-checked under the victim's own lock: a message that reached it meanwhile keeps its agent.
          if (await victim.closeIdleAgent()) excess--;
        }
        if (excess > 0) {
          throw new ChatError('agent_busy', `all ${this.deps.maxLiveAgents} agents are busy answering; try again in a moment`);
        }
      }
      return start();
    });
    // Starts are one at a time on the node: one that hangs holds up every chat's start behind it.
    return reportIfSlow(admitted, 20_000, (ms) =>
      this.deps.log.warn({ chat_id: session.chatId, after_ms: ms }, 'an agent start is still waiting or running'),
    );
  }

  /** One log line per failed start; starts are spaced by the backoff, so a broken CLI cannot flood the log. */
  private startFailed(reason: string): void {
    if (this.closing) return;
    const delayMs = this.starts.failed(reason);
    this.deps.log.error(
      { reason, failures_in_a_row: this.starts.failuresInARow, next_attempt_in_ms: delayMs },
      'the agent CLI failed to start: no agent starts until the next attempt',
    );
  }

  private startSucceeded(): void {
    if (this.starts.succeeded()) this.deps.log.info('the agent CLI starts again');
  }

  /** Closes agents idle past the timeout and forgets sessions nobody follows. */
  private async sweep(): Promise<void> {
    const cutoff = monotonicNow() - this.deps.idleTimeoutMs;
    for (const session of [...this.sessions.values()]) {
      if (session.isBusy || session.lastActivity > cutoff) continue;
      if (session.isIdle) {
        this.deps.log.info({ chat_id: session.chatId }, 'closing an idle agent');
        await session.closeIdleAgent().catch((err: unknown) => this.deps.log.warn({ err }, 'failed to close an idle agent'));
      }
      if (session.subscriberCount === 0 && !session.hasLiveAgent && !session.isBusy) {
        this.sessions.delete(session.chatId);
        this.forgotten(session);
      }
    }
  }
}
