/**
 * Time for latency figures that cross processes.
 *
 * The fake model stamps each delta with `performance.timeOrigin + performance.now()` of ITS process; receivers
 * take the same reading in theirs. In Node both terms come from one monotonic clock (uv_hrtime, CLOCK_MONOTONIC,
 * shared by every process of the machine) plus a wall-clock reading taken once when the process started. Two
 * processes therefore agree up to a constant: how much the wall clock moved against the monotonic one between their
 * starts (an NTP step or slew). `clockOffsetMs()` measures that constant for the calling process, so a latency is
 * corrected exactly: `latency = (recv - stamp) + (offset_of_fake - offset_of_receiver)`. The correction is reported
 * in the results (normally ~0).
 */

/** The receive-time reading the brief and the fake model use: wall-clock ms with a sub-ms fraction. */
export const wallNow = (): number => performance.timeOrigin + performance.now();

/** This process's (wall − monotonic) constant in ms; the minimum over samples drops readings split by a preemption. */
export function clockOffsetMs(samples = 200): number {
  let best = Number.POSITIVE_INFINITY;
  let bestSpan = Number.POSITIVE_INFINITY;
  for (let i = 0; i < samples; i++) {
    const before = process.hrtime.bigint();
    const wall = wallNow();
    const after = process.hrtime.bigint();
    const span = Number(after - before);
    if (span < bestSpan) {
      bestSpan = span;
      best = wall - Number((before + after) / 2n) / 1e6;
    }
  }
  return best;
}

/** `<t>1732634012345.678</t>` → 1732634012345.678, for every stamp in a delta (normally exactly one). */
export function parseStamps(text: string): number[] {
  const out: number[] = [];
  for (const m of text.matchAll(/<t>(\d+(?:\.\d+)?)<\/t>/g)) out.push(Number(m[1]));
  return out;
}

/** One received text delta: the fake's send stamp(s) and the receiver's clock when it arrived. */
export interface DeltaArrival {
  recv: number;
  stamps: number[];
}

/** Per-delta latencies (ms) of arrivals, corrected by `skewMs` = offset_of_fake − offset_of_receiver. */
export function latencies(arrivals: readonly DeltaArrival[], skewMs: number): number[] {
  const out: number[] = [];
  for (const a of arrivals) for (const s of a.stamps) out.push(a.recv - s + skewMs);
  return out;
}
