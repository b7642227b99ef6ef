/**
 * Runs async tasks one at a time, in the order they were queued. Used as the chat's operation lock (send, stop,
 * clear and close never interleave, as the seed's design requires) and as its write queue (stored rows keep
 * the order of the events that produced them).
 */
export class Serial {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(task);
    // The chain continues whether the task failed or not; the caller sees the failure through `result`.
    this.tail = result.catch(() => undefined);
    return result;
  }

  /** Resolves once every task queued so far has finished. */
  idle(): Promise<void> {
    return this.tail.then(() => undefined);
  }
}
