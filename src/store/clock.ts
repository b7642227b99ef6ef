/**
 * A wall clock that never repeats or goes back: each call returns a later instant than the one before (at
 * least +1 ms). Stored timestamps then order the chat list strictly, even for writes in the same millisecond
 * or across a small clock step backwards.
 */
export function monotonicClock(wall: () => number = Date.now): () => Date {
  let last = 0;
  return () => {
    last = Math.max(wall(), last + 1);
    return new Date(last);
  };
}
