import type { TurnRecord } from './ws-client.js';

/** IPC between the benchmark and bench/bare-worker.ts (one JSON message per request and per answer). */
export type BareRequest =
  | { op: 'init'; fakeUrl: string; dataDir: string; agentNice?: string }
  | { op: 'clock' }
  /** Sends a message in session `sid`; `open` starts the session (a new query()) first, in the same tick. */
  | { op: 'turn'; sid: string; text: string; open: boolean; timeoutMs: number }
  /** Starts session `sid` (a new query(), its CLI spawned) without a message: the bare SDK's prewarm. */
  | { op: 'open'; sid: string }
  | { op: 'close'; sid: string }
  | { op: 'closeAll' };

export type BareAnswer = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: string };

export type BareTurn = TurnRecord;
