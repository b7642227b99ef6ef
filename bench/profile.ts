/**
 * `npm run bench:profile`: where the service's own CPU goes while many chats stream. Starts the fake model and the
 * service under `node --cpu-prof`, runs one concurrency level (default 50 chats × 20 deltas/s, the saturated case
 * of BENCHMARKS.md), stops the service so it writes its profile, and prints the functions and files with the most
 * self time. The raw `.cpuprofile` (open it in Chrome DevTools) stays in the printed folder.
 *
 * Env: PROFILE_CHATS (50), PROFILE_DELTAS (40), PROFILE_DELTA_MS (50), BENCH_SERVICE_ENV=K=V,... service settings.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { killAllNow, REPO_ROOT } from './lib/children.js';
import { clockOffsetMs } from './lib/clock.js';
import { startFake } from './lib/fake.js';
import { concurrencyLevel } from './lib/scenarios.js';
import { ServiceProcess } from './lib/service.js';
import { serviceTarget } from './lib/targets.js';

const chats = Number(process.env.PROFILE_CHATS ?? 50);
const deltas = Number(process.env.PROFILE_DELTAS ?? 40);
const deltaMs = Number(process.env.PROFILE_DELTA_MS ?? 50);

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

async function main(): Promise<void> {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'agent-chat-profile-')));
  const profDir = path.join(dir, 'profile');
  const fake = await startFake();
  const env: Record<string, string> = { MAX_LIVE_AGENTS: String(chats + 4), RATE_LIMIT_PER_MINUTE: '0', MESSAGES_PER_MINUTE: '0', MAX_CHATS_PER_USER: '0' };
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
    nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profDir}`, '--cpu-prof-interval=200'],
  });
  try {
    const target = serviceTarget(service, fake.clockOffsetMs - clockOffsetMs());
    process.stderr.write(`profiling ${chats} chats × /stamp ${deltas} ${deltaMs} (service pid ${service.pid})\n`);
    const level = await concurrencyLevel(target, chats, { n: deltas, ms: deltaMs, leaveOpen: true });
    process.stderr.write(`p50 ${level.summary.p50} p99 ${level.summary.p99} ms, ${level.failures.length} failed\n`);
  } finally {
    await service.stop();
    await fake.stop();
  }
  const file = fs.readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) throw new Error(`no profile written in ${profDir}`);
  const { byFunction, byFile, totalUs } = selfTimes(JSON.parse(fs.readFileSync(path.join(profDir, file), 'utf8')) as CpuProfile);
  const pct = (us: number) => `${((100 * us) / totalUs).toFixed(1).padStart(5)} %  ${(us / 1000).toFixed(0).padStart(6)} ms`;
  process.stdout.write(`busy CPU in the profile: ${(totalUs / 1000).toFixed(0)} ms (whole run, start-up included)\n\nby file:\n`);
  for (const [k, v] of byFile) process.stdout.write(`${pct(v)}  ${k}\n`);
  process.stdout.write('\nby function:\n');
  for (const [k, v] of byFunction) process.stdout.write(`${pct(v)}  ${k}\n`);
  process.stdout.write(`\nprofile: ${path.join(profDir, file)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  killAllNow();
  process.exitCode = 1;
});
