import { monotonicNow } from '../lib/clock.js';
/** How soon agent starts may be tried again after the agent CLI failed to start. */
export interface StartBackoffSettings {
  /** The wait after the first failure; it doubles with every further failure in a row. */
  firstDelayMs: number;
  /** The longest wait between two attempts. */
  maxDelayMs: number;
}

/**
 * The service's crash-loop guard for agent starts. An agent CLI that dies before it started (a bad binary path, a
 * binary it may not execute, a broken installation) is a fault of the service's setup, not of one chat: after
 * each such failure no agent is started for a while, the wait doubling with every failure in a row up to
 * `maxDelayMs`, so a broken CLI costs one start (and a few log lines) per interval instead of spinning the CPU and
 * flooding the logs. Any successful start ends the streak.
 */
export class StartBackoff {
  private failures = 0;
  private retryAt = 0;
  private lastReason = '';

  constructor(
    private readonly settings: StartBackoffSettings,
    private readonly now: () => number = monotonicNow,
  ) {}

  /** Failed starts in a row. */
  get failuresInARow(): number {
    return this.failures;
  }

  /** Why the last start failed. */
  get reason(): string {
    return this.lastReason;
  }

  /** How long until a start may be tried (0: now). */
  waitMs(): number {
    return Math.max(0, this.retryAt - this.now());
  }

  /** Records a failed start; returns the wait before the next attempt. */
  failed(reason: string): number {
    this.failures++;
    this.lastReason = reason;
    const delay = Math.min(this.settings.maxDelayMs, this.settings.firstDelayMs * 2 ** Math.min(this.failures - 1, 30));
    this.retryAt = this.now() + delay;
    return delay;
  }

  /** An agent started: the streak (if any) is over. True if there was one. */
  succeeded(): boolean {
    const hadFailures = this.failures > 0;
    this.failures = 0;
    this.retryAt = 0;
    this.lastReason = '';
    return hadFailures;
  }
}
