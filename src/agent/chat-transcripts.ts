import path from 'node:path';
import type { SessionStore } from '@anthropic-ai/claude-agent-sdk';
import type { FastifyBaseLogger } from 'fastify';
import type { AgentTranscriptsRepository } from '../store/agent-transcripts.repository.js';
import { chatAgentHome, sharedConfigDir } from './agent-home.js';
import { ChatSessionStore } from './database-session-store.js';
import { copyTranscript, readLocalTranscript, transcriptExists } from './transcripts.js';

/** SESSION_STORE: where the agents' session transcripts (the model's context of each chat) live. */
export type SessionStoreKind = 'files' | 'database';

/**
 * Where each chat's agent session transcripts live, which decides whether its agent can resume a session (and so
 * keep the model's context) and how a fork gets the transcripts it continues from.
 */
/** An SDK session store that can also say when the appends it has started are stored (`settled`). */
export type AgentSessionStore = SessionStore & { settled?(): Promise<void> };

export interface ChatTranscripts {
  /** Whether the chat's agent can resume this session with its context. */
  exists(chatId: string, sessionId: string): Promise<boolean>;
  /** Gives the target chat the source chat's session to resume (a fork); false when the source has none. */
  copy(fromChatId: string, toChatId: string, sessionId: string): Promise<boolean>;
  /** The SDK session store of the chat's agent; undefined: the CLI's files in the chat's agent home are the transcripts. */
  sessionStore(chatId: string): AgentSessionStore | undefined;
}

interface Folders {
  /** AGENT_HOME_DIR */
  agentHomeDir: string;
  /** WORKSPACE_DIR: the CLI files a transcript under its working directory, `<WORKSPACE_DIR>/<chat id>`. */
  workspaceDir: string;
}

/**
 * SESSION_STORE=files: the transcripts are the CLI's own files in each chat's agent home (`<config dir>/projects/`).
 * A chat's context stays on the node whose agent home holds them.
 */
export class FileTranscripts implements ChatTranscripts {
  constructor(private readonly folders: Folders) {}

  exists(chatId: string, sessionId: string): Promise<boolean> {
    return transcriptExists(this.configDir(chatId), this.cwd(chatId), sessionId, sharedConfigDir(this.folders.agentHomeDir));
  }

  copy(fromChatId: string, toChatId: string, sessionId: string): Promise<boolean> {
    const at = (chatId: string) => ({ configDir: this.configDir(chatId), cwd: this.cwd(chatId) });
    return copyTranscript(at(fromChatId), at(toChatId), sessionId, sharedConfigDir(this.folders.agentHomeDir));
  }

  sessionStore(): undefined {
    return undefined;
  }

  private configDir(chatId: string): string {
    return chatAgentHome(this.folders.agentHomeDir, chatId).configDir;
  }

  private cwd(chatId: string): string {
    return path.join(this.folders.workspaceDir, chatId);
  }
}

/**
 * SESSION_STORE=database: the transcripts are rows of the chat (agent_transcript_entries), written and read by the
 * SDK through the chat's ChatSessionStore, so any node resumes any chat's session. The CLI still writes its local
 * files too; they are a cache the next start does not read.
 *
 * A session the database does not hold but the chat's agent home does (a chat of a node that kept its transcripts
 * in files until now) is copied into the database the first time it is needed, so switching a node to the database
 * keeps its chats' context.
 */
export class DatabaseTranscripts implements ChatTranscripts {
  constructor(
    private readonly transcripts: AgentTranscriptsRepository,
    private readonly folders: Folders,
    private readonly log: FastifyBaseLogger,
  ) {}

  async exists(chatId: string, sessionId: string): Promise<boolean> {
    return (await this.transcripts.has(chatId, sessionId)) || (await this.adoptLocal(chatId, sessionId));
  }

  async copy(fromChatId: string, toChatId: string, sessionId: string): Promise<boolean> {
    if (await this.transcripts.copySession(fromChatId, toChatId, sessionId)) return true;
    return (await this.adoptLocal(fromChatId, sessionId)) && this.transcripts.copySession(fromChatId, toChatId, sessionId);
  }

  sessionStore(chatId: string): ChatSessionStore {
    return new ChatSessionStore(this.transcripts, chatId);
  }

  /** Copies the session's transcript files from the chat's agent home into the database; false when there are none. */
  private async adoptLocal(chatId: string, sessionId: string): Promise<boolean> {
    const local = await readLocalTranscript(
      chatAgentHome(this.folders.agentHomeDir, chatId).configDir,
      path.join(this.folders.workspaceDir, chatId),
      sessionId,
      sharedConfigDir(this.folders.agentHomeDir),
    );
    if (!local || local.main.length === 0) return false;
    for (const { subpath, entries } of local.subagents) await this.transcripts.append({ chatId, sessionId, subpath }, entries);
    // The main transcript last: `has` is true only once everything is in.
    await this.transcripts.append({ chatId, sessionId }, local.main);
    this.log.info(
      { chat_id: chatId, sdk_session_id: sessionId, lines: local.main.length },
      'agent transcript copied from the agent home into the database',
    );
    return true;
  }
}

export function chatTranscripts(
  kind: SessionStoreKind,
  transcripts: AgentTranscriptsRepository,
  folders: Folders,
  log: FastifyBaseLogger,
): ChatTranscripts {
  return kind === 'database' ? new DatabaseTranscripts(transcripts, folders, log) : new FileTranscripts(folders);
}
