// The wall clock can step (NTP correcting a drifted clock, an operator setting the date, a VM resumed). Durations
// (rate-limit refills, ticket lifetimes, start backoff) are measured on the monotonic clock and must not move with
// it; event numbering must never repeat a seq, whatever the wall clock does between two streams of a chat or two
// runs of the service.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ChatEventLog } from '../../src/agent/event-log.js';
import { SeqOrigin } from '../../src/agent/seq-origin.js';
import { StartBackoff } from '../../src/agent/start-backoff.js';
import { TicketStore } from '../../src/auth/tickets.js';
import { RateLimiter } from '../../src/limits/rate-limiter.js';
import type { Principal } from '../../src/auth/principal.js';

const HOUR = 3_600_000;
const realNow = Date.now;
let offset = 0;
/** Steps the wall clock (Date.now) by `ms`. */
function stepWallClock(ms: number): void {
  offset += ms;
}
// Installed before anything under test is built, so a clock captured at construction is the stepped one too.
beforeEach(() => {
  offset = 0;
  vi.spyOn(Date, 'now').mockImplementation(() => realNow() + offset);
});
afterEach(() => {
  vi.restoreAllMocks();
});

const limits = { maxEvents: 100, maxBytes: 1_000_000 };
const event = (seq: number) => ({ type: 'processing_state', chat_id: 'c', processing: false, seq }) as never;

describe('event numbering across wall clock steps', () => {
  it('a chat stream opened again after the clock stepped back starts above every seq issued before', () => {
    const origin = new SeqOrigin();
    const first = new ChatEventLog(limits, origin);
    for (let i = 0; i < 50; i++) first.emit(event, () => {});
    const lastSeen = first.lastSeq;
    stepWallClock(-HOUR);
    const again = new ChatEventLog(limits, origin);
    expect(again.lastSeq).toBeGreaterThan(lastSeen);
    again.emit(event, () => {});
    // A client holding a seq of the earlier stream gets the full state, never this stream's events as a replay.
    expect(again.since(lastSeen)).toBeUndefined();
  });

  it('a new run starts above the mark the previous run stored, with the clock set back, also after a crash', () => {
    const before = new SeqOrigin();
    const log = new ChatEventLog(limits, before);
    for (let i = 0; i < 10; i++) log.emit(event, () => {});
    const storedMark = before.highWater - 5; // saved a little before the last events (a crash: not saved again)
    stepWallClock(-HOUR);
    const next = new SeqOrigin(storedMark);
    expect(next.start()).toBeGreaterThan(log.lastSeq);
  });

  it('with a steady clock the numbering still starts from the wall clock in microseconds', () => {
    const now = 1_800_000_000_000;
    const origin = new SeqOrigin(0, () => now);
    expect(origin.start()).toBe(now * 1000);
    expect(origin.start()).toBe(now * 1000 + 1);
  });
});

describe('durations ignore wall clock steps', () => {
  it('a rate limit refills with time passing, not with the wall clock: a step back does not block, a step forward does not refill', () => {
    const limiter = new RateLimiter(2);
    expect(limiter.take('u')).toBe(0);
    expect(limiter.take('u')).toBe(0);
    stepWallClock(HOUR);
    expect(limiter.take('u')).toBeGreaterThan(0);
    stepWallClock(-2 * HOUR);
    const wait = limiter.take('u');
    expect(wait).toBeGreaterThan(0);
    expect(wait).toBeLessThanOrEqual(30_000);
  });

  it('a WebSocket ticket stays valid for its lifetime when the clock steps forward', () => {
    const tickets = new TicketStore();
    const principal = { kind: 'user', userId: 'u1', username: 'ann' } as unknown as Principal;
    const ticket = tickets.issue(principal);
    stepWallClock(HOUR);
    expect(tickets.redeem(ticket)).toBe(principal);
  });

  it('a start backoff lasts its delay when the clock steps back', () => {
    const backoff = new StartBackoff({ firstDelayMs: 1_000, maxDelayMs: 8_000 });
    backoff.failed('exit 127');
    stepWallClock(-HOUR);
    expect(backoff.waitMs()).toBeLessThanOrEqual(1_000);
    expect(backoff.waitMs()).toBeGreaterThan(0);
  });
});
