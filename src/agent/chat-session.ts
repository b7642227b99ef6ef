import type { FastifyBaseLogger } from 'fastify';
import type { ChatEventBody, ServerEvent } from '../protocol/ws.js';
import type { ImageToStore } from '../store/messages.repository.js';
import type { Store } from '../store/store.js';
import type { ChatSettings } from '../protocol/chat.js';
import type { AgentConnection, AgentConnectionFactory, AgentEvent, ChatAgentSettings } from './agent-events.js';
import { AgentLink } from './agent-link.js';
import { ChatError, type ErrorCode } from '../protocol/errors.js';
import { monotonicNow } from '../lib/clock.js';
import type { SeqOrigin } from './seq-origin.js';
import { ChatEventLog, type ChatSubscriber, type EventLogLimits, type EventSink } from './event-log.js';
import { PermissionBroker, type PermissionRequest } from './permission-broker.js';
import { QueryRun, type QueryEventBody } from './query-run.js';
import { ChatRecorder, type SnapshotLimits } from './chat-recorder.js';
import { toolUsePath, truncateToolOutput } from '../chats/tool-output.js';
import { buildImportContext, importedContextFor } from '../chats/import-context.js';
import type { LoopTurns } from '../lib/loop-turns.js';
import { Serial } from '../lib/serial.js';
import { withTimeout } from '../lib/timeout.js';
import { StoredFirstEmitter } from './stored-first-emitter.js';

export type { ChatSubscriber };

/** Agent starts one message may try (the first included) when the CLI dies before it starts. */
const START_ATTEMPTS_PER_MESSAGE = 3;
/** A message waits for the crash-loop guard this long at most; past it, the query ends with an error at once. */
const MAX_START_WAIT_IN_MESSAGE_MS = 5_000;

export interface ChatSessionDeps {
  chatId: string;
  store: Store;
  connect: AgentConnectionFactory;
  /** The chat's own working directory (created on first use). */
  cwd: string;
  interruptTimeoutMs: number;
  /**
   * How long the model may send nothing while a turn waits on it (no tool running) before the query ends with an
   * error and the agent process is replaced: a stream that stalls mid-answer never ends on its own.
   */
  modelSilenceMs: number;
  /** How often the text of a streaming answer is checkpointed to the store (what a crash can lose at most). */
  checkpointMs: number;
  replay: EventLogLimits;
  /** How long a permission question waits for an answer. */
  permissionTimeoutMs: number;
  /** With no subscriber that answers permission questions: `deny` at once, or `wait` (ask anyway). */
  permissionFallback: 'deny' | 'wait';
  /** Bounds of the `history` / `tool_history` sent on subscribe (older messages are paged over REST). */
  snapshot: SnapshotLimits;
  /** Whether the SDK still has the transcript of a session, so resuming it keeps the model's context. */
  transcriptExists(sessionId: string): Promise<boolean>;
  /** A reason the agent cannot run at all (e.g. no credentials), checked before anything is stored. */
  preflight(): string | undefined;
  /**
   * Starts an agent process through `start` once there is room under the live-agent limit (evicting an idle one
   * if `evict`); throws ChatError when every agent is busy, or returns undefined without `evict`.
   */
  admitAgent(
    session: ChatSession,
    start: () => Promise<AgentConnection>,
    options: { evict: boolean },
  ): Promise<AgentConnection | undefined>;
  /** The service-wide crash-loop guard: reports of agent starts, and the wait before the next may be tried. */
  agentStarts: { started(): void; failed(reason: string): void; waitMs(): number };
  log: FastifyBaseLogger;
  /** The clock for durations (stall watchdog, checkpoints, idle time); the monotonic one unless a test sets it. */
  now?: () => number;
  /** Where the chat's event numbering starts (shared by every chat of the service). */
  seqOrigin: SeqOrigin;
  /** Turns of the event loop for the chat's background writes, shared by every chat (chat-recorder.ts says why). */
  writeTurns?: LoopTurns;
  /** Sees every event of the chat (metrics). */
  tap?: (event: ServerEvent) => void;
  /** What the rest of the service learns about a chat's conversation (titles, chat list updates). */
  hooks?: ChatHooks;
  /** MAX_COST_PER_MESSAGE_USD and MAX_COST_PER_USER_PER_DAY_USD (USD; absent: no limit). */
  budgets?: Budgets;
  /**
   * Several nodes: the chat's events are also published to its shared stream, whose subscribers (on any node) may
   * answer permission questions though none is subscribed here.
   */
  sink?: EventSink & { answersPermissions(): boolean };
}

export interface Budgets {
  perMessageUsd?: number;
  perUserPerDayUsd?: number;
}

/** Smallest budget handed to the SDK (it needs a positive number; the day's check refuses before it matters). */
const MIN_PROCESS_BUDGET_USD = 0.000001;

/** Told about a chat's conversation; never awaited by the stream, failures are logged. */
export interface ChatHooks {
  /** A user message was stored. */
  userMessage(chatId: string, content: string): Promise<void>;
  /** An answer completed successfully, with the text the user saw. */
  answered(chatId: string, userText: string, answerText: string): void;
}

/** A chat event before it is numbered; errors of a chat are numbered like every other event. */
type Body = ChatEventBody | { type: 'error'; error: string; code: ErrorCode; query_id?: string };

/**
 * One chat: its event stream, its running query and its agent connection, and the state machine that ties them
 * together (which query is current, starting and replacing the agent, stop, retries, the stall watchdog). What an
 * answer is made of, the translation of the agent's events into client events and rows, is the query's own
 * (QueryRun). Operations (send, stop, clear, close) run one at a time under `ops`; rows are written in event order
 * by the ChatRecorder.
 *
 * Invariants: every query gets exactly one terminal event; no event of a query follows it; a new message is
 * sent to the agent only after the previous turn ended (or its process was replaced), so answers never mix.
 */
export class ChatSession {
  private readonly ops = new Serial();
  private readonly record: ChatRecorder;
  private readonly events: ChatEventLog;
  /** Events go out through this: a terminal one after the query's rows are stored. */
  private readonly out: StoredFirstEmitter<Body>;
  private readonly permissions: PermissionBroker;
  private readonly agent: AgentLink;
  private current: QueryRun | undefined;
  private closed = false;
  private pendingOps = 0;
  private readonly now: () => number;
  /** Last time the chat did something (a message, an answer event): the registry evicts the least recent. */
  lastActivity: number;

  constructor(private readonly deps: ChatSessionDeps) {
    this.now = deps.now ?? monotonicNow;
    this.events = new ChatEventLog(deps.replay, deps.seqOrigin, deps.tap, deps.sink);
    this.record = new ChatRecorder(deps.store, deps.chatId, deps.log, deps.writeTurns);
    this.out = new StoredFirstEmitter(
      (body) =>
        this.events.emit(
          (seq) => ({ ...body, chat_id: this.chatId, seq }) as ServerEvent,
          (err) => this.deps.log.warn({ err }, 'failed to send an event to a subscriber'),
        ),
      (err) => this.deps.log.error({ err }, 'failed to send an event'),
    );
    this.agent = new AgentLink(
      {
        cwd: deps.cwd,
        resumePoint: async () => {
          const point = await deps.store.chats.getResumePoint(deps.chatId);
          return { ...(point?.sessionId ? { sessionId: point.sessionId } : {}), ...(point?.at ? { at: point.at } : {}) };
        },
        chatSettings: async () => agentSettings((await deps.store.chats.get(deps.chatId))?.settings ?? {}),
        transcriptExists: deps.transcriptExists,
        admit: (start, options) => deps.admitAgent(this, start, options),
        connect: (request) => deps.connect({ chatId: deps.chatId, cwd: deps.cwd, ...request }),
        sessionLost: (sessionId, why) => this.sessionRestarted(sessionId, why),
        budgetUsd: () => this.processBudget(),
        started: () => deps.agentStarts.started(),
        startFailed: (reason) => deps.agentStarts.failed(reason),
      },
      {
        onEvent: (event) => this.onAgentEvent(event),
        canUseTool: (toolName, input, options) => {
          const run = this.current;
          if (!run || run.terminated) return Promise.resolve({ behavior: 'deny' as const, message: 'The request was cancelled.' });
          const canAsk =
            this.deps.permissionFallback === 'wait' ||
            this.events.some((s) => s.answersPermissions === true) ||
            this.deps.sink?.answersPermissions() === true;
          return this.permissions.ask(run.id, toolName, input, { ...options, canAsk });
        },
        onEnded: (error, resumedFrom, atStart) => this.onAgentEnded(error, resumedFrom, atStart),
      },
    );
    this.lastActivity = this.now();
    this.permissions = new PermissionBroker({
      timeoutMs: deps.permissionTimeoutMs,
      cwd: deps.cwd,
      rules: {
        list: () => deps.store.permissionRules.list(deps.chatId),
        add: (rule) => deps.store.permissionRules.add(deps.chatId, rule),
      },
      asked: (request) => this.emit(permissionRequestBody(request)),
      settled: (request, outcome) =>
        this.emit({ type: 'permission_resolved', query_id: request.queryId, request_id: request.requestId, outcome }),
      failed: (err, what) => this.deps.log.error({ err }, `could not ${what}`),
    });
  }

  get chatId(): string {
    return this.deps.chatId;
  }

  get isProcessing(): boolean {
    return this.current !== undefined && !this.current.terminated;
  }

  /** An agent turn is still running (a stopped query may still be draining). */
  get isBusy(): boolean {
    return this.current?.turnOpen === true;
  }

  /** Has a live agent that is neither answering nor about to (no operation running or queued). */
  get isIdle(): boolean {
    return this.hasLiveAgent && !this.isBusy && this.pendingOps === 0;
  }

  get hasLiveAgent(): boolean {
    return this.agent.live;
  }

  get agentPid(): number | undefined {
    return this.agent.pid;
  }

  get subscriberCount(): number {
    return this.events.subscriberCount;
  }

  isSubscribed(subscriber: ChatSubscriber): boolean {
    return this.events.has(subscriber);
  }

  /**
   * Adds a subscriber. With `lastSeq` (the last event it saw) and those events still kept, it gets exactly the
   * events it missed. Otherwise it gets the chat's state: `history`, `tool_history`, `processing_state`. That
   * snapshot is taken when every queued write is stored, no event waits to go out and none went out meanwhile, so
   * it never misses or repeats an event.
   */
  async subscribe(subscriber: ChatSubscriber, lastSeq?: number, { imageRefs = false } = {}): Promise<void> {
    // The snapshot (or the replay) is delivered whole before the slow-client rule applies to this subscriber.
    const snapshot = { snapshot: true };
    if (lastSeq !== undefined) {
      const missed = this.events.since(lastSeq);
      if (missed) {
        this.events.add(subscriber);
        for (const { event, json } of missed) subscriber.send(event, json, snapshot);
        return;
      }
    }
    for (let attempt = 0; ; attempt++) {
      await this.out.sent();
      const seqBefore = this.events.lastSeq;
      await this.record.idle();
      const state = await this.record.snapshot(this.deps.snapshot, { imageRefs });
      if ((seqBefore !== this.events.lastSeq || this.out.holding) && attempt < 20) continue;
      this.events.add(subscriber);
      const seq = this.events.lastSeq;
      const run = this.isProcessing ? this.current : undefined;
      const { chatId } = this;
      subscriber.send({ type: 'history', chat_id: chatId, seq, messages: state.messages, has_more: state.hasMore }, undefined, snapshot);
      subscriber.send(
        { type: 'tool_history', chat_id: chatId, seq, tool_uses: state.toolUses, has_more: state.toolUsesHasMore },
        undefined,
        snapshot,
      );
      subscriber.send({
        type: 'processing_state',
        chat_id: this.chatId,
        seq,
        is_processing: run !== undefined,
        query_id: run?.id ?? null,
        streaming_state: run ? { text: run.streamingText } : null,
      }, undefined, snapshot);
      for (const request of this.permissions.open()) {
        subscriber.send({ ...permissionRequestBody(request), chat_id: this.chatId, seq } as ServerEvent, undefined, snapshot);
      }
      return;
    }
  }

  /** A live tool_result: a long output is cut like in tool_history (the whole is stored and served by REST). */
  private toolResultBody(queryId: string, toolUseId: string, content: string, isError: boolean): QueryEventBody {
    const max = this.deps.snapshot.toolOutputMaxChars;
    const cut = truncateToolOutput(content, max, toolUsePath(this.chatId, toolUseId));
    return {
      type: 'tool_result',
      query_id: queryId,
      tool_id: toolUseId,
      content: cut.text,
      is_error: isError,
      ...(cut.truncated ? { truncated: true } : {}),
    };
  }

  unsubscribe(subscriber: ChatSubscriber): void {
    this.events.remove(subscriber);
  }

  /** A user's answer to a permission question; false when no such question is open. */
  answerPermission(requestId: string, allow: boolean, remember?: boolean): boolean {
    return this.permissions.answer(requestId, allow, remember);
  }

  /** Starts the agent process ahead of the first message, so the answer starts without the CLI's cold start. */
  prewarm(): Promise<void> {
    return this.op(async () => {
      if (this.closed || this.agent.live || this.deps.preflight()) return;
      await this.agent.ensure({ evict: false });
    });
  }

  /**
   * Starts a query for a user message; a running query is interrupted first (it ends `cancelled`). Resolves once
   * the message is stored and handed to the agent, not when the answer is complete.
   */
  send(content: string, images: ImageToStore[], clientId?: string): Promise<string> {
    return this.op(async () => {
      // The client sent this message again (it had seen no user_message after a reconnect) but the first copy
      // arrived: answered once. The first copy's user_message went to the chat's subscribers (and is in history).
      const earlier = clientId && (await this.deps.store.queries.byClientId(this.chatId, clientId));
      if (earlier) return earlier;
      await this.prepareQuery();
      // The SDK's budget counts from the process's start: with a budget, every message gets a fresh process
      // (resuming the session), so each message is held to its own limit. A process started with settings the
      // chat has since changed (tools, system prompt) is replaced the same way.
      if ((this.hasBudgets && this.agent.turnsServed > 0) || this.agent.outdated) await this.dropAgent();
      // Admission before anything is stored: a chat refused for capacity leaves no half-started query behind.
      if (!(await this.agent.ensure({ evict: true }))) throw new ChatError('agent_busy', 'no agent available');

      const stored = await this.record.userMessage(content, images, clientId);
      if (!stored) throw new ChatError('not_found', 'chat not found');
      const run = this.newRun(
        stored.queryId,
        content,
        images.map((img) => ({ mediaType: img.mediaType, base64: img.data.toString('base64') })),
      );
      this.current = run;
      this.lastActivity = this.now();
      this.emit({ type: 'user_message', query_id: run.id, content, message_id: stored.messageId, ...(clientId ? { client_id: clientId } : {}) });
      this.deps.hooks
        ?.userMessage(this.chatId, content)
        .catch((err: unknown) => this.deps.log.warn({ err }, 'failed to update the chat after a message'));
      // From here on the query exists for the user: a failure ends it (exactly once), it is not a frame error.
      await this.startTurn(run).catch((err: unknown) => this.failToStart(run, err));
      return run.id;
    });
  }

  /**
   * Answers the chat's last user message again (a running answer is stopped first). The previous answer is kept,
   * marked superseded; the model's context drops it: the agent is replaced by one resuming the session at the end of
   * the answer before that question (a new session if there is none), and the question is sent again. Resolves with
   * the new query's id once it started, like `send`.
   */
  retry(): Promise<string> {
    return this.op(async () => {
      await this.prepareQuery();
      const question = await this.record.lastQuestion();
      if (!question) throw new ChatError('nothing_to_retry', 'the chat has no message to answer again');
      // The running agent's context holds the answer being replaced: its successor starts from before it.
      await this.dropAgent();
      const context = await this.deps.store.queries.contextAt(this.chatId, question.position);
      await this.record.resumePoint(context?.sessionId ?? null, context?.tailUuid ?? null);
      // No agent session holds the conversation before the question: it was imported (or answered before answers
      // recorded their place in a session). The question then carries it, as an imported chat's first message does
      // (docs/export-format.md): it is due again, and rebuilt when the question is sent (importedContextFor).
      if (!context) {
        const before = await this.conversationBefore(question.id);
        if (before) await this.deps.store.chats.setImportContext(this.chatId, before);
      }
      if (!(await this.agent.ensure({ evict: true }))) throw new ChatError('agent_busy', 'no agent available');

      const { queryId, superseded } = await this.record.retryQuery(question);
      const run = this.newRun(
        queryId,
        question.content,
        question.images.map((img) => ({ mediaType: img.mediaType, base64: img.data.toString('base64') })),
      );
      this.current = run;
      this.lastActivity = this.now();
      this.emit({ type: 'answer_retried', query_id: run.id, message_id: question.id, superseded_message_ids: superseded });
      await this.startTurn(run).catch((err: unknown) => this.failToStart(run, err));
      return run.id;
    });
  }

  /** The chat's conversation before one of its messages, as the transcript an imported chat's model gets. */
  private async conversationBefore(messageId: string): Promise<string | undefined> {
    const { entries } = await this.deps.store.transfer.transcript(this.chatId, { imageData: false });
    const at = entries.findIndex((e) => e.type === 'message' && e.id === messageId);
    return at > 0 ? buildImportContext(entries.slice(0, at)) : undefined;
  }

  /**
   * The chat's settings changed (already stored). A live agent switches model and permission mode at once (from
   * its next model call or tool call, even mid-answer); allowed tools and the system prompt are fixed for a
   * process, so it is replaced before the chat's next message (resuming the session: the context is kept). A
   * failed switch is logged and handled the same way.
   */
  settingsChanged(before: ChatSettings, after: ChatSettings): Promise<void> {
    return this.op(async () => {
      if (!this.agent.live) return;
      try {
        if (before.model !== after.model) await this.agent.setModel(after.model);
        if (before.permission_mode !== after.permission_mode) await this.agent.setPermissionMode(after.permission_mode);
      } catch (err) {
        this.deps.log.warn({ err }, 'could not apply new settings to the running agent: it is replaced before the next message');
        this.agent.outdated = true;
      }
      const fixedAtStart = (s: ChatSettings) => JSON.stringify([s.allowed_tools ?? null, s.system_prompt_append ?? null]);
      if (fixedAtStart(before) !== fixedAtStart(after)) this.agent.outdated = true;
    });
  }

  /** Stops the running query, if any: it ends `cancelled`, its streamed text is stored as interrupted. */
  stop(): Promise<boolean> {
    return this.op(async () => {
      const wasRunning = this.isProcessing;
      await this.cancelRunning();
      return wasRunning;
    });
  }

  /** Forgets the conversation: stored history and the model's context (the next message starts fresh). */
  clear(): Promise<void> {
    return this.op(async () => {
      await this.cancelRunning();
      await this.dropAgent();
      // The chat's remembered permission rules stay: they belong to the chat and its workspace (which a clear keeps
      // too), not to the conversation; the user lists and revokes them over REST (docs/protocol.md).
      await this.record.clearHistory();
      // A cleared imported chat starts from nothing: its transcript no longer rides on the next message.
      await this.deps.store.chats.clearImportContext(this.chatId);
      this.emit({ type: 'history_cleared' });
    });
  }

  /**
   * Ends the chat's agent process; a running query ends `cancelled` with its partial text stored. `fast` (shutdown,
   * delete) skips the polite interrupt and ends the process at once. Resolves when the process has exited.
   */
  closeAgent({ fast = false } = {}): Promise<void> {
    return this.op(async () => {
      await this.cancelRunning({ fast });
      await this.dropAgent();
      await this.record.idle();
      await this.out.sent();
    });
  }

  /**
   * Closes the agent only if it is still idle when this operation's turn comes (eviction and the idle sweep must
   * never cut short a message that arrived meanwhile). True if it was closed.
   */
  closeIdleAgent(): Promise<boolean> {
    return this.op(async () => {
      if (!this.hasLiveAgent || this.isBusy || this.pendingOps > 1) return false;
      await this.dropAgent();
      await this.record.idle();
      return true;
    });
  }

  /** Closes the agent and the session itself: later operations answer not_found. */
  async close(options: { fast?: boolean } = {}): Promise<void> {
    await this.closeAgent(options);
    this.closed = true;
  }

  // ------------------------------------------------------------------------------------------ internals

  /** Operations run one at a time; `pendingOps` counts the running one and those queued behind it. */
  private async op<T>(task: () => Promise<T>): Promise<T> {
    this.pendingOps++;
    try {
      return await this.ops.run(task);
    } finally {
      this.pendingOps--;
    }
  }

  private emit(body: Body): void {
    this.out.emit(body);
  }

  /** A query of this chat: its events go out through the chat's stream, its rows through the chat's recorder. */
  private newRun(id: string, content: string, images: QueryRun['images']): QueryRun {
    return new QueryRun(id, content, images, {
      record: this.record,
      emit: (body) => this.emit(body),
      end: (body) => {
        // Open questions belong to this query: they end (cancelled) before the query's own end.
        this.permissions.cancelAll();
        this.lastActivity = this.now();
        // A client that reads the chat over REST when the query ended gets its stored answer (and status).
        this.out.emitAfter(this.record.idle(), body);
      },
      toolResultBody: (queryId, toolUseId, output, isError) => this.toolResultBody(queryId, toolUseId, output, isError),
      now: this.now,
      checkpointMs: this.deps.checkpointMs,
    });
  }

  private async startTurn(run: QueryRun): Promise<void> {
    // An imported chat's first message carries the imported transcript to the model (docs/export-format.md); the
    // agent's session holds it from then on. The stored message stays what the user wrote.
    const imported = await importedContextFor(this.deps.store, this.chatId, run.id);
    if (!(await this.agent.send(imported ? imported + run.content : run.content, run.images))) {
      throw new ChatError('agent_busy', 'no agent available');
    }
    if (imported !== undefined) await this.deps.store.chats.clearImportContext(this.chatId);
    run.expectQuietUntil(this.now());
    this.watchModel(run);
  }

  /**
   * The stall watchdog of a turn. The CLI's own API timeout covers a request that gets no answer; a stream that
   * stops mid-answer (the connection held open, nothing sent) it never ends. While the turn waits on the model (it
   * started, no tool is running: a tool or a permission question may take as long as it takes), nothing from the
   * agent for `modelSilenceMs` ends the query with an error and replaces the process.
   */
  private watchModel(run: QueryRun): void {
    const limit = this.deps.modelSilenceMs;
    const check = () => {
      if (this.current !== run || !run.turnOpen || run.terminated) return;
      const last = Math.max(run.quietUntil, this.agent.lastActivityAt);
      const quietMs = this.now() - last;
      if (!run.started || run.toolsRunning > 0 || quietMs < limit) {
        run.checkSilenceIn(Math.max(250, limit - Math.max(0, quietMs)), check);
        return;
      }
      void this.op(async () => {
        if (this.current !== run || !run.turnOpen || run.terminated) return;
        const error = `The model stopped answering (nothing received for ${Math.round(quietMs / 1000)} s); the answer was ended. Try again.`;
        this.deps.log.warn({ query_id: run.id, quiet_ms: quietMs }, 'the model stream stalled: ending the query and replacing the agent process');
        run.fail('agent_error', error, { cutReply: true, asMessage: true });
        await this.dropAgent();
      }).catch((err: unknown) => this.deps.log.error({ err, query_id: run.id }, 'failed to end a stalled query'));
    };
    run.checkSilenceIn(limit, check);
  }

  private sessionRestarted(sessionId: string, why: string): void {
    this.deps.log.warn({ sdk_session_id: sessionId, why }, 'cannot resume the agent session: starting a new one');
    void this.record.sdkSessionId(null);
    this.emit({
      type: 'notice',
      code: 'session_restarted',
      message: `The agent could not continue its previous session (${why}); it starts a new one and does not remember earlier messages.`,
    });
  }

  /** Ends the agent process and waits for it; a turn it was running is over. The next message starts a new one. */
  private async dropAgent(): Promise<void> {
    const dropped = this.agent.drop();
    if (this.current?.turnOpen) this.current.endTurn();
    await dropped;
  }

  /** The agent process ended by itself (crashed, could not resume its session, or could not start at all). */
  private onAgentEnded(error: Error | undefined, resumedFrom: string | undefined, atStart: boolean): void {
    const run = this.current;
    if (!run?.turnOpen) return;
    if (!run.started && !run.terminated) {
      // A resumed session that dies before its first turn starts: the transcript is unusable. Start afresh once.
      if (resumedFrom && !run.restartedSession) {
        run.markSessionRestarted();
        this.sessionRestarted(resumedFrom, error?.message ?? 'the agent exited');
        this.retryStart(run, 0, async () => {
          await this.record.sdkSessionId(null);
        });
        return;
      }
      // The CLI died before it started: tried again, within this message, as soon as the crash-loop guard allows.
      const waitMs = this.deps.agentStarts.waitMs();
      if (atStart && run.startAttempts < START_ATTEMPTS_PER_MESSAGE && waitMs <= MAX_START_WAIT_IN_MESSAGE_MS) {
        this.retryStart(run, waitMs);
        return;
      }
      if (atStart) return this.failToStart(run, error ?? new Error('the agent process exited before it started'));
    }
    run.fail('agent_error', `The agent process ended unexpectedly${error ? `: ${error.message}` : ''}`);
    run.endTurn();
  }

  /**
   * Starts the query's turn on a new agent process after `delayMs` (under `ops`, unless the query was stopped or
   * replaced meanwhile). A failure to start ends the query with an error.
   */
  private retryStart(run: QueryRun, delayMs: number, before?: () => Promise<void>): void {
    run.countStartAttempt();
    const retry = () =>
      this.op(async () => {
        if (this.current !== run || run.terminated || !run.turnOpen) return;
        await before?.();
        await this.startTurn(run);
      }).catch((err: unknown) => this.failToStart(run, err));
    const whenAllowed = (ms: number) => {
      if (ms <= 0) return void retry();
      setTimeout(() => {
        // A timer may fire a moment before the monotonic clock reaches the end of the wait: wait out that moment
        // (a wait that grew meanwhile, another start having failed, is the start's own refusal).
        const left = this.deps.agentStarts.waitMs();
        whenAllowed(left > 0 && left < 50 ? left + 1 : 0);
      }, ms).unref();
    };
    whenAllowed(delayMs);
  }

  /** The query could not reach an agent: it ends with an error saying why (and when the service tries again). */
  private failToStart(run: QueryRun, err: unknown): void {
    if (!run.turnOpen) return;
    const why = err instanceof Error ? err.message : String(err);
    const waitMs = this.deps.agentStarts.waitMs();
    const error =
      err instanceof ChatError
        ? why
        : `The agent could not start: ${why}` +
          (waitMs > 0 ? `. The service tries again in ${Math.ceil(waitMs / 1000)} s; send the message again then.` : '');
    this.deps.log.warn({ query_id: run.id, why }, 'a query could not reach an agent');
    run.fail(err instanceof ChatError ? err.code : 'agent_unavailable', error);
    run.endTurn();
  }

  private onAgentEvent(event: AgentEvent): void {
    const run = this.current;
    this.lastActivity = this.now();
    if (event.kind === 'init') {
      run?.markStarted();
      this.saveSessionId(event.sessionId);
      return;
    }
    if (event.kind === 'api_retry') {
      this.deps.log.warn({ ...event, query_id: run?.id }, 'model API call failed: the agent retries');
      // Nothing is expected from the model while the CLI waits to retry (a retry-after can be long).
      run?.expectQuietUntil(this.now() + event.delayMs);
      return;
    }
    if (!run) return;
    if (event.kind === 'turn_end') return this.onTurnEnd(run, event);
    run.onAnswerEvent(event);
  }

  private onTurnEnd(run: QueryRun, end: Extract<AgentEvent, { kind: 'turn_end' }>): void {
    const cost = this.agent.turnCost(end.totalCostUsd);
    this.saveSessionId(end.sessionId);
    if (end.tailUuid) this.record.queryTail(run.id, end.sessionId, end.tailUuid);
    this.record.usage(run.id, end.usage, cost);
    const spent = { costUsd: cost, durationMs: end.durationMs };
    if (!run.terminated && end.subtype === 'error_max_budget_usd') {
      // The SDK stopped the answer between two model calls: what streamed so far is kept (interrupted).
      run.fail('budget_exceeded', this.budgetMessage(), { cutReply: true, asMessage: true, ...spent });
    } else if (run.terminated) {
      // A stopped query's turn finished draining: record what it cost, its status stays.
      run.drained(cost, end.durationMs);
    } else if (run.apiError !== undefined || (!end.success && end.subtype === 'error_during_execution')) {
      // An API error already cut the reply when it came (onAnswerEvent): only the message is stored here.
      run.fail('agent_error', run.apiError ?? (end.errors.join('; ') || 'The agent failed to answer'), { asMessage: true, ...spent });
    } else {
      run.complete({ success: end.success, ...spent, error: end.success ? null : end.errors.join('; ') || end.subtype });
      if (end.success) this.deps.hooks?.answered(this.chatId, run.content, run.answerText);
    }
    run.endTurn();
  }

  /**
   * Cancels the running query (under `ops`): it ends `cancelled` at once, then the agent is interrupted and its turn
   * drained. If the interrupt does not finish in time the process is replaced; the session resumes on next use.
   */
  private async cancelRunning({ fast = false } = {}): Promise<void> {
    const run = this.current;
    if (!run?.turnOpen) return;
    run.cancel();
    if (!this.agent.live || fast) return void (await this.dropAgent());
    const timeout = this.deps.interruptTimeoutMs;
    try {
      await withTimeout(this.agent.interrupt(), timeout, 'interrupt');
      await withTimeout(run.turnEnded, timeout, 'draining the interrupted turn');
    } catch (err) {
      this.deps.log.warn({ err, query_id: run.id }, 'interrupt did not complete: replacing the agent process');
      await this.dropAgent();
    }
  }

  /**
   * What a new query (a message or a retry) needs first, under `ops`: the chat open, the agent able to run, the
   * running query ended (`cancelled`), the owner's day budget not spent.
   */
  private async prepareQuery(): Promise<void> {
    if (this.closed) throw new ChatError('not_found', 'chat is closed');
    const unavailable = this.deps.preflight();
    if (unavailable) throw new ChatError('agent_unavailable', unavailable);
    await this.cancelRunning();
    await this.checkDailyBudget();
  }

  private get hasBudgets(): boolean {
    const b = this.deps.budgets;
    return b?.perMessageUsd !== undefined || b?.perUserPerDayUsd !== undefined;
  }

  /** What the chat's owner has left today (UTC), if MAX_COST_PER_USER_PER_DAY_USD is set. */
  private async dailyRemaining(): Promise<number | undefined> {
    const limit = this.deps.budgets?.perUserPerDayUsd;
    if (limit === undefined) return undefined;
    const owner = await this.deps.store.chats.getWithOwner(this.chatId);
    const dayStart = new Date().toISOString().slice(0, 10) + 'T00:00:00.000Z';
    return limit - (await this.deps.store.usage.spentSince(owner?.ownerId ?? null, dayStart));
  }

  private async checkDailyBudget(): Promise<void> {
    const remaining = await this.dailyRemaining();
    if (remaining !== undefined && remaining <= 0) {
      throw new ChatError(
        'budget_exceeded',
        `daily budget reached: at most ${this.deps.budgets!.perUserPerDayUsd} USD per user per day (MAX_COST_PER_USER_PER_DAY_USD); try again tomorrow (UTC)`,
      );
    }
  }

  /** The SDK's maxBudgetUsd for a new process: the message's limit, or what is left of the day if that is less. */
  private async processBudget(): Promise<number | undefined> {
    const perMessage = this.deps.budgets?.perMessageUsd;
    const daily = await this.dailyRemaining();
    const limits = [perMessage, daily].filter((v): v is number => v !== undefined);
    return limits.length === 0 ? undefined : Math.max(MIN_PROCESS_BUDGET_USD, Math.min(...limits));
  }

  private budgetMessage(): string {
    const { perMessageUsd, perUserPerDayUsd } = this.deps.budgets ?? {};
    const parts = [
      ...(perMessageUsd !== undefined ? [`${perMessageUsd} USD per message (MAX_COST_PER_MESSAGE_USD)`] : []),
      ...(perUserPerDayUsd !== undefined ? [`${perUserPerDayUsd} USD per user per day (MAX_COST_PER_USER_PER_DAY_USD)`] : []),
    ];
    return `The answer was stopped: it reached the spending limit (${parts.join(', or what was left of ')}).`;
  }

  private saveSessionId(sessionId: string): void {
    void this.record.sdkSessionId(sessionId);
  }

}

/** The stored settings (wire names) as the agent connection takes them. */
function agentSettings(settings: ChatSettings): ChatAgentSettings {
  return {
    ...(settings.model !== undefined ? { model: settings.model } : {}),
    ...(settings.permission_mode !== undefined ? { permissionMode: settings.permission_mode } : {}),
    ...(settings.system_prompt_append !== undefined ? { systemPromptAppend: settings.system_prompt_append } : {}),
    ...(settings.allowed_tools !== undefined ? { allowedTools: settings.allowed_tools } : {}),
  };
}

function permissionRequestBody(request: PermissionRequest) {
  return {
    type: 'permission_request' as const,
    query_id: request.queryId,
    request_id: request.requestId,
    tool_name: request.toolName,
    tool_input: request.toolInput,
    tool_use_id: request.toolUseId,
    expires_at: request.expiresAt,
    remember_rule: request.rememberRule,
  };
}
