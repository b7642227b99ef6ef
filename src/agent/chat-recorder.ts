import { randomUUID } from 'node:crypto';
import { monotonicNow } from '../lib/clock.js';
import type { FastifyBaseLogger } from 'fastify';
import type { HistoryMessage, ToolUseRecord } from '../protocol/chat.js';
import type { ImageToStore } from '../store/messages.repository.js';
import type { QueryOutcome } from '../store/queries.repository.js';
import type { Store } from '../store/store.js';
import type { TurnUsage } from './agent-events.js';
import { storageFault, StorageFaultError, type StorageFault } from '../db/errors.js';
import type { LoopTurns } from '../lib/loop-turns.js';
import { Serial } from '../lib/serial.js';

/** What one `subscribe` snapshot may hold: `history` and `tool_history` each stay within these. */
export interface SnapshotLimits {
  /** Most messages (and tool uses): PAGE_SIZE. */
  maxMessages: number;
  /** About this many bytes of JSON each, the newest entry always included: HISTORY_MAX_BYTES. */
  maxBytes: number;
  /** Longest tool output sent whole: TOOL_OUTPUT_MAX_CHARS. */
  toolOutputMaxChars: number;
}

/** The stored row of one text block; resolves to undefined if it could not be stored (chat deleted meanwhile). */
export type BlockRow = Promise<string | undefined>;

/**
 * Everything a chat stores while it runs, written one at a time in the order the events happened (`positions` in
 * the store then follow the conversation). Most writes are queued and never awaited by the stream: a failure is
 * logged, never thrown into it. `idle()` waits for what is queued.
 */
/**
 * How long a background write (an answer's text, a tool call, a query's end) is retried through a storage fault
 * (disk full, database locked or unreachable) before it is given up and logged. Later writes wait behind it, so the
 * rows keep their order and everything lands once the fault clears within this window.
 */
export const STORAGE_RETRY_WINDOW_MS = 60_000;
const RETRY_FIRST_MS = 200;
const RETRY_MAX_MS = 5_000;

export class ChatRecorder {
  private readonly writes = new Serial();
  /** The session id known to be stored with no resume point pending (see sdkSessionId); undefined: not known. */
  private storedSessionId: string | null | undefined;
  /** Set while a write is being retried through a storage fault: new user messages are refused at once. */
  private fault: StorageFault | undefined;

  constructor(
    private readonly store: Store,
    private readonly chatId: string,
    private readonly log: FastifyBaseLogger,
    /**
     * Turns of the event loop shared by every chat's background writes (none: written at once). Fifty answers that
     * start (or end) together each store a row right after the agent output that called for it; taking a turn first
     * lets the output of the other answers, their deltas, be read and sent before those rows are written.
     */
    private readonly turns?: LoopTurns,
  ) {}

  idle(): Promise<void> {
    return this.writes.idle();
  }

  /**
   * History for a subscriber, bounded in messages and bytes (SnapshotLimits): the latest settled messages (the
   * block streaming now is sent as processing_state) and the latest tool calls, long outputs cut.
   */
  async snapshot(
    limits: SnapshotLimits,
    { imageRefs }: { imageRefs: boolean },
  ): Promise<{ messages: HistoryMessage[]; hasMore: boolean; toolUses: ToolUseRecord[]; toolUsesHasMore: boolean }> {
    const [page, tools] = await Promise.all([
      this.store.messages.latest(this.chatId, { limit: limits.maxMessages, maxBytes: limits.maxBytes, imageRefs }),
      this.store.toolUses.latest(this.chatId, {
        limit: limits.maxMessages,
        maxBytes: limits.maxBytes,
        maxResultChars: limits.toolOutputMaxChars,
      }),
    ]);
    return { messages: page.messages, hasMore: page.hasMore, toolUses: tools.toolUses, toolUsesHasMore: tools.hasMore };
  }

  /**
   * Stores a user message and opens its query, together or not at all, before the agent sees it; undefined if the
   * chat is gone. Not retried: a storage fault is the sender's answer at once (nothing stored, send again).
   */
  userMessage(
    content: string,
    images: ImageToStore[],
    clientId?: string,
  ): Promise<{ queryId: string; messageId: string } | undefined> {
    // Queued behind a write that waits for the fault to clear, the sender would wait up to the retry window.
    if (this.fault) return Promise.reject(new StorageFaultError(this.fault));
    return this.writes.run(() =>
      this.store.transaction(async (tx) => {
        // The message's id is chosen first so that the query row names it from the start (no second write).
        const messageId = randomUUID();
        const queryId = await tx.queries.start(this.chatId, messageId, clientId);
        const message = await tx.messages.add({ id: messageId, chatId: this.chatId, role: 'user', content, images, queryId });
        return message && { queryId, messageId: message.id };
      }),
    );
  }

  clearHistory(): Promise<void> {
    return this.writes.run(async () => {
      this.storedSessionId = undefined;
      await this.store.messages.clear(this.chatId);
    });
  }

  /** A text block starts: stored at once as `streaming`, so a crash cannot lose it. */
  openBlock(queryId: string): BlockRow {
    const row = this.writes.run(async () => {
      await this.turns?.take();
      return this.retrying('streaming answer', () =>
        this.store.messages.add({ chatId: this.chatId, role: 'assistant', content: '', status: 'streaming', queryId }),
      );
    });
    return row.then(
      (message) => message?.id,
      (err: unknown) => {
        this.log.error({ err }, 'failed to store a streaming answer');
        return undefined;
      },
    );
  }

  checkpointBlock(row: BlockRow, text: string): void {
    this.queue('checkpoint', async () => {
      const id = await row;
      if (id) await this.store.messages.update(id, text, 'streaming');
    });
  }

  /** The block's final text and status; a block that never got text is removed. */
  closeBlock(row: BlockRow, text: string, status: 'complete' | 'interrupted'): void {
    this.queue('assistant message', async () => {
      const id = await row;
      if (!id) return;
      if (text.length === 0) await this.store.messages.remove(id);
      else await this.store.messages.update(id, text, status);
    });
  }

  markInterrupted(rows: BlockRow[]): void {
    this.queue('interrupted reply', async () => {
      for (const id of await Promise.all(rows)) if (id) await this.store.messages.setStatus(id, 'interrupted');
    });
  }

  assistantText(queryId: string, content: string, status: 'complete' | 'error' = 'complete'): void {
    this.queue('assistant message', () =>
      this.store.messages.add({ chatId: this.chatId, role: 'assistant', content, status, queryId }),
    );
  }

  toolCall(queryId: string, toolUseId: string, toolName: string, input: unknown): void {
    this.queue('tool use', () => this.store.toolUses.recordCall({ chatId: this.chatId, queryId, toolUseId, toolName, input }));
  }

  toolResult(toolUseId: string, content: string, isError: boolean): void {
    this.queue('tool result', () => this.store.toolUses.recordResult({ chatId: this.chatId, toolUseId, content, isError }));
  }

  /** The query ended; a stopped or failed one also closes its tool calls that never got a result. */
  queryEnded(queryId: string, outcome: QueryOutcome): void {
    this.queue('query end', async () => {
      await this.store.queries.finish(queryId, outcome);
      if (outcome.status !== 'complete') await this.store.toolUses.interruptOpen(queryId);
    });
  }

  /** What a stopped query cost, known once its turn has drained. */
  queryCost(queryId: string, costUsd: number, durationMs: number): void {
    this.queue('query cost', () => this.store.queries.recordCost(queryId, costUsd, durationMs));
  }

  /** A turn's own tokens and cost, in the usage ledger (stopped and failed turns cost too). */
  usage(queryId: string, usage: TurnUsage, costUsd: number): void {
    this.queue('usage', () => this.store.usage.record({ chatId: this.chatId, queryId, costUsd, ...usage }));
  }

  /** The question a retry answers again (once every queued write is stored). */
  async lastQuestion() {
    await this.idle();
    return this.store.messages.lastQuestion(this.chatId);
  }

  /** A retry: the answer after the question is superseded, and a new query answers the stored question. */
  retryQuery(question: { id: string; position: number }): Promise<{ queryId: string; superseded: string[] }> {
    return this.writes.run(() =>
      this.store.transaction(async (tx) => {
        const superseded = await tx.messages.supersedeAfter(this.chatId, question.position);
        const queryId = await tx.queries.start(this.chatId, question.id);
        return { queryId, superseded };
      }),
    );
  }

  /** Where the answer ended in the SDK session (see QueriesRepository.setSdkTail). */
  queryTail(queryId: string, sessionId: string, tailUuid: string): void {
    this.queue('query tail', () => this.store.queries.setSdkTail(queryId, sessionId, tailUuid));
  }

  /** The point the agent's next start resumes at (in order with the session ids the running agent reports). */
  resumePoint(sessionId: string | null, at: string | null): Promise<void> {
    return this.writes.run(async () => {
      this.storedSessionId = undefined;
      await this.store.chats.setResumePoint(this.chatId, sessionId, at);
    });
  }

  /**
   * The agent reports its session id at the start and end of every turn; it is stored when it changed (or a resume
   * point is pending). The recorder is the only writer of a chat's session id and resume point while its session
   * exists, so the id it last stored or found stored answers a repeated report without a read.
   */
  sdkSessionId(sessionId: string | null): Promise<void> {
    return this.writes.run(async () => {
      if (sessionId !== null && sessionId === this.storedSessionId) return;
      await this.turns?.take();
      const point = await this.store.chats.getResumePoint(this.chatId);
      if (point && (point.sessionId !== sessionId || point.at !== null)) await this.store.chats.setSdkSessionId(this.chatId, sessionId);
      this.storedSessionId = point ? sessionId : undefined;
    });
  }

  private queue(what: string, task: () => Promise<unknown>): void {
    void this.writes
      .run(async () => {
        await this.turns?.take();
        return this.retrying(what, task);
      })
      .catch((err: unknown) => this.log.error({ err, what }, 'failed to store'));
  }

  /** Runs a write, retrying it with backoff while the store has a fault (logged once), for the retry window. */
  private async retrying<T>(what: string, task: () => Promise<T>): Promise<T> {
    const started = monotonicNow();
    for (let delay = RETRY_FIRST_MS; ; delay = Math.min(delay * 2, RETRY_MAX_MS)) {
      try {
        const result = await task();
        if (this.fault) this.log.info({ what, chat_id: this.chatId }, 'storage fault cleared: write stored');
        this.fault = undefined;
        return result;
      } catch (err) {
        const fault = storageFault(err);
        if (!fault || monotonicNow() - started + delay > STORAGE_RETRY_WINDOW_MS) {
          this.fault = undefined;
          throw err;
        }
        this.fault = fault;
        if (delay === RETRY_FIRST_MS) {
          this.log.warn({ what, chat_id: this.chatId, fault: fault.kind, reason: (err as Error).message }, 'storage fault: retrying the write until it clears');
        }
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }
}
