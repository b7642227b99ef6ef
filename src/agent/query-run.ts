import type { AgentImage } from './agent-events.js';

/**
 * One user message and the agent's work on it. Two flags keep a query's life honest:
 * - `terminated`: its terminal event (result / cancelled / error) went out; nothing of it reaches clients after.
 * - `turnOpen`: the agent has not finished the SDK turn yet (after a stop it is still draining); the next message
 *   is only sent once this is false, so SDK turns and queries map one to one and two answers never mix.
 */
export class QueryRun {
  terminated = false;
  turnOpen = true;
  /** A text block is streaming: stream_start went out, stream_end not yet. */
  streamOpen = false;
  /** Text of the open block so far. */
  streamText = '';
  /** Every text block of the answer so far (what the user saw). */
  answerText = '';
  /** The stored row of the open block (written as `streaming`, then checkpointed). */
  streamRow: Promise<string | undefined> = Promise.resolve(undefined);
  checkpointedAt = 0;
  /**
   * Stored text blocks of the model's current reply (since the last tool event). The CLI closes a block normally
   * before reporting that the reply failed mid-way, so these are marked interrupted when an API error follows.
   */
  replyBlocks: Promise<string | undefined>[] = [];
  /** Set when the model API failed; the turn's end then becomes an `error`. */
  apiError: string | undefined;
  /** Set once the agent process confirmed the turn started (init), to tell a failed resume from a failed turn. */
  started = false;
  /** Agent processes started for this query (more than one when the CLI died before it started). */
  startAttempts = 1;
  /** The resumed session could not be continued and a new one was started for this query. */
  restartedSession = false;
  /** Tools started and not finished yet: the agent is not waiting on the model meanwhile. */
  toolsRunning = 0;
  /** The model is not expected to send anything before this time (lib/clock.ts monotonicNow()): a turn start, a retry's wait. */
  quietUntil = 0;
  /** Checks that the model keeps sending while the turn waits on it (see ChatSession.watchModel). */
  silenceTimer: NodeJS.Timeout | undefined;
  private resolveTurn!: () => void;
  readonly turnEnded = new Promise<void>((resolve) => {
    this.resolveTurn = resolve;
  });

  constructor(
    readonly id: string,
    readonly content: string,
    readonly images: AgentImage[],
  ) {}

  endTurn(): void {
    clearTimeout(this.silenceTimer);
    this.turnOpen = false;
    this.resolveTurn();
  }
}
