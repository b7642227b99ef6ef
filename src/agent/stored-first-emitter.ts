import { withTimeout } from '../lib/timeout.js';

/**
 * How long a query's terminal event waits for the rows written before it: with a healthy store that is one write
 * (well under a millisecond on SQLite, a few on Postgres); a store that is failing (its writes retried for up to
 * STORAGE_RETRY_WINDOW_MS) delays the end of the query no longer than this.
 */
export const TERMINAL_WAIT_MS = 1_000;

/**
 * Sends a chat's events in the order they happened, where some (a query's terminal event) go out only once what was
 * written before them is stored: a client that reads the chat over REST right after `result` gets the whole answer,
 * also when the store is a database over the network. Events after a held one wait behind it, so the order (and the
 * numbering, which happens when an event goes out) never changes. Without a held event, `emit` sends at once.
 */
export class StoredFirstEmitter<T> {
  private chain: Promise<void> = Promise.resolve();
  private waiting = 0;

  constructor(
    private readonly send: (item: T) => void,
    private readonly onError: (err: unknown) => void,
    private readonly waitMs = TERMINAL_WAIT_MS,
  ) {}

  /** Some event is held (or queued behind one). */
  get holding(): boolean {
    return this.waiting > 0;
  }

  /** Resolves once every event emitted so far went out. */
  sent(): Promise<void> {
    return this.chain;
  }

  emit(item: T): void {
    if (this.waiting === 0) return this.sendNow(item);
    this.enqueue(Promise.resolve(), item);
  }

  /** Sends `item` once `stored` settled (at most waitMs from now), after everything emitted before. */
  emitAfter(stored: Promise<unknown>, item: T): void {
    this.enqueue(
      withTimeout(stored, this.waitMs, 'storing before a terminal event').catch(() => undefined),
      item,
    );
  }

  private enqueue(ready: Promise<unknown>, item: T): void {
    this.waiting++;
    this.chain = Promise.all([this.chain, ready]).then(() => {
      this.waiting--;
      this.sendNow(item);
    });
  }

  private sendNow(item: T): void {
    try {
      this.send(item);
    } catch (err) {
      this.onError(err);
    }
  }
}
