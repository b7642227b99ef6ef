import type { FastifyBaseLogger } from 'fastify';
import type { SettingsRepository } from '../store/settings.repository.js';

/** The settings key holding the highest event `seq` a run of the service has issued (at most SAVE_EVERY_MS old). */
export const SETTING_EVENT_SEQ_HIGH = 'event_seq_high';
const SAVE_EVERY_MS = 5_000;
/**
 * Added to the stored mark at start-up: covers every event the previous run may have numbered after its last save
 * (far more than a service emits in SAVE_EVERY_MS) when it ended without saving (a crash, kill -9).
 */
const RESTART_MARGIN = 1_000_000_000;

/**
 * Where every chat's event numbering starts. A client that reconnects sends the last `seq` it saw; the service
 * replays what followed only when that seq belongs to the chat's current stream, and sends the full state
 * otherwise. That is only sound if a chat's seqs never repeat: not when its stream is rebuilt (its session evicted
 * and opened again), not after a restart, and not when the wall clock steps back in between. So a new stream
 * starts above all three of: the wall clock in microseconds (events are far fewer than one per µs), every seq
 * this process has issued, and the mark the previous run stored (plus a margin for what it issued unsaved).
 */
export class SeqOrigin {
  private high: number;

  constructor(
    /** The stored mark of the previous run (0: none). */
    previousHigh = 0,
    private readonly wall: () => number = Date.now,
  ) {
    this.high = previousHigh > 0 ? previousHigh + RESTART_MARGIN : 0;
  }

  /** The seq a new chat stream starts from (its first event gets the next one). */
  start(): number {
    this.high = Math.max(this.wall() * 1000, this.high + 1);
    return this.high;
  }

  /** Told of every seq issued, so streams started later begin above it. */
  issued(seq: number): void {
    if (seq > this.high) this.high = seq;
  }

  /** The highest seq issued or started from so far. */
  get highWater(): number {
    return this.high;
  }
}

/**
 * Reads the previous run's mark and keeps saving this run's: every SAVE_EVERY_MS when it moved, and once more when
 * stopped (clean shutdown). A failed save is logged and tried again at the next interval.
 */
export async function openSeqOrigin(
  settings: SettingsRepository,
  log: FastifyBaseLogger,
): Promise<{ origin: SeqOrigin; stop(): Promise<void> }> {
  const stored = Number(await settings.get(SETTING_EVENT_SEQ_HIGH));
  const origin = new SeqOrigin(Number.isSafeInteger(stored) ? stored : 0);
  let saved = 0;
  const save = async () => {
    const high = origin.highWater;
    if (high === saved) return;
    try {
      await settings.set(SETTING_EVENT_SEQ_HIGH, String(high));
      saved = high;
    } catch (err) {
      log.warn({ err }, 'could not save the event numbering mark (tried again shortly)');
    }
  };
  await save();
  const timer = setInterval(() => void save(), SAVE_EVERY_MS);
  timer.unref();
  return {
    origin,
    stop: async () => {
      clearInterval(timer);
      await save();
    },
  };
}
