/**
 * Time for measuring durations: milliseconds on the wall clock's scale as it was when the process started, advanced
 * by the monotonic clock since. A wall clock step (NTP correcting a drifted clock, an operator setting the date, a
 * virtual machine resumed) moves `Date.now()` by minutes or hours at once; this clock never jumps, so a timeout,
 * an idle cut-off, a backoff or a rate-limit refill measured with it neither fires early nor waits for the wall
 * clock to catch up. Timestamps shown to people or stored (`created_at`, the day a budget counts) stay on the wall
 * clock.
 */
export const monotonicNow = (): number => performance.timeOrigin + performance.now();
