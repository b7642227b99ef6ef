/**
 * `npm run bench:profile`: where the service's own CPU goes while many chats stream. Starts the fake model and the
 * service, warms it up as `npm run bench` does (10 chats × 60 answers, not profiled: V8 is still compiling the
 * service's code for the first few hundred turns), opens the chats, then profiles PROFILE_ROUNDS rounds of every
 * chat answering at once (default 1 × 50 chats × 20 deltas/s, the saturated case of BENCHMARKS.md) with V8's sampling
 * profiler, started and stopped over the service's inspector, and prints the functions and files with the most self
 * time. V8's profiler samples wall time: a function's time includes the waits for a core that fell inside it (on a
 * busy machine, and in a system call that wakes another process). PROFILE_TOOL=perf samples the service's CPU alone
 * with Linux perf instead (kernel, libraries and JavaScript by name). The raw profile stays in the printed folder
 * (a `.cpuprofile` opens in Chrome DevTools).
 *
 * Env: PROFILE_SIDE (service | relay), PROFILE_CHATS (50), PROFILE_DELTAS (40), PROFILE_DELTA_MS (50), PROFILE_ROUNDS (1), PROFILE_WARMUP_TURNS (60
 * per chat of 10; 0 to profile a cold service), PROFILE_TOOL (v8 | perf), BENCH_SERVICE_ENV=K=V,... service settings.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { killAllNow, REPO_ROOT, track } from './lib/children.js';
import { clockOffsetMs } from './lib/clock.js';
import { startFake } from './lib/fake.js';
import { RemoteProfiler } from './lib/inspector.js';
import { warmUp } from './lib/scenarios.js';
import { ServiceProcess } from './lib/service.js';
import { serviceTarget } from './lib/targets.js';
import { freePort } from './lib/util.js';

const chats = Number(process.env.PROFILE_CHATS ?? 50);
const deltas = Number(process.env.PROFILE_DELTAS ?? 40);
const deltaMs = Number(process.env.PROFILE_DELTA_MS ?? 50);
const warmUpTurns = Number(process.env.PROFILE_WARMUP_TURNS ?? 60);
const rounds = Number(process.env.PROFILE_ROUNDS ?? 1);
const tool = process.env.PROFILE_TOOL === 'perf' ? 'perf' : 'v8';
/** PROFILE_SIDE=relay profiles the minimal relay (bench/relay-server.ts) the same way, for comparison. */
const relay = process.env.PROFILE_SIDE === 'relay';
const side = relay ? 'relay' : 'service';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** Self time per function and per file (µs), from a V8 CPU profile. */
export function selfTimes(profile: CpuProfile): { byFunction: [string, number][]; byFile: [string, number][]; totalUs: number } {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const fn = new Map<string, number>();
  const file = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    const node = nodes.get(id)!;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === '(idle)' || functionName === '(program)') return;
    total += dt;
    const where = url.replace(`file://${REPO_ROOT}/`, '').replace(/^.*node_modules\//, 'npm:');
    const fnKey = `${functionName || '(anonymous)'} ${where}:${lineNumber + 1}`;
    fn.set(fnKey, (fn.get(fnKey) ?? 0) + dt);
    const fileKey = where || functionName;
    file.set(fileKey, (file.get(fileKey) ?? 0) + dt);
  });
  const top = (m: Map<string, number>) => [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, 30);
  return { byFunction: top(fn), byFile: top(file), totalUs: total };
}

/** One way of sampling the service during the window: V8's profiler (wall time, by JS function) or Linux perf (CPU). */
interface Sampler {
  nodeArgs: string[];
  start(pid: number): Promise<void>;
  /** Stops sampling and prints where the time went. */
  stopAndReport(answers: number): Promise<void>;
}

function v8Sampler(profDir: string, inspectPort: number): Sampler {
  let profiler: RemoteProfiler | undefined;
  return {
    nodeArgs: [`--inspect=127.0.0.1:${inspectPort}`],
    async start() {
      profiler = await RemoteProfiler.connect(inspectPort);
      await profiler.start(200);
    },
    async stopAndReport(answers) {
      const profile = await profiler!.stop<CpuProfile>();
      profiler!.close();
      fs.mkdirSync(profDir, { recursive: true });
      const file = path.join(profDir, 'service.cpuprofile');
      fs.writeFileSync(file, JSON.stringify(profile));
      const { byFunction, byFile, totalUs } = selfTimes(profile);
      const pct = (us: number) => `${((100 * us) / totalUs).toFixed(1).padStart(5)} %  ${(us / 1000).toFixed(0).padStart(6)} ms`;
      const perAnswer = (totalUs / 1000 / answers).toFixed(2);
      process.stdout.write(`busy time in the profile (wall): ${(totalUs / 1000).toFixed(0)} ms, ${perAnswer} ms per answer\n\nby file:\n`);
      for (const [k, v] of byFile) process.stdout.write(`${pct(v)}  ${k}\n`);
      process.stdout.write('\nby function:\n');
      for (const [k, v] of byFunction) process.stdout.write(`${pct(v)}  ${k}\n`);
      process.stdout.write(`\nprofile: ${file}\n`);
    },
  };
}

/**
 * Linux perf, sampling only while a thread of the service is on a core (`cpu-clock`), with V8's map of its compiled
 * code (`--perf-basic-prof`) so JavaScript functions have names. That map only grows: code V8 moved or collected can
 * lend its name to what took its place (a module's top level showing up hot), so read the split between JavaScript,
 * V8, libraries and the kernel here, and JavaScript functions by name with V8's profiler. Needs `perf` (Debian's
 * linux-perf) and the right to sample the process (root, or kernel.perf_event_paranoid ≤ 1).
 */
function perfSampler(profDir: string): Sampler {
  const data = path.join(profDir, 'perf.data');
  let perf: ChildProcess | undefined;
  const report = (sort: string) =>
    execFileSync('perf', ['report', '-i', data, '--no-children', '--sort', sort, '-g', 'none', '--percent-limit', '0.7', '--stdio'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      maxBuffer: 64 << 20,
    })
      .split('\n')
      .filter((line) => line.trim() && !line.startsWith('#'))
      .join('\n');
  return {
    nodeArgs: ['--perf-basic-prof', '--interpreted-frames-native-stack'],
    async start(pid) {
      fs.mkdirSync(profDir, { recursive: true });
      // Tracked: killed with the benchmark's other children if the run fails.
      perf = track(spawn('perf', ['record', '-e', 'cpu-clock', '-F', '999', '-g', '-p', String(pid), '-o', data], { stdio: 'ignore' }));
      // perf attaches asynchronously; a second is plenty for it to be sampling.
      await new Promise((r) => setTimeout(r, 1000));
    },
    async stopAndReport(answers) {
      const exited = new Promise((r) => perf!.once('exit', r));
      perf!.kill('SIGINT');
      await exited;
      const header = execFileSync('perf', ['report', '-i', data, '--stdio', '--sort', 'comm'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      // cpu-clock counts nanoseconds on a core.
      const ns = Number(/Event count \(approx\.\): (\d+)/.exec(header)?.[1] ?? 0);
      const perAnswer = (ns / 1e6 / answers).toFixed(2);
      process.stdout.write(`CPU of the ${side} in the window (every thread): ${(ns / 1e6).toFixed(0)} ms, ${perAnswer} ms per answer\n\n`);
      process.stdout.write(`by thread and library:\n${report('comm,dso')}\n\nby function:\n${report('sym')}\n\nperf data: ${data}\n`);
    },
  };
}

async function main(): Promise<void> {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'agent-chat-profile-')));
  const profDir = path.join(dir, 'profile');
  const fake = await startFake();
  const sampler = tool === 'perf' ? perfSampler(profDir) : v8Sampler(profDir, await freePort());
  const env: Record<string, string> = {
    // The warm-up's ten chats and the profiled ones, with room to spare.
    MAX_LIVE_AGENTS: String(Math.max(chats, 10) + 4),
    RATE_LIMIT_PER_MINUTE: '0',
    MESSAGES_PER_MINUTE: '0',
    MAX_CHATS_PER_USER: '0',
  };
  for (const pair of (process.env.BENCH_SERVICE_ENV ?? '').split(',').filter(Boolean)) {
    const [key, ...value] = pair.split('=');
    if (key) env[key] = value.join('=');
  }
  const service = await ServiceProcess.start({
    dataDir: path.join(dir, 'service'),
    fakeUrl: fake.url,
    env,
    // A loaded machine can take a while to start it.
    startTimeoutMs: 120_000,
    nodeArgs: sampler.nodeArgs,
    ...(relay ? { script: 'bench/relay-server.ts' } : {}),
  });
  try {
    const target = serviceTarget(service, fake.clockOffsetMs - clockOffsetMs());
    if (warmUpTurns > 0) {
      process.stderr.write(`warming up: 10 chats × ${warmUpTurns} answers\n`);
      await warmUp([target], { chats: 10, turnsPerChat: warmUpTurns });
    }
    // The chats and their agents start before the profile: an agent's start is not what a turn costs.
    const pool = await Promise.all(Array.from({ length: chats }, () => target.newChat()));
    for (const chat of pool) await chat.turn('/stamp 3 0', 120_000);
    process.stderr.write(`profiling (${tool}) ${rounds} × ${chats} chats × /stamp ${deltas} ${deltaMs} at once (${side} pid ${service.pid})\n`);
    // The benchmark's clients stay at normal priority here: a raised client, woken by the service's write, takes the
    // core in the middle of that write, and V8's profiler (which samples wall time) would charge its run to writev.
    await sampler.start(service.pid);
    for (let r = 0; r < rounds; r++) {
      const ends = await Promise.all(pool.map((chat) => chat.turn(`/stamp ${deltas} ${deltaMs}`, 120_000)));
      const failed = ends.filter((t) => t.end !== 'result').length;
      if (failed > 0) throw new Error(`${failed} answers of round ${r + 1} did not end with a result`);
    }
    await sampler.stopAndReport(rounds * chats);
  } finally {
    await service.stop();
    await fake.stop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  killAllNow();
  process.exitCode = 1;
});
