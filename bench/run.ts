/**
 * `npm run bench`: the service against the bare Agent SDK, in the same run, both streaming from the repo's fake
 * model on loopback. Prints Markdown tables and writes bench/results/<YYYY-MM-DD>.json with every raw figure.
 * BENCHMARKS.md says how to read each figure.
 *
 * Phases (every process a phase started is stopped, and checked, before the next):
 *   5.   start-up of the service, measured first, alone
 *   1-3. per-delta latency, time to first delta, N chats at once: the service and the bare SDK (same fake, same
 *        agent options and CLI environment) both up, taking turns so that other load falls on both alike; a
 *        minimal relay (bench/relay-server.ts) as a third side in 1 and 3, so the hop is told apart from the service
 *   3b.  the saturated case, 50 chats × 20 deltas/s, all three sides, clients at raised and at normal priority
 *   4.   REST: autocannon against a seeded database (10,000 chats, one with 1,000 messages)
 *
 * Env: BENCH_QUICK=1 a smoke run with few samples (figures not comparable); BENCH_LEVELS=1,10 other concurrency
 * levels; BENCH_KEEP=1 keeps the temp folder; BENCH_LOG_LEVEL the service's LOG_LEVEL (default `info`, its own);
 * BENCH_WAIT_QUIET_S how long to wait for other work on the machine to stop (default 60); BENCH_SERVICE_ENV=K=V,...
 * settings of the service to try.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { z } from 'zod';
import { EnvSchema } from '../src/config/config.js';
import { BareWorker } from './lib/bare-sdk.js';
import { killAllNow, REPO_ROOT } from './lib/children.js';
import { clockOffsetMs } from './lib/clock.js';
import { startFake } from './lib/fake.js';
import { machineInfo } from './lib/machine.js';
import { allAgentProcesses, machineBusyPct, ourAgentProcesses, QUIET_MACHINE_PCT } from './lib/proc.js';
import { renderTables, type BenchResults } from './lib/report.js';
import { loadTest, seedDatabase } from './lib/rest.js';
import { concurrencyLevel, deltaLatency, timeToFirstDelta, type ConcurrencyLevel, type SaturatedRun } from './lib/scenarios.js';
import { ServiceProcess } from './lib/service.js';
import { measureStartup } from './lib/startup.js';
import { bareTarget, serviceTarget } from './lib/targets.js';
import { round, sleep, waitUntil, withCleanup } from './lib/util.js';
import { chromiumPresent, measureWebClient } from './lib/web-client.js';

const QUICK = process.env.BENCH_QUICK === '1';
const PLAN = {
  ...(QUICK
    ? { startupRuns: 2, latencyRuns: 2, firstDeltaSamples: 2, levels: [1, 5], restS: 3 }
    : // 7 first-delta samples: a cold CLI start varies by ±100 ms from one start to the next.
      { startupRuns: 5, latencyRuns: 5, firstDeltaSamples: 7, levels: [1, 10, 25, 50], restS: 10 }),
  /** 3b. The saturated case at a chat-like pace: 50 chats × 20 deltas/s (40 deltas 50 ms apart). */
  saturated: QUICK ? { chats: 5, n: 10, ms: 50 } : { chats: 50, n: 40, ms: 50 },
  ...(process.env.BENCH_LEVELS ? { levels: process.env.BENCH_LEVELS.split(',').map(Number).sort((a, b) => a - b) } : {}),
};
if (PLAN.levels.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`BENCH_LEVELS must be positive integers: ${process.env.BENCH_LEVELS}`);
/** The whole run normally takes ~4-5 minutes on 2 cores (plus the wait for a quiet machine); past this something is stuck. */
const WATCHDOG_S = Number(process.env.BENCH_TIMEOUT_S ?? 1_200);
/** For a prewarm feature: how long a user looks at a new chat before sending the first message. */
const PREWARM_THINK_MS = 2_000;

const t0 = performance.now();
const log = (msg: string): void => {
  process.stderr.write(`[bench ${((performance.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${msg}\n`);
};

/**
 * A prewarm setting of the service, if src/config has one (a variable named like AGENT_PREWARM), with the values
 * that turn it on and off according to its own schema.
 */
function findPrewarmSetting(): { variable: string; on: string; off: string } | undefined {
  const shape = EnvSchema.shape as Record<string, z.ZodType>;
  const variable = Object.keys(shape).find((k) => /PREWARM/i.test(k));
  if (!variable) return undefined;
  const schema = shape[variable]!;
  const accepts = (values: string[]) => values.find((v) => schema.safeParse(v).success);
  const on = accepts(['true', '1', 'yes', 'on']);
  const off = accepts(['false', '0', 'no', 'off']);
  return on && off ? { variable, on, off } : undefined;
}

/**
 * Settings of the service that would change what is measured, applied only if src/config knows them (the
 * service is being developed alongside). Recorded in the results.
 */
function serviceSettings(): Record<string, string> {
  const shape = EnvSchema.shape as Record<string, unknown>;
  const settings: Record<string, string> = {};
  // Its default cap (16) refuses a 17th chat answering at once: the concurrency phase needs 50 live agents.
  if ('MAX_LIVE_AGENTS' in shape) settings.MAX_LIVE_AGENTS = String(Math.max(...PLAN.levels) + 14);
  // Per-client limits would answer the load generator with 429s: all the load comes from one loopback client.
  for (const limit of ['RATE_LIMIT_PER_MINUTE', 'MESSAGES_PER_MINUTE', 'MAX_CHATS_PER_USER']) {
    if (limit in shape) settings[limit] = '0';
  }
  // BENCH_SERVICE_ENV=KEY=VALUE,KEY=VALUE: try a setting of the service (recorded in the results like the others).
  for (const pair of (process.env.BENCH_SERVICE_ENV ?? '').split(',').filter(Boolean)) {
    const [key, ...value] = pair.split('=');
    if (key) settings[key] = value.join('=');
  }
  return settings;
}

type Fake = Awaited<ReturnType<typeof startFake>>;

/**
 * Scenarios 1-3, the service and the bare SDK side by side: both are up for the whole phase and take turns run by
 * run (latency), sample by sample (first delta) and level by level (concurrency), so that other work on a shared
 * machine falls on both alike. The service runs with prewarm off (if it has the setting): its cold column is a
 * real cold start; a second service with prewarm on joins for the first-delta samples only.
 */
async function streamingPhase(
  tempRoot: string,
  fake: Fake,
  benchSkewMs: number,
  env: Record<string, string>,
  prewarm: { variable: string; on: string; off: string } | undefined,
) {
  const serviceEnv = { ...env, ...(prewarm ? { [prewarm.variable]: prewarm.off } : {}) };
  const service = await ServiceProcess.start({ dataDir: path.join(tempRoot, 'service'), fakeUrl: fake.url, env: serviceEnv });
  log(`service pid ${service.pid} on ${service.url} (${Object.entries(serviceEnv).map(([k, v]) => `${k}=${v}`).join(' ') || 'defaults'})`);
  const relay = await ServiceProcess.start({ dataDir: path.join(tempRoot, 'relay'), fakeUrl: fake.url, script: 'bench/relay-server.ts' });
  log(`minimal relay pid ${relay.pid} on ${relay.url}`);
  let worker: BareWorker | undefined;
  let shutdownMs = 0;
  let stopped = false;
  const stopService = async () => {
    if (stopped) return;
    stopped = true;
    // Measured: SIGTERM → exit with the last concurrency level's agents still alive (idle), what a deploy does.
    const result = await service.stop();
    shutdownMs = round(result.exitMs, 0);
    if (result.forced) log('WARNING: the service did not exit within 20 s of SIGTERM: killed');
  };
  const results = await withCleanup(
    async () => {
      worker = await BareWorker.start(fake.url, path.join(tempRoot, 'bare'));
      const bareOffsetMs = await worker.clockOffsetMs();
      const ours = serviceTarget(service, benchSkewMs);
      const bare = bareTarget(worker, fake.clockOffsetMs - bareOffsetMs);
      const minimal = serviceTarget(relay, benchSkewMs, { name: 'relay' });
      log(`bare SDK worker pid ${worker.pid}`);

      log('1. per-delta latency');
      const [latencyService, latencyBare, latencyRelay] = await deltaLatency([ours, bare, minimal], { runs: PLAN.latencyRuns, n: 200, ms: 5 });
      log(`   service p50 ${latencyService!.summary.p50} p99 ${latencyService!.summary.p99} ms; bare p50 ${latencyBare!.summary.p50} p99 ${latencyBare!.summary.p99} ms; relay p50 ${latencyRelay!.summary.p50} p99 ${latencyRelay!.summary.p99} ms`);

      log(`2. time to first delta${prewarm ? ` (and a service with ${prewarm.variable}=${prewarm.on})` : ''}`);
      const prewarmService = prewarm
        ? await ServiceProcess.start({
            dataDir: path.join(tempRoot, 'service-prewarm'),
            fakeUrl: fake.url,
            env: { ...env, [prewarm.variable]: prewarm.on },
          })
        : undefined;
      const firstDelta = await withCleanup(
        () =>
          timeToFirstDelta(
            [
              { target: ours, withWarm: true },
              { target: bare, withWarm: true },
              ...(prewarmService
                ? [{ target: serviceTarget(prewarmService, benchSkewMs, { subscribeFirstMs: PREWARM_THINK_MS }), withWarm: false }]
                : []),
            ],
            { samples: PLAN.firstDeltaSamples },
          ),
        async () => {
          await prewarmService?.stop();
        },
      );

      log('3. concurrency');
      const concService: ConcurrencyLevel[] = [];
      const concBare: ConcurrencyLevel[] = [];
      const concRelay: ConcurrencyLevel[] = [];
      const sides = { service: ours, bare, relay: minimal } as const;
      const results = { service: concService, bare: concBare, relay: concRelay } as const;
      for (const [i, chats] of PLAN.levels.entries()) {
        // Alternating order, so that other work on the machine falls on every side alike.
        const order = i % 2 === 0 ? (['service', 'bare', 'relay'] as const) : (['relay', 'bare', 'service'] as const);
        for (const side of order) {
          const level = await concurrencyLevel(sides[side], chats, { n: 100, ms: 20 });
          results[side].push(level);
          log(`   ${side}: ${chats} chats p50 ${level.summary.p50} p99 ${level.summary.p99} ms, ${level.failures.length} failed`);
        }
      }

      const sat = PLAN.saturated;
      log(`3b. saturated: ${sat.chats} chats × /stamp ${sat.n} ${sat.ms}, the clients at raised and at normal priority`);
      const saturated: SaturatedRun[] = [];
      for (const raisePriority of [true, false]) {
        for (const side of raisePriority ? (['service', 'bare', 'relay'] as const) : (['relay', 'bare', 'service'] as const)) {
          // The service's very last level keeps its agents alive for the shutdown figure.
          const leaveOpen = side === 'service' && !raisePriority;
          const level = await concurrencyLevel(sides[side], sat.chats, { n: sat.n, ms: sat.ms, raisePriority, leaveOpen });
          saturated.push({ side, raisedPriority: raisePriority, level });
          log(`   ${side} (client nice ${level.clientNice}): p50 ${level.summary.p50} p99 ${level.summary.p99} ms, ${level.failures.length} failed`);
        }
      }
      await stopService();
      return {
        bareOffsetMs,
        latency: { service: latencyService!, bare: latencyBare!, relay: latencyRelay! },
        firstDelta: { service: firstDelta[0]!, bare: firstDelta[1]!, prewarm: firstDelta[2] },
        concurrency: { service: concService, bare: concBare, relay: concRelay },
        saturated,
      };
    },
    async () => {
      await stopService();
      await worker?.stop();
      await relay.stop();
      await assertNoAgents(tempRoot, 'after the service and the bare SDK worker stopped');
    },
  );
  return { ...results, shutdownMs };
}

/** REST under load: a database seeded before the service starts, then autocannon on two GET routes. */
async function restPhase(tempRoot: string, fake: Fake, env: Record<string, string>) {
  const restDir = path.join(tempRoot, 'rest');
  fs.mkdirSync(restDir, { recursive: true });
  log('REST: seeding 10,000 chats, one with 1,000 messages');
  const seed = await seedDatabase(restDir, { chats: 10_000, messages: 1_000 });
  log(`REST: seeded in ${seed.seedMs} ms`);
  const service = await ServiceProcess.start({ dataDir: restDir, fakeUrl: fake.url, env });
  return withCleanup(
    async () => {
      log('REST: GET history of 1,000 messages');
      const history = await loadTest(service.url, `/api/chats/${seed.historyChatId}/messages`, { durationS: PLAN.restS });
      log(`REST: ${history.requestsPerSec.mean} req/s; GET /api/chats (10,000 chats)`);
      const list = await loadTest(service.url, '/api/chats', { durationS: PLAN.restS });
      log(`REST: ${list.requestsPerSec.mean} req/s`);
      return { seed, history, list };
    },
    () => service.stop(),
  );
}

async function main(): Promise<void> {
  const startedAt = new Date();
  const tempRoot = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'agent-chat-bench-')));
  log(`temp folder ${tempRoot}${QUICK ? ' (QUICK smoke run)' : ''}`);
  const machine = machineInfo();
  const othersBefore = allAgentProcesses();
  if (othersBefore.length > 0) log(`note: ${othersBefore.length} agent CLI process(es) of someone else are running: they share the CPU`);

  const quiet = await waitForQuiet();
  const fake = await startFake();
  let ok = false;
  try {
    const benchOffsetMs = clockOffsetMs();
    const serviceSkewMs = fake.clockOffsetMs - benchOffsetMs;
    log(`fake model at ${fake.url}; clock skew fake→bench ${serviceSkewMs.toFixed(4)} ms`);

    const prewarm = findPrewarmSetting();
    const settings = serviceSettings();

    log(`5. start-up: ${PLAN.startupRuns} counted starts`);
    const startup = await measureStartup(path.join(tempRoot, 'startup'), fake.url, { runs: PLAN.startupRuns, env: settings });
    log(`   median ${startup.medianStartupMs} ms`);

    const streaming = await streamingPhase(tempRoot, fake, serviceSkewMs, settings, prewarm);
    const servicePrewarm: BenchResults['firstDelta']['servicePrewarm'] =
      prewarm && streaming.firstDelta.prewarm
        ? { ...streaming.firstDelta.prewarm, variable: prewarm.variable, value: prewarm.on, thinkMs: PREWARM_THINK_MS }
        : null;
    const prewarmNote = prewarm
      ? `Prewarm column: ${prewarm.variable}=${prewarm.on}; the client subscribes to the new chat, waits ` +
        `${PREWARM_THINK_MS} ms (the user typing), then sends. The other service figures ran with ${prewarm.variable}=${prewarm.off}.`
      : "Prewarm: n/a — src/config has no prewarm setting (no variable like AGENT_PREWARM): a chat's agent starts on its first message.";

    const rest = await restPhase(tempRoot, fake, settings);

    let webClient: BenchResults['webClient'] = null;
    if (chromiumPresent()) {
      log('6. web client in headless Chromium: first-load size, a 1,000-message chat, streaming');
      webClient = await measureWebClient(path.join(tempRoot, 'web'), fake.url, QUICK ? { renderRuns: 2, deltas: 200 } : {});
      log(`   ${webClient.firstLoad.totalGzipBytes} B gzip; 1,000 messages in ${webClient.render1000.medianMs} ms`);
    } else log('6. web client: SKIPPED, no Chromium at /usr/bin/chromium (CHROMIUM_PATH)');

    await fake.stop();
    const left = ourAgentProcesses(tempRoot);
    const results: BenchResults = {
      date: localDate(startedAt),
      startedAt: startedAt.toISOString(),
      durationS: round((performance.now() - t0) / 1000, 1),
      quick: QUICK,
      machine: { ...machine, busyBeforeRunPct: quiet.busyPct, waitedForQuietS: quiet.waitedS },
      serviceSettings: { ...settings, ...(prewarm ? { [prewarm.variable]: prewarm.off } : {}), LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info' },
      clock: {
        fakeOffsetMs: fake.clockOffsetMs,
        benchOffsetMs,
        bareOffsetMs: streaming.bareOffsetMs,
        serviceSkewMs: round(serviceSkewMs, 6),
        bareSkewMs: round(fake.clockOffsetMs - streaming.bareOffsetMs, 6),
      },
      startup,
      latency: streaming.latency,
      firstDelta: { service: streaming.firstDelta.service, bare: streaming.firstDelta.bare, servicePrewarm, prewarmNote },
      concurrency: { ...streaming.concurrency, serviceShutdownMs: streaming.shutdownMs },
      saturated: streaming.saturated,
      rest,
      webClient,
      cleanup: { ourAgentProcessesLeft: left, otherAgentProcesses: allAgentProcesses().filter((p) => !left.includes(p)) },
    };
    const file = path.join(REPO_ROOT, 'bench/results', `${results.date}${QUICK ? '-quick' : ''}.json`);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, `${compactJson(results)}\n`);
    process.stdout.write(`\n${renderTables(results)}\n\n`);
    log(`raw figures: ${path.relative(REPO_ROOT, file)}`);
    log(
      left.length === 0
        ? `no agent process of this run is left (pgrep -f claude-agent-sdk: ${results.cleanup.otherAgentProcesses.length} of other sessions)`
        : `WARNING: agent processes left: ${left.join(', ')}`,
    );
    log(`done in ${results.durationS} s`);
    ok = left.length === 0;
  } finally {
    await fake.stop().catch(() => undefined);
    killAllNow();
    if (ok && process.env.BENCH_KEEP !== '1') fs.rmSync(tempRoot, { recursive: true, force: true });
    else log(`temp folder kept: ${tempRoot} (service logs: */service-*.log)`);
  }
  if (!ok) process.exitCode = 1;
}

/**
 * Waits (up to BENCH_WAIT_QUIET_S, default 60 s) for the machine to be mostly idle: on 2 cores, another job (a
 * test suite, a build) would change every figure. Proceeds anyway after that, with a warning kept in the results.
 */
async function waitForQuiet(): Promise<{ busyPct: number; waitedS: number }> {
  const limitS = Number(process.env.BENCH_WAIT_QUIET_S ?? 60);
  const started = Date.now();
  for (;;) {
    const busy = await machineBusyPct(2_000);
    const result = { busyPct: round(busy, 1), waitedS: round((Date.now() - started) / 1000, 0) };
    if (busy < QUIET_MACHINE_PCT) {
      log(`machine ${busy.toFixed(0)}% busy before the run: quiet enough`);
      return result;
    }
    if (Date.now() - started > limitS * 1_000) {
      log(`WARNING: the machine is ${busy.toFixed(0)}% busy with other work (over ${limitS} s of waiting): figures will be noisy`);
      return result;
    }
    log(`machine ${busy.toFixed(0)}% busy with other work: waiting for it to calm down`);
  }
}

/** Fails the run if an agent CLI of ours is still alive after its owner stopped (an orphan would skew what follows). */
async function assertNoAgents(tempRoot: string, when: string): Promise<void> {
  try {
    await waitUntil(() => (ourAgentProcesses(tempRoot).length === 0 ? true : undefined), {
      timeoutMs: 15_000,
      intervalMs: 100,
      what: `agent CLI processes to exit ${when}`,
    });
  } catch (err) {
    throw new Error(`${(err as Error).message}; still running: pids ${ourAgentProcesses(tempRoot).join(', ')}`);
  }
  // A moment for the machine to go quiet before the next phase.
  await sleep(500);
}

const localDate = (d: Date): string =>
  `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;

/** Indented JSON, but arrays of numbers (the raw samples) on one line each: thousands of values stay readable. */
const compactJson = (value: unknown): string =>
  JSON.stringify(value, null, 2).replace(/\[\s*(-?[\d.e+-]+(?:,\s*-?[\d.e+-]+)*)\s*\]/g, (_, inner: string) => `[${inner.split(/,\s*/).join(',')}]`);

const watchdog = setTimeout(() => {
  log(`ABORT: the run took longer than ${WATCHDOG_S} s; killing everything it started`);
  killAllNow();
  process.exit(1);
}, WATCHDOG_S * 1_000);
watchdog.unref();

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    log(`${signal}: killing everything this run started`);
    killAllNow();
    process.exit(130);
  });
}

main().then(
  () => clearTimeout(watchdog),
  (err: unknown) => {
    log(`FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    killAllNow();
    process.exitCode = 1;
  },
);
