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

export class TimeoutError extends Error {}

/** Resolves like `promise`, or rejects with TimeoutError after `ms`. The timer never keeps the process alive. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`${what} timed out after ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

