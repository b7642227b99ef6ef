import type { ErrorCode } from '../protocol/errors.js';
import type { ChatEventBody } from '../protocol/ws.js';
import type { AgentEvent, AgentImage } from './agent-events.js';
import type { ChatRecorder } from './chat-recorder.js';

/** What a query tells the chat's clients before its end (the session numbers and sends it): the protocol's shapes. */
export type QueryEventBody = Extract<
  ChatEventBody,
  { type: 'stream_start' | 'text_delta' | 'stream_end' | 'assistant_message' | 'tool_use' | 'tool_result' }
>;

/** The three ways a query ends. */
export type TerminalBody =
  | { type: 'result'; success: boolean; cost: number; duration: number }
  | { type: 'cancelled' }
  | { type: 'error'; error: string; code: ErrorCode };

export interface QueryRunDeps {
  /** Writes the query's rows, in event order. */
  record: ChatRecorder;
  emit(body: QueryEventBody): void;
  /** Sends the terminal event once the rows written before it are stored, after the session's own bookkeeping. */
  end(body: TerminalBody & { query_id: string }): void;
  /** A live tool result as clients get it (a long output cut, the whole kept for REST). */
  toolResultBody(queryId: string, toolUseId: string, content: string, isError: boolean): QueryEventBody;
  /** The clock for checkpoints (lib/clock.ts monotonicNow() unless a test sets it). */
  now(): number;
  /** How often the text of a streaming block is checkpointed to the store (what a crash can lose at most). */
  checkpointMs: number;
}

/**
 * One user message and the agent's work on it: it turns the agent's events into the chat's client events and
 * stored rows, and ends exactly once. ChatSession keeps the state machine around it (which query is current, the
 * agent process, stop and retries); this object keeps what the answer is made of.
 *
 * Two flags keep a query's life honest:
 * - `terminated`: its terminal event (result / cancelled / error) went out; nothing of it reaches clients after.
 * - `turnOpen`: the agent has not finished the SDK turn yet (after a stop it is still draining); the next message
 *   is only sent once this is false, so SDK turns and queries map one to one and two answers never mix.
 */
export class QueryRun {
  private ended = false;
  private turnIsOpen = true;
  /** A text block is streaming: stream_start went out, stream_end not yet. */
  private streamOpen = false;
  /** Text of the open block so far. */
  private streamText = '';
  /** Every text block of the answer so far (what the user saw). */
  private answer = '';
  /** The stored row of the open block (written as `streaming`, then checkpointed). */
  private streamRow: Promise<string | undefined> = Promise.resolve(undefined);
  private checkpointedAt = 0;
  /**
   * Stored text blocks of the model's current reply (since the last tool event). The CLI closes a block normally
   * before reporting that the reply failed mid-way, so these are marked interrupted when an API error follows.
   */
  private replyBlocks: Promise<string | undefined>[] = [];
  /** Set when the model API failed; the turn's end then becomes an `error`. */
  private apiFailure: string | undefined;
  private hasStarted = false;
  private attempts = 1;
  private sessionWasRestarted = false;
  private tools = 0;
  private quietTill = 0;
  private silenceTimer: NodeJS.Timeout | undefined;
  private resolveTurn!: () => void;
  readonly turnEnded = new Promise<void>((resolve) => {
    this.resolveTurn = resolve;
  });

  constructor(
    readonly id: string,
    readonly content: string,
    readonly images: AgentImage[],
    private readonly deps: QueryRunDeps,
  ) {}

  // ------------------------------------------------------------------------------------------ its state

  get terminated(): boolean {
    return this.ended;
  }

  get turnOpen(): boolean {
    return this.turnIsOpen;
  }

  /** The agent process confirmed the turn started (init): tells a failed resume from a failed turn. */
  get started(): boolean {
    return this.hasStarted;
  }

  /** Agent processes started for this query (more than one when the CLI died before it started). */
  get startAttempts(): number {
    return this.attempts;
  }

  /** The resumed session could not be continued and a new one was started for this query. */
  get restartedSession(): boolean {
    return this.sessionWasRestarted;
  }

  /** Tools started and not finished yet: the agent is not waiting on the model meanwhile. */
  get toolsRunning(): number {
    return this.tools;
  }

  /** The model is not expected to send anything before this time: a turn start, a retry's wait. */
  get quietUntil(): number {
    return this.quietTill;
  }

  /** The model's API failed in this turn (after the CLI's retries); the turn's end then becomes an `error`. */
  get apiError(): string | undefined {
    return this.apiFailure;
  }

  /** What a subscriber joining now sees of the block being streamed. */
  get streamingText(): string {
    return this.streamOpen ? this.streamText : '';
  }

  /** Every text block of the answer so far. */
  get answerText(): string {
    return this.answer;
  }

  markStarted(): void {
    this.hasStarted = true;
  }

  countStartAttempt(): void {
    this.attempts++;
  }

  markSessionRestarted(): void {
    this.sessionWasRestarted = true;
  }

  expectQuietUntil(at: number): void {
    this.quietTill = Math.max(this.quietTill, at);
  }

  /** The stall watchdog's next check (ChatSession.watchModel); cleared when the turn ends. */
  checkSilenceIn(ms: number, check: () => void): void {
    clearTimeout(this.silenceTimer);
    this.silenceTimer = setTimeout(check, ms);
    this.silenceTimer.unref();
  }

  endTurn(): void {
    clearTimeout(this.silenceTimer);
    this.turnIsOpen = false;
    this.resolveTurn();
  }

  // ------------------------------------------------------------------------------------------ the answer

  /** One event of the answer: sent to clients and stored. Ignored once the query ended (a stopped turn drains). */
  onAnswerEvent(event: Exclude<AgentEvent, { kind: 'init' | 'api_retry' | 'turn_end' }>): void {
    if (this.ended) return;
    const { record, emit } = this.deps;
    switch (event.kind) {
      case 'text_start':
        this.openStream();
        return;
      case 'text_delta':
        if (!this.streamOpen) this.openStream();
        this.streamText += event.text;
        emit({ type: 'text_delta', query_id: this.id, delta: event.text });
        this.checkpoint();
        return;
      case 'text_end':
        this.closeStream('complete');
        return;
      case 'text_whole':
        this.closeStream('complete');
        this.answer += event.text;
        record.assistantText(this.id, event.text);
        emit({ type: 'assistant_message', query_id: this.id, content: event.text });
        return;
      case 'tool_use':
        this.tools++;
        this.closeStream('complete');
        this.replyBlocks = [];
        record.toolCall(this.id, event.toolUseId, event.toolName, event.input);
        emit({ type: 'tool_use', query_id: this.id, tool_id: event.toolUseId, tool_name: event.toolName, tool_input: event.input });
        return;
      case 'tool_result':
        this.tools = Math.max(0, this.tools - 1);
        this.replyBlocks = [];
        record.toolResult(event.toolUseId, event.content, event.isError);
        emit(this.deps.toolResultBody(this.id, event.toolUseId, event.content, event.isError));
        return;
      case 'api_error':
        this.interruptReply();
        this.apiFailure = event.message;
        return;
    }
  }

  // ------------------------------------------------------------------------------------------ its end

  /** The answer completed: its last block is stored complete, then `result`. */
  complete({ success, costUsd, durationMs, error }: { success: boolean; costUsd: number; durationMs: number; error: string | null }): void {
    this.closeStream('complete');
    this.deps.record.queryEnded(this.id, { status: success ? 'complete' : 'error', costUsd, durationMs, error });
    this.terminate({ type: 'result', success, cost: costUsd, duration: durationMs });
  }

  /** Stopped by the user (or the chat closing): what streamed is kept as interrupted, then `cancelled`. */
  cancel(): void {
    if (this.ended) return;
    this.closeStream('interrupted');
    this.deps.record.queryEnded(this.id, { status: 'cancelled' });
    this.terminate({ type: 'cancelled' });
  }

  /**
   * Ends with an error, what streamed kept as interrupted. `cutReply`: the model's current reply was cut off, so the
   * blocks it already closed become interrupted too. `asMessage`: the error is also stored as the answer's last
   * message (the model answered, then failed); without it the error is the query's only (the agent never answered,
   * or its process ended).
   */
  fail(
    code: ErrorCode,
    error: string,
    { cutReply = false, asMessage = false, costUsd, durationMs }: { cutReply?: boolean; asMessage?: boolean; costUsd?: number; durationMs?: number } = {},
  ): void {
    if (this.ended) return;
    if (cutReply) this.interruptReply();
    else this.closeStream('interrupted');
    if (asMessage) this.deps.record.assistantText(this.id, error, 'error');
    this.deps.record.queryEnded(this.id, {
      status: 'error',
      error,
      ...(costUsd !== undefined ? { costUsd } : {}),
      ...(durationMs !== undefined ? { durationMs } : {}),
    });
    this.terminate({ type: 'error', code, error });
  }

  /** A stopped query's turn finished draining: what it cost is recorded, its status stays. */
  drained(costUsd: number, durationMs: number): void {
    this.deps.record.queryCost(this.id, costUsd, durationMs);
  }

  // ------------------------------------------------------------------------------------------ internals

  private terminate(body: TerminalBody): void {
    if (this.ended) return;
    this.ended = true;
    this.deps.end({ ...body, query_id: this.id });
  }

  /** A text block starts: announced to clients and stored at once as `streaming`, so a crash cannot lose it. */
  private openStream(): void {
    this.closeStream('complete');
    this.streamOpen = true;
    this.streamText = '';
    this.checkpointedAt = this.deps.now();
    this.streamRow = this.deps.record.openBlock(this.id);
    this.replyBlocks.push(this.streamRow);
    this.deps.emit({ type: 'stream_start', query_id: this.id });
  }

  private checkpoint(): void {
    const now = this.deps.now();
    if (now - this.checkpointedAt < this.deps.checkpointMs) return;
    this.checkpointedAt = now;
    this.deps.record.checkpointBlock(this.streamRow, this.streamText);
  }

  /** Ends the open text block and stores its final text (interrupted text too: never lost). */
  private closeStream(status: 'complete' | 'interrupted'): void {
    if (!this.streamOpen) return;
    this.streamOpen = false;
    this.answer += this.answer && this.streamText ? `\n\n${this.streamText}` : this.streamText;
    this.deps.record.closeBlock(this.streamRow, this.streamText, status);
    this.streamText = '';
    this.deps.emit({ type: 'stream_end', query_id: this.id });
  }

  /** The model's current reply was cut off: its open block and the blocks it already closed become interrupted. */
  private interruptReply(): void {
    this.closeStream('interrupted');
    this.deps.record.markInterrupted(this.replyBlocks);
    this.replyBlocks = [];
  }
}
