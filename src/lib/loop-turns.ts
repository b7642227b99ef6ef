/**
 * Hands out turns of the event loop, one per iteration, in the order they were asked for.
 *
 * Why: on SQLite every statement completes synchronously under its promise, so a burst of client frames (fifty chats
 * sending at once) would otherwise run back to back in one stretch of the loop: the frames arrive in one poll phase,
 * and each frame's whole handling (checks, the stored message, the agent's stdin) runs in the microtasks after its
 * read. The agents' output, the deltas of answers already under way, is read only in the next poll phase, so every
 * delta waited for the whole burst. Taking a turn first puts one poll phase between two frames: a delta then waits
 * for at most one frame's work, not all of them. With nothing queued a turn costs one `setImmediate`.
 *
 * The service has two: one for client frames (and the chat-list updates they cause), one for the chats' background
 * writes (an answer's rows, written after the output that called for them). Each hands out one turn per iteration,
 * so neither kind waits behind a backlog of the other.
 */
export class LoopTurns {
  private readonly waiting: (() => void)[] = [];
  private scheduled = false;

  /** Resolves on a later iteration of the event loop, after every turn asked for before it. */
  take(): Promise<void> {
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.schedule();
    });
  }

  /** Turns asked for and not handed out yet. */
  get queued(): number {
    return this.waiting.length;
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.handOut());
  }

  private handOut(): void {
    this.scheduled = false;
    // One per iteration: a setImmediate queued from inside the check phase runs on the next iteration, after its
    // poll phase. The taker's continuation (its microtasks) runs right after this callback.
    this.waiting.shift()?.();
    if (this.waiting.length > 0) this.schedule();
  }
}
