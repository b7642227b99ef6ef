import { describe, expect, it } from 'vitest';
import { LargeFrameGate } from '../../src/transport/ws/large-frame-gate.js';

/** The bound on large frames received at once: slots, first come first served, released by completion or close. */
describe('LargeFrameGate', () => {
  const MiB = 1024 * 1024;

  it('lets small frames through always, and at most `slots` large frames at once; the next waits its turn', () => {
    const gate = new LargeFrameGate(2, MiB);
    const [a, b, c, d, small] = [{}, {}, {}, {}, {}];
    const resumed: string[] = [];
    expect(gate.update(a, 5 * MiB, () => resumed.push('a'))).toBe(true);
    expect(gate.update(b, 2 * MiB, () => resumed.push('b'))).toBe(true);
    expect(gate.update(c, 3 * MiB, () => resumed.push('c'))).toBe(false);
    expect(gate.update(d, 3 * MiB, () => resumed.push('d'))).toBe(false);
    expect(gate.isWaiting(c) && gate.isWaiting(d)).toBe(true);
    expect(gate.update(small, 900 * 1024, () => resumed.push('small'))).toBe(true);
    expect(gate.update(a, 60 * MiB, () => resumed.push('a'))).toBe(true);

    // a's frame completed (nothing in progress any more): its slot goes to c, the first waiting.
    expect(gate.update(a, 0, () => resumed.push('a'))).toBe(true);
    expect(resumed).toEqual(['c']);
    expect(gate.isWaiting(c)).toBe(false);
    // a starts another large frame: d came first, a waits behind it.
    expect(gate.update(a, 2 * MiB, () => resumed.push('a'))).toBe(false);

    // b's socket closes: its slot goes to d; c finishing lets a in.
    gate.release(b);
    expect(resumed).toEqual(['c', 'd']);
    gate.update(c, 10, () => resumed.push('c'));
    expect(resumed).toEqual(['c', 'd', 'a']);
  });

  it('forgets a waiting socket that closes', () => {
    const gate = new LargeFrameGate(1, MiB);
    const [a, b, c] = [{}, {}, {}];
    const resumed: string[] = [];
    gate.update(a, 2 * MiB, () => resumed.push('a'));
    gate.update(b, 2 * MiB, () => resumed.push('b'));
    gate.update(c, 2 * MiB, () => resumed.push('c'));
    gate.release(b);
    expect(gate.isWaiting(b)).toBe(false);
    gate.release(a);
    expect(resumed).toEqual(['c']);
  });
});
