import os from 'node:os';
import { latencies } from './clock.js';
import { addUsage, agentProcesses, TreeSampler, type TreeUsage } from './proc.js';
import { summarize, type Summary } from './stats.js';
import type { BenchChat, Target } from './targets.js';
import { mapLimit, round, sleep, waitUntil } from './util.js';
import type { TurnRecord } from './ws-client.js';

/** Generous: a cold agent start on a loaded 2-core machine takes seconds, 25 at once tens of seconds. */
const COLD_TURN_TIMEOUT_MS = 180_000;
const WARM_TURN_TIMEOUT_MS = 120_000;

const stamp = (n: number, ms: number) => `/stamp ${n} ${ms}`;

/** Every stamp of the turn, or a clear error if the stream lost or garbled some. */
function turnLatencies(target: Target, record: TurnRecord, expected: number, what: string): number[] {
  const values = latencies(record.arrivals, target.skewMs);
  if (values.length !== expected) {
    throw new Error(`${target.name}: ${what}: expected ${expected} stamped deltas, got ${values.length}`);
  }
  return values.map((v) => round(v));
}

// ------------------------------------------------------------------------------------------------------- warm-up

export interface WarmUp {
  /** Chats per side, answering at once. */
  chats: number;
  /** Answers per chat, one after the other. */
  turnsPerChat: number;
  /** How long each side took, s. */
  seconds: Record<string, number>;
}

/**
 * Before anything is measured, every side answers `chats × turnsPerChat` short questions on chats it creates and
 * closes again, the chats answering at once. A service in use has answered thousands of turns, and V8 compiles a
 * function for speed only after it has run many times: the service runs far more of its own code per turn than the
 * bare SDK (storing, the chat list, its protocol), and measured within its first hundred turns it spends about twice
 * the CPU per turn it spends once warm (perf, 2026-12-02: 17.7 against 8.7 ms per one-delta turn after 5 and after
 * 600 turns; the relay 6.8 against 6.4). Every side gets the same warm-up, so the comparison stays fair.
 */
export async function warmUp(targets: Target[], { chats, turnsPerChat }: { chats: number; turnsPerChat: number }): Promise<WarmUp> {
  const seconds: Record<string, number> = {};
  for (const target of targets) {
    const started = performance.now();
    const pool: BenchChat[] = [];
    try {
      await Promise.all(
        Array.from({ length: chats }, async () => {
          const chat = await target.newChat();
          pool.push(chat);
          for (let i = 0; i < turnsPerChat; i++) await chat.turn(stamp(10, 0), COLD_TURN_TIMEOUT_MS);
        }),
      );
    } finally {
      await Promise.all(pool.map((c) => c.close().catch(() => undefined)));
    }
    seconds[target.name] = round((performance.now() - started) / 1000, 1);
  }
  return { chats, turnsPerChat, seconds };
}

// ------------------------------------------------------------------------------------------------ 1. delta latency

export interface LatencyResult {
  command: string;
  runs: number;
  summary: Summary;
  /** Every per-delta latency (ms), all runs. */
  samples: number[];
  /** The process tree and the machine during the counted runs (summed over the runs). */
  usage: TreeUsage;
}

/**
 * `runs` × `/stamp n ms` on one warm chat per target (each agent started by a discarded first turn). The targets
 * take turns run by run, so other work on a shared machine hits them alike rather than one phase of the run.
 */
export async function deltaLatency(
  targets: Target[],
  { runs, n, ms }: { runs: number; n: number; ms: number },
): Promise<LatencyResult[]> {
  const chats: BenchChat[] = [];
  try {
    for (const target of targets) {
      const chat = await target.newChat();
      chats.push(chat);
      // Starts the agent and warms both sides' code paths; not counted.
      await chat.turn(stamp(20, ms), COLD_TURN_TIMEOUT_MS);
    }
    const samples: number[][] = targets.map(() => []);
    const usage: (TreeUsage | undefined)[] = targets.map(() => undefined);
    for (let i = 0; i < runs; i++) {
      for (const t of alternate(targets.length, i)) {
        const target = targets[t]!;
        // Sampled too: a busy machine (another job on these cores) shows as machine CPU beyond our tree's.
        const sampler = new TreeSampler(target.pid, 200);
        const record = await chats[t]!.turn(stamp(n, ms), WARM_TURN_TIMEOUT_MS);
        usage[t] = addUsage(usage[t], sampler.stop());
        samples[t]!.push(...turnLatencies(target, record, n, `latency run ${i + 1}`));
      }
    }
    return targets.map((_, t) => ({
      command: stamp(n, ms),
      runs,
      summary: summarize(samples[t]!),
      samples: samples[t]!,
      usage: usage[t]!,
    }));
  } finally {
    await Promise.all(chats.map((c) => c.close().catch(() => undefined)));
  }
}

/** Target indexes in round `round`: forwards on even rounds, backwards on odd ones (no side is always first). */
function alternate(count: number, round: number): number[] {
  const order = Array.from({ length: count }, (_, i) => i);
  return round % 2 === 0 ? order : order.reverse();
}

// ------------------------------------------------------------------------------------------ 2. time to first delta

export interface FirstDelta {
  /** Message sent → first text delta received (ms, one clock: the receiver's). */
  totalMs: number;
  /** Message sent → the fake model sent that delta: agent start (cold), request to the model, the model's 0 ms. */
  untilModelMs: number;
  /** The fake model sent it → received: the same path as the delta latency. */
  deliveryMs: number;
}

export interface FirstDeltaResult {
  command: string;
  cold: FirstDelta[];
  warm: FirstDelta[];
}

function firstDelta(target: Target, record: TurnRecord): FirstDelta {
  const first = record.arrivals.find((a) => a.stamps.length > 0);
  if (!first) throw new Error(`${target.name}: the answer had no stamped delta`);
  const sent = first.stamps[0] as number;
  return {
    totalMs: round(first.recv - record.sendAt),
    untilModelMs: round(sent - record.sendAt - target.skewMs),
    deliveryMs: round(first.recv - sent + target.skewMs),
  };
}

/**
 * Cold: the first message of a new chat (the agent process starts for it). Warm: the second message of the same
 * chat, `thinkMs` after the first answer ended (a user reading and typing). One sample at a time, so each cold
 * start has the machine to itself, targets taking turns; the chat is closed before the next sample.
 * `withWarm: false` targets give cold samples only.
 */
export async function timeToFirstDelta(
  targets: { target: Target; withWarm: boolean }[],
  { samples, thinkMs = 1_000 }: { samples: number; thinkMs?: number },
): Promise<FirstDeltaResult[]> {
  // 5 deltas with no delay: the first leaves the fake as soon as the request is read.
  const command = stamp(5, 0);
  const results: FirstDeltaResult[] = targets.map(() => ({ command, cold: [], warm: [] }));
  for (let i = 0; i < samples; i++) {
    for (const t of alternate(targets.length, i)) {
      const { target, withWarm } = targets[t]!;
      const chat = await target.newChat();
      try {
        results[t]!.cold.push(firstDelta(target, await chat.turn(command, COLD_TURN_TIMEOUT_MS)));
        if (withWarm) {
          await sleep(thinkMs);
          results[t]!.warm.push(firstDelta(target, await chat.turn(command, WARM_TURN_TIMEOUT_MS)));
        }
      } finally {
        await chat.close();
      }
      // The closed agent process must be gone before the next cold start competes with it for CPU.
      await agentsGone(target);
    }
  }
  return results;
}

/** Priority of the benchmark's main thread while N chats stream: above the agents', see raiseOwnPriority. */
const CLIENT_NICE = -10;

/**
 * Raises the priority of the benchmark's main thread (its WebSocket clients) for a streaming window. From about 25
 * chats the agent CLIs saturate the cores, and every runnable process waits its turn. A service client is one more
 * process on that path, which a browser on another machine would not be. Without this, its waiting would count as
 * latency the service added. Only the main thread is changed, and only after every child was spawned: the service,
 * the bare worker and all agents keep the default priority, so the two sides are treated alike. Needs root or
 * CAP_SYS_NICE; without them it does nothing (nice 0 is recorded).
 */
function raiseOwnPriority(): { nice: number; restore(): void } {
  const before = os.getPriority();
  try {
    os.setPriority(CLIENT_NICE);
  } catch {
    return { nice: before, restore: () => {} };
  }
  return {
    nice: CLIENT_NICE,
    restore: () => {
      try {
        os.setPriority(before);
      } catch {
        /* lowering back to a higher nice value may fail only for an unprivileged user, who never raised it */
      }
    },
  };
}

/** Waits until the target has no agent process left (after its chats were closed). */
async function agentsGone(target: Target, timeoutMs = 60_000): Promise<void> {
  await waitUntil(() => (agentProcesses(target.pid).agents.length === 0 ? true : undefined), {
    timeoutMs,
    intervalMs: 50,
    what: `${target.name}: agent processes to exit after their chats were closed`,
  });
  await sleep(300);
}

// ----------------------------------------------------------------------------------------------- 3. concurrency

export interface ConcurrencyLevel {
  chats: number;
  command: string;
  /** Nice value of the benchmark's client thread during the window (see raiseOwnPriority); 0 if it could not. */
  clientNice: number;
  /** Time to start (warm up) the level's agents, before measuring. */
  warmupMs: number;
  /** From sending the N messages to the last terminal event. */
  streamWallMs: number;
  summary: Summary;
  samples: number[];
  /** The process tree during the streaming window only. */
  usage: TreeUsage;
  failures: string[];
}

/** One side of the saturated scenario (3b) with its client's priority. */
export interface SaturatedRun {
  side: 'service' | 'bare' | 'relay';
  /** Whether the benchmark's clients ran at raised priority (see raiseOwnPriority). */
  raisedPriority: boolean;
  level: ConcurrencyLevel;
}

/**
 * One level: `chats` new chats are warmed up (their agents started, at most `warmupParallel` at a time), then all
 * get `/stamp n ms` at the same moment. CPU and memory are sampled only while those answers stream. Afterwards the
 * chats are closed and their agents awaited, unless `leaveOpen` (the caller then stops the whole target and
 * measures that with every agent alive).
 */
export async function concurrencyLevel(
  target: Target,
  chats: number,
  {
    n,
    ms,
    warmupParallel = 10,
    leaveOpen = false,
    raisePriority = true,
  }: { n: number; ms: number; warmupParallel?: number; leaveOpen?: boolean; raisePriority?: boolean },
): Promise<ConcurrencyLevel> {
  const pool: BenchChat[] = [];
  const command = stamp(n, ms);
  try {
    const warmStart = performance.now();
    await mapLimit(Array.from({ length: chats }), warmupParallel, async () => {
      const chat = await target.newChat();
      pool.push(chat);
      await chat.turn(stamp(3, 0), COLD_TURN_TIMEOUT_MS);
    });
    const warmupMs = performance.now() - warmStart;
    // Let the agents' start-up work (side requests, file writes) finish so it is not charged to streaming.
    await sleep(1_500);

    // raisePriority false: the client competes like any other process (a browser on the same busy machine).
    const clientPriority = raisePriority ? raiseOwnPriority() : { nice: os.getPriority(), restore: () => {} };
    const sampler = new TreeSampler(target.pid, 200);
    const streamStart = performance.now();
    const settled = await Promise.allSettled(pool.map((c) => c.turn(command, WARM_TURN_TIMEOUT_MS)));
    const streamWallMs = performance.now() - streamStart;
    const usage = sampler.stop();
    clientPriority.restore();

    const samples: number[] = [];
    const failures: string[] = [];
    for (const s of settled) {
      if (s.status === 'rejected') failures.push(String((s.reason as Error)?.message ?? s.reason));
      else {
        try {
          samples.push(...turnLatencies(target, s.value, n, `${chats} chats`));
        } catch (err) {
          failures.push((err as Error).message);
        }
      }
    }
    return {
      chats,
      command,
      clientNice: clientPriority.nice,
      warmupMs: round(warmupMs, 0),
      streamWallMs: round(streamWallMs, 0),
      summary: summarize(samples),
      samples,
      usage,
      failures,
    };
  } finally {
    if (!leaveOpen) {
      await mapLimit(pool, 10, (c) => c.close().catch(() => undefined));
      await agentsGone(target);
    }
  }
}
