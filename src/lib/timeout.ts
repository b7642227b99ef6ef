/** What withTimeout rejects with when the time is up. */
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

/**
 * Calls `report(ms)` if `promise` is still pending after `ms` (once), and passes the promise through: a step that
 * should take moments and hangs shows in the log with what it was, instead of as silence.
 */
export function reportIfSlow<T>(promise: Promise<T>, ms: number, report: (ms: number) => void): Promise<T> {
  const timer = setTimeout(() => report(ms), ms);
  timer.unref();
  return promise.finally(() => clearTimeout(timer));
}
