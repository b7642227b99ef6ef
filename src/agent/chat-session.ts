import fs from 'node:fs/promises';
import type { FastifyBaseLogger } from 'fastify';
import type { ChatEventBody, ServerEvent } from '../protocol/ws.js';
import type { ImageToStore } from '../store/messages.repository.js';
import type { Store } from '../store/store.js';
import type { AgentConnection, AgentConnectionFactory, AgentEvent } from './agent-events.js';
import { ChatError } from './chat-error.js';
import { QueryRun } from './query-run.js';
import { Serial, withTimeout } from './serial.js';

export interface ChatSubscriber {
  send(event: ServerEvent): void;
}

export interface ChatSessionDeps {
  chatId: string;
  store: Store;
  connect: AgentConnectionFactory;
  /** The chat's own working directory (created on first use). */
  cwd: string;
  interruptTimeoutMs: number;
  /** Whether the SDK still has the transcript of a session, so resuming it keeps the model's context. */
  transcriptExists(sessionId: string): Promise<boolean>;
  /** A reason the agent cannot run at all (e.g. no credentials), checked before anything is stored. */
  preflight(): string | undefined;
  log: FastifyBaseLogger;
}

/** An error event of a chat (chat-scoped errors go through the same numbering as every other event). */
type ErrorBody = { type: 'error'; error: string; code: string; query_id?: string };

/** The three ways a query ends. */
type TerminalBody =
  | { type: 'result'; success: boolean; cost: number; duration: number }
  | { type: 'cancelled' }
  | { type: 'error'; error: string; code: string };

/**
 * One chat: its subscribers, its event numbering, its running query and its agent connection. Operations
 * (send, stop, clear, close) run one at a time under `ops`; rows are written in event order through `writes`.
 *
 * Invariants: every query gets exactly one terminal event; no event of a query follows it; a new message is
 * sent to the agent only after the previous turn ended (or its process was replaced), so answers never mix.
 */
export class ChatSession {
  private readonly ops = new Serial();
  private readonly writes = new Serial();
  private readonly subscribers = new Set<ChatSubscriber>();
  private seq = 0;
  private current: QueryRun | undefined;
  private connection: AgentConnection | undefined;
  /** Increments whenever the connection is replaced; events of an older connection are ignored. */
  private generation = 0;
  private resumedFrom: string | undefined;
  /** The SDK's cost total is cumulative per connection: a query's cost is the difference. */
  private costBase = 0;
  private closed = false;

  constructor(private readonly deps: ChatSessionDeps) {}

  get chatId(): string {
    return this.deps.chatId;
  }

  get isProcessing(): boolean {
    return this.current !== undefined && !this.current.terminated;
  }

  get hasLiveAgent(): boolean {
    return this.connection !== undefined;
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }

  /**
   * Adds a subscriber and sends it `history`, `tool_history` and `processing_state`. The snapshot is taken when
   * every queued write is stored and no event went out meanwhile, so it never misses or repeats an event.
   */
  async subscribe(subscriber: ChatSubscriber): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const seqBefore = this.seq;
      await this.writes.idle();
      const [messages, toolUses] = await Promise.all([
        this.deps.store.messages.list(this.chatId),
        this.deps.store.toolUses.list(this.chatId),
      ]);
      // Retry while events race the read; after a few tries accept (the next issue's replay covers the gap).
      if (seqBefore !== this.seq && attempt < 5) continue;
      this.subscribers.add(subscriber);
      const seq = this.seq;
      const q = this.current && !this.current.terminated ? this.current : undefined;
      subscriber.send({ type: 'history', chat_id: this.chatId, seq, messages });
      subscriber.send({ type: 'tool_history', chat_id: this.chatId, seq, tool_uses: toolUses });
      subscriber.send({
        type: 'processing_state',
        chat_id: this.chatId,
        seq,
        is_processing: q !== undefined,
        query_id: q?.id ?? null,
        streaming_state: q ? { text: q.streamOpen ? q.streamText : '' } : null,
      });
      return;
    }
  }

  unsubscribe(subscriber: ChatSubscriber): void {
    this.subscribers.delete(subscriber);
  }

  isSubscribed(subscriber: ChatSubscriber): boolean {
    return this.subscribers.has(subscriber);
  }

  /**
   * Starts a query for a user message; a running query is interrupted first (it ends `cancelled`). Resolves once
   * the message is stored and handed to the agent, not when the answer is complete.
   */
  send(content: string, images: ImageToStore[]): Promise<string> {
    return this.ops.run(async () => {
      if (this.closed) throw new ChatError('not_found', 'chat is closed');
      const unavailable = this.deps.preflight();
      if (unavailable) throw new ChatError('agent_unavailable', unavailable);
      await this.cancelRunning();

      const { store } = this.deps;
      const stored = await this.writes.run(async () => {
        const queryId = await store.queries.start(this.chatId);
        const message = await store.messages.add({ chatId: this.chatId, role: 'user', content, images, queryId });
        return message && { queryId, messageId: message.id };
      });
      if (!stored) throw new ChatError('not_found', 'chat not found');
      const run = new QueryRun(
        stored.queryId,
        content,
        images.map((img) => ({ mediaType: img.mediaType, base64: img.data.toString('base64') })),
      );
      this.current = run;
      this.emit({ type: 'user_message', query_id: run.id, content, message_id: stored.messageId });
      await this.startTurn(run);
      return run.id;
    });
  }

  /** Stops the running query, if any: it ends `cancelled`, its streamed text is stored as interrupted. */
  stop(): Promise<boolean> {
    return this.ops.run(async () => {
      const wasRunning = this.isProcessing;
      await this.cancelRunning();
      return wasRunning;
    });
  }

  /** Forgets the conversation: stored history and the model's context (the next message starts fresh). */
  clear(): Promise<void> {
    return this.ops.run(async () => {
      await this.cancelRunning();
      this.dropConnection();
      await this.writes.run(() => this.deps.store.messages.clear(this.chatId));
      this.emit({ type: 'history_cleared' });
    });
  }

  /** Ends the chat's agent (delete, eviction, shutdown): a running query ends `cancelled`. */
  close(): Promise<void> {
    return this.ops.run(async () => {
      await this.cancelRunning();
      this.dropConnection();
      this.closed = true;
      await this.writes.idle();
    });
  }

  // ------------------------------------------------------------------------------------------ internals

  private emit(body: ChatEventBody | ErrorBody): void {
    const event = { ...body, chat_id: this.chatId, seq: ++this.seq } as ServerEvent;
    for (const subscriber of this.subscribers) {
      try {
        subscriber.send(event);
      } catch (err) {
        this.deps.log.warn({ err }, 'failed to send an event to a subscriber');
      }
    }
  }

  /** Queues a write; a failure (e.g. the chat was deleted meanwhile) is logged, never thrown into the stream. */
  private write(what: string, task: () => Promise<unknown>): void {
    void this.writes.run(task).catch((err: unknown) => this.deps.log.error({ err, what }, 'failed to store'));
  }

  private async startTurn(run: QueryRun): Promise<void> {
    const connection = await this.ensureConnection(run);
    connection.send(run.content, run.images);
  }

  private async ensureConnection(run: QueryRun): Promise<AgentConnection> {
    if (this.connection) return this.connection;
    await fs.mkdir(this.deps.cwd, { recursive: true });
    const chat = await this.deps.store.chats.get(this.chatId);
    let resume = chat?.sdk_session_id ?? undefined;
    if (resume && !(await this.deps.transcriptExists(resume))) {
      this.sessionRestarted(run, resume, 'its transcript is gone');
      resume = undefined;
    }
    const generation = ++this.generation;
    this.costBase = 0;
    this.resumedFrom = resume;
    const connection = this.deps.connect({
      chatId: this.chatId,
      cwd: this.deps.cwd,
      ...(resume ? { resume } : {}),
      onEvent: (event) => {
        if (generation === this.generation) this.onAgentEvent(event);
      },
    });
    this.connection = connection;
    void connection.ended.then(({ error }) => {
      if (generation === this.generation) this.onConnectionEnded(error);
    });
    return connection;
  }

  private sessionRestarted(run: QueryRun, sessionId: string, why: string): void {
    this.deps.log.warn({ sdk_session_id: sessionId, why }, 'cannot resume the agent session: starting a new one');
    this.write('sdk session reset', () => this.deps.store.chats.setSdkSessionId(this.chatId, null));
    this.emit({
      type: 'notice',
      code: 'session_restarted',
      message: `The agent could not continue its previous session (${why}); it starts a new one and does not remember earlier messages.`,
    });
    void run;
  }

  /** Closes the agent process; the next message starts a new one that resumes the SDK session. */
  private dropConnection(): void {
    const connection = this.connection;
    if (!connection) return;
    this.generation++;
    this.connection = undefined;
    connection.close();
    if (this.current?.turnOpen) this.current.endTurn();
  }

  private onConnectionEnded(error: Error | undefined): void {
    this.connection = undefined;
    const run = this.current;
    if (!run?.turnOpen) return;
    // A resumed session that dies before its first turn starts: the transcript is unusable. Start afresh once.
    if (this.resumedFrom && !run.started && !run.terminated) {
      this.sessionRestarted(run, this.resumedFrom, error?.message ?? 'the agent exited');
      this.resumedFrom = undefined;
      void this.ops.run(async () => {
        if (this.current === run && !run.terminated) await this.startTurn(run);
      });
      return;
    }
    this.terminate(run, {
      type: 'error',
      code: 'agent_error',
      error: `The agent process ended unexpectedly${error ? `: ${error.message}` : ''}`,
    });
    run.endTurn();
  }

  private onAgentEvent(event: AgentEvent): void {
    const run = this.current;
    if (event.kind === 'init') {
      if (run) run.started = true;
      void this.saveSessionId(event.sessionId);
      return;
    }
    if (event.kind === 'api_retry') {
      this.deps.log.warn({ ...event, query_id: run?.id }, 'model API call failed: the agent retries');
      return;
    }
    if (!run) return;
    if (event.kind === 'turn_end') return this.onTurnEnd(run, event);
    if (run.terminated) return; // a stopped query drains here until its turn ends
    switch (event.kind) {
      case 'text_start':
        this.closeStream(run, 'complete');
        run.streamOpen = true;
        run.streamText = '';
        this.emit({ type: 'stream_start', query_id: run.id });
        return;
      case 'text_delta':
        if (!run.streamOpen) this.onAgentEvent({ kind: 'text_start' });
        run.streamText += event.text;
        this.emit({ type: 'text_delta', query_id: run.id, delta: event.text });
        return;
      case 'text_end':
        this.closeStream(run, 'complete');
        return;
      case 'text_whole':
        this.closeStream(run, 'complete');
        this.storeAssistantText(run, event.text, 'complete');
        this.emit({ type: 'assistant_message', query_id: run.id, content: event.text });
        return;
      case 'tool_use':
        this.closeStream(run, 'complete');
        this.write('tool use', () =>
          this.deps.store.toolUses.recordCall({
            chatId: this.chatId,
            queryId: run.id,
            toolUseId: event.toolUseId,
            toolName: event.toolName,
            input: event.input,
          }),
        );
        this.emit({
          type: 'tool_use',
          query_id: run.id,
          tool_id: event.toolUseId,
          tool_name: event.toolName,
          tool_input: event.input,
        });
        return;
      case 'tool_result':
        this.write('tool result', () =>
          this.deps.store.toolUses.recordResult({
            chatId: this.chatId,
            toolUseId: event.toolUseId,
            content: event.content,
            isError: event.isError,
          }),
        );
        this.emit({
          type: 'tool_result',
          query_id: run.id,
          tool_id: event.toolUseId,
          content: event.content,
          is_error: event.isError,
        });
        return;
      case 'api_error':
        this.closeStream(run, 'interrupted');
        run.apiError = event.message;
        return;
    }
  }

  private onTurnEnd(run: QueryRun, end: Extract<AgentEvent, { kind: 'turn_end' }>): void {
    const cost = Math.max(0, end.totalCostUsd - this.costBase);
    this.costBase = end.totalCostUsd;
    void this.saveSessionId(end.sessionId);
    const { queries } = this.deps.store;
    if (run.terminated) {
      // A stopped query's turn finished draining: record what it cost, its status stays.
      this.write('query cost', () => queries.recordCost(run.id, cost, end.durationMs));
    } else if (run.apiError !== undefined || (!end.success && end.subtype === 'error_during_execution')) {
      const error = run.apiError ?? (end.errors.join('; ') || 'The agent failed to answer');
      this.closeStream(run, 'interrupted');
      this.storeAssistantText(run, error, 'error');
      this.write('query end', () =>
        queries.finish(run.id, { status: 'error', costUsd: cost, durationMs: end.durationMs, error }),
      );
      this.terminate(run, { type: 'error', code: 'agent_error', error });
    } else {
      this.closeStream(run, 'complete');
      const error = end.success ? null : end.errors.join('; ') || end.subtype;
      this.write('query end', () =>
        queries.finish(run.id, { status: end.success ? 'complete' : 'error', costUsd: cost, durationMs: end.durationMs, error }),
      );
      this.terminate(run, { type: 'result', success: end.success, cost, duration: end.durationMs });
    }
    run.endTurn();
  }

  /** Ends the open text block, storing its text (interrupted text is stored too: never lost). */
  private closeStream(run: QueryRun, status: 'complete' | 'interrupted'): void {
    if (!run.streamOpen) return;
    run.streamOpen = false;
    this.storeAssistantText(run, run.streamText, status);
    run.streamText = '';
    this.emit({ type: 'stream_end', query_id: run.id });
  }

  private storeAssistantText(run: QueryRun, text: string, status: 'complete' | 'interrupted' | 'error'): void {
    if (text.length === 0) return;
    this.write('assistant message', () =>
      this.deps.store.messages.add({ chatId: this.chatId, role: 'assistant', content: text, status, queryId: run.id }),
    );
  }

  private terminate(run: QueryRun, body: TerminalBody): void {
    if (run.terminated) return;
    run.terminated = true;
    this.emit({ ...body, query_id: run.id });
  }

  /**
   * Cancels the running query (under `ops`): it ends `cancelled` at once, then the agent is interrupted and its turn
   * drained. If the interrupt does not finish in time the process is replaced; the session resumes on next use.
   */
  private async cancelRunning(): Promise<void> {
    const run = this.current;
    if (!run?.turnOpen) return;
    if (!run.terminated) {
      this.closeStream(run, 'interrupted');
      this.write('query cancelled', () => this.deps.store.queries.finish(run.id, { status: 'cancelled' }));
      this.terminate(run, { type: 'cancelled' });
    }
    const connection = this.connection;
    if (!connection) return run.endTurn();
    const timeout = this.deps.interruptTimeoutMs;
    try {
      await withTimeout(connection.interrupt(), timeout, 'interrupt');
      await withTimeout(run.turnEnded, timeout, 'draining the interrupted turn');
    } catch (err) {
      this.deps.log.warn({ err, query_id: run.id }, 'interrupt did not complete: replacing the agent process');
      this.dropConnection();
    }
  }

  private async saveSessionId(sessionId: string): Promise<void> {
    this.write('sdk session id', async () => {
      const chat = await this.deps.store.chats.get(this.chatId);
      if (chat && chat.sdk_session_id !== sessionId) await this.deps.store.chats.setSdkSessionId(this.chatId, sessionId);
    });
  }
}
