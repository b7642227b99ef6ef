import fs from 'node:fs/promises';
import path from 'node:path';
import type { FastifyBaseLogger } from 'fastify';
import type { Store } from '../store/store.js';
import type { AgentConnectionFactory } from './agent-events.js';
import { ChatSession } from './chat-session.js';
import { transcriptExists } from './transcripts.js';

export interface AgentRegistryDeps {
  store: Store;
  connect: AgentConnectionFactory;
  workspaceDir: string;
  agentConfigDir: string;
  interruptTimeoutMs: number;
  preflight(): string | undefined;
  log: FastifyBaseLogger;
}

/** Owns every ChatSession: creates one per chat on first use, closes them on delete and on shutdown. */
export class AgentRegistry {
  private readonly sessions = new Map<string, ChatSession>();
  private closing = false;

  constructor(private readonly deps: AgentRegistryDeps) {}

  /** The chat's session (the caller has checked that the chat exists). */
  get(chatId: string): ChatSession {
    let session = this.sessions.get(chatId);
    if (!session) {
      if (this.closing) throw new Error('the service is shutting down');
      const cwd = path.join(this.deps.workspaceDir, chatId);
      session = new ChatSession({
        chatId,
        store: this.deps.store,
        connect: this.deps.connect,
        cwd,
        interruptTimeoutMs: this.deps.interruptTimeoutMs,
        transcriptExists: (sessionId) => transcriptExists(this.deps.agentConfigDir, cwd, sessionId),
        preflight: this.deps.preflight,
        log: this.deps.log.child({ chat_id: chatId }),
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
    let live = 0;
    for (const session of this.sessions.values()) if (session.hasLiveAgent) live++;
    return live;
  }

  /** Stops the chat's agent and forgets the session. */
  async closeChat(chatId: string): Promise<void> {
    const session = this.sessions.get(chatId);
    if (!session) return;
    this.sessions.delete(chatId);
    await session.close();
  }

  /** The chat is being deleted: stop its agent, then remove its working directory. */
  async discardChat(chatId: string): Promise<void> {
    await this.closeChat(chatId);
    await fs.rm(path.join(this.deps.workspaceDir, chatId), { recursive: true, force: true });
  }

  /** Shutdown: running queries end `cancelled` with their partial text stored; every agent process is closed. */
  async closeAll(): Promise<void> {
    this.closing = true;
    const sessions = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.allSettled(sessions.map((s) => s.close()));
  }
}
