import type { SessionKey, SessionStore, SessionStoreEntry } from '@anthropic-ai/claude-agent-sdk';
import type { AgentTranscriptsRepository } from '../store/agent-transcripts.repository.js';

/**
 * The agent SDK's `sessionStore` for one chat's agent (SESSION_STORE=database): the SDK mirrors every transcript line
 * the CLI writes into the chat's rows, and on `resume` loads them into a temporary config dir for the CLI, so any
 * node can resume the chat's session with its full context whatever its own agent home holds.
 *
 * What the SDK (0.3.x) does with it, as observed: with `sessionStoreFlush: 'eager'` (sdk-connection.ts) one
 * `append` per group of lines the CLI writes, one at a time, about 3 per turn, the last awaited before the turn's
 * `result` is delivered; never per streamed delta (`batched`, the default, appends once at the turn's end). On resume:
 * `load` of the main transcript, `listSubkeys`, and `load` of each subagent transcript, before the CLI is spawned.
 * `delete` and `listSessions` are only called by SDK functions the service does not use.
 *
 * The SDK's `projectKey` is ignored: it is derived from the working directory's path, which differs between nodes
 * whose WORKSPACE_DIR differs, and this store only ever serves the one chat it was made for.
 */
export class ChatSessionStore implements SessionStore {
  /** Appends the SDK started and that have not finished. */
  private readonly writing = new Set<Promise<void>>();

  constructor(
    private readonly transcripts: AgentTranscriptsRepository,
    private readonly chatId: string,
  ) {}

  append(key: SessionKey, entries: SessionStoreEntry[]): Promise<void> {
    const write = this.transcripts.append(this.key(key), entries);
    const tracked = write.then(
      () => undefined,
      () => undefined,
    );
    this.writing.add(tracked);
    void tracked.finally(() => this.writing.delete(tracked));
    return write;
  }

  /**
   * Resolves once every append already started has finished (failed ones too). The CLI writes its last lines as it
   * exits and the SDK stores them after that: a connection ends only once they are in, so that clearing or deleting
   * the chat's transcript right after its agent stopped cannot be followed by a late row of the old session.
   */
  async settled(): Promise<void> {
    while (this.writing.size > 0) await Promise.all(this.writing);
  }

  load(key: SessionKey): Promise<SessionStoreEntry[] | null> {
    return this.transcripts.load(this.key(key));
  }

  listSubkeys(key: { projectKey: string; sessionId: string }): Promise<string[]> {
    return this.transcripts.subpaths(this.chatId, key.sessionId);
  }

  delete(key: SessionKey): Promise<void> {
    return this.transcripts.remove(this.key(key));
  }

  private key(key: SessionKey) {
    return { chatId: this.chatId, sessionId: key.sessionId, ...(key.subpath ? { subpath: key.subpath } : {}) };
  }
}
