/**
 * `npm run bench:cpu`: what one answer costs the Node process in CPU, split into a fixed cost per turn and a cost per
 * delta, for the service, the minimal relay and the bare SDK. Each side runs one warm chat, answers of two lengths
 * (`/stamp 10 5` and `/stamp 400 2`) in alternation, and the CPU of every thread of its Node process (from
 * /proc/<pid>/task/<tid>/schedstat, in ns) is read before and after each answer, and its main thread's alone (the event
 * loop: what every delta waits for); the agent CLI is not counted.
 * CPU per answer = per turn + deltas × per delta, solved from the medians of the two lengths.
 *
 * CPU time depends less than latency on what else the machine does, but not nothing: on the machine of 2026-12-02
 * the service's per-turn figure moved between 13 and 19 ms from run to run. Compare several runs.
 *
 * Env: CPU_COST_REPS (12) answers of each length per side; CPU_COST_WARMUP (300) short answers first, not counted.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BareWorker } from './lib/bare-sdk.js';
import { killAllNow } from './lib/children.js';
import { clockOffsetMs } from './lib/clock.js';
import { startFake } from './lib/fake.js';
import { ServiceProcess } from './lib/service.js';
import { processCpuNs } from './lib/proc.js';
import { median } from './lib/stats.js';
import { bareTarget, serviceTarget, type BenchChat, type Target } from './lib/targets.js';
import { round } from './lib/util.js';

const REPS = Number(process.env.CPU_COST_REPS ?? 12);
const WARMUP_TURNS = Number(process.env.CPU_COST_WARMUP ?? 300);
const SHORT = { n: 10, ms: 5 };
const LONG = { n: 400, ms: 2 };
const TURN_TIMEOUT_MS = 120_000;

async function answerCpuUs(target: Target, chat: BenchChat, { n, ms }: { n: number; ms: number }): Promise<{ all: number; main: number }> {
  const before = processCpuNs(target.pid);
  const record = await chat.turn(`/stamp ${n} ${ms}`, TURN_TIMEOUT_MS);
  if (record.end !== 'result') throw new Error(`${target.name}: the answer ended with ${record.end}: ${record.error ?? ''}`);
  // The end of the answer reached the client; what the process still does for it (its last rows) follows at once.
  await new Promise((r) => setTimeout(r, 50));
  const after = processCpuNs(target.pid);
  return { all: (after.all - before.all) / 1000, main: (after.main - before.main) / 1000 };
}

/** Per turn and per delta from the medians of the two answer lengths. */
function split(short: number[], long: number[]): { shortUs: number; longUs: number; perTurnUs: number; perDeltaUs: number } {
  const s = median(short);
  const l = median(long);
  const perDelta = (l - s) / (LONG.n - SHORT.n);
  return { shortUs: round(s, 0), longUs: round(l, 0), perTurnUs: round(s - perDelta * SHORT.n, 0), perDeltaUs: round(perDelta, 1) };
}

async function main(): Promise<void> {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'agent-chat-cpu-')));
  const fake = await startFake();
  const offset = fake.clockOffsetMs - clockOffsetMs();
  const env = { RATE_LIMIT_PER_MINUTE: '0', MESSAGES_PER_MINUTE: '0', MAX_CHATS_PER_USER: '0', AGENT_PREWARM: 'false' };
  const service = await ServiceProcess.start({ dataDir: path.join(dir, 'service'), fakeUrl: fake.url, env });
  const relay = await ServiceProcess.start({ dataDir: path.join(dir, 'relay'), fakeUrl: fake.url, script: 'bench/relay-server.ts' });
  const worker = await BareWorker.start(fake.url, path.join(dir, 'bare'));
  try {
    const targets = [serviceTarget(service, offset), serviceTarget(relay, offset, { name: 'relay' }), bareTarget(worker, 0)];
    const chats: BenchChat[] = [];
    for (const target of targets) {
      const chat = await target.newChat();
      chats.push(chat);
      // The agent's start and the first turns warm both sides' code; not counted. The service runs far more code per
      // turn than the bare SDK, and V8 keeps optimizing it for a few hundred turns (measured with --trace-opt): a
      // short warm-up would charge that one-off compiling to every turn of the service.
      for (let i = 0; i < WARMUP_TURNS; i++) await chat.turn(`/stamp ${SHORT.n} 0`, TURN_TIMEOUT_MS);
      for (let i = 0; i < 3; i++) await chat.turn(`/stamp ${LONG.n} ${LONG.ms}`, TURN_TIMEOUT_MS);
    }
    const short: { all: number; main: number }[][] = targets.map(() => []);
    const long: { all: number; main: number }[][] = targets.map(() => []);
    for (let i = 0; i < REPS; i++) {
      for (let t = 0; t < targets.length; t++) {
        short[t]!.push(await answerCpuUs(targets[t]!, chats[t]!, SHORT));
        long[t]!.push(await answerCpuUs(targets[t]!, chats[t]!, LONG));
      }
    }
    const rows = targets.map((target, t) => {
      const all = split(short[t]!.map((c) => c.all), long[t]!.map((c) => c.all));
      const main = split(short[t]!.map((c) => c.main), long[t]!.map((c) => c.main));
      return { side: target.name, ...all, main };
    });
    process.stdout.write(`CPU of the Node process per answer, median of ${REPS} (µs); in brackets its main thread alone\n\n`);
    process.stdout.write(`| side | /stamp ${SHORT.n} ${SHORT.ms} | /stamp ${LONG.n} ${LONG.ms} | per turn | per delta |\n|---|---|---|---|---|\n`);
    for (const r of rows) {
      const m = r.main;
      process.stdout.write(`| ${r.side} | ${r.shortUs} (${m.shortUs}) | ${r.longUs} (${m.longUs}) | ${r.perTurnUs} (${m.perTurnUs}) | ${r.perDeltaUs} (${m.perDeltaUs}) |\n`);
    }
    const bare = rows[2]!;
    for (const r of rows.slice(0, 2)) {
      process.stdout.write(`${r.side} ÷ bare: per turn ×${round(r.perTurnUs / bare.perTurnUs, 2)}, per delta ×${round(r.perDeltaUs / bare.perDeltaUs, 2)}\n`);
    }
    for (const chat of chats) await chat.close().catch(() => undefined);
  } finally {
    await service.stop();
    await relay.stop();
    await worker.stop();
    await fake.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  killAllNow();
  process.exitCode = 1;
});
