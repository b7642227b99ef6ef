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
 *   4.   REST: autocannon against a seeded database (10,000 chats, one with 1,000 messages), on SQLite and Postgres
 *   7.   the cross-node path: two nodes on Postgres and Redis, a socket on the agent's node and one on the other
 *   8.   stored data at scale: the list, history pages and search on 10,000 chats / 1,000,000 messages against the
 *        same on 1,000 messages, on SQLite and Postgres (the seeded databases are built once per machine and reused)
 *
 * Postgres (phases 4, 7, 8) and Redis (7) are the tests' own: TEST_DATABASE_URL names the Postgres server (an admin
 * URL: the benchmark creates and drops databases on it), TEST_REDIS_URL the Redis (default redis://127.0.0.1:6379).
 * Without TEST_DATABASE_URL those parts are skipped, and the tables say so.
 *
 * Env: BENCH_QUICK=1 a smoke run with few samples (figures not comparable); BENCH_LEVELS=1,10 other concurrency
 * levels; BENCH_KEEP=1 keeps the temp folder; BENCH_LOG_LEVEL the service's LOG_LEVEL (default `info`, its own);
 * BENCH_WAIT_QUIET_S how long to wait for other work on the machine to stop (default 60); BENCH_SERVICE_ENV=K=V,...
 * settings of the service to try; BENCH_PHASES=1,2,3,3b,4,5,6,7,8 (default all) runs only those.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { z } from 'zod';
import { EnvSchema, type DatabaseTarget } from '../src/config/config.js';
import { BareWorker } from './lib/bare-sdk.js';
import { killAllNow, REPO_ROOT } from './lib/children.js';
import { clockOffsetMs } from './lib/clock.js';
import { startFake } from './lib/fake.js';
import { machineInfo } from './lib/machine.js';
import { allAgentProcesses, machineBusyPct, ourAgentProcesses, QUIET_MACHINE_PCT } from './lib/proc.js';
import { renderTables, type BenchResults, type DataScaleRun, type RestRun } from './lib/report.js';
import { crossNodePhase, type CrossNodeResult } from './lib/cross-node.js';
import { LARGE, postgresScaleDatabase, scaleReads, SMALL, sqliteScaleDatabase, timeReads, type SeededScale } from './lib/data-scale.js';
import { createDatabase } from './lib/postgres.js';
import { loadTest, seedDatabase } from './lib/rest.js';
import {
  concurrencyLevel,
  deltaLatency,
  warmUp,
  timeToFirstDelta,
  type ConcurrencyLevel,
  type FirstDeltaResult,
  type LatencyResult,
  type SaturatedRun,
} from './lib/scenarios.js';
import { ServiceProcess } from './lib/service.js';
import { measureStartup, type StartupResult } from './lib/startup.js';
import { bareTarget, serviceTarget } from './lib/targets.js';
import { round, sleep, waitUntil, withCleanup } from './lib/util.js';
import { chromiumPresent, measureWebClient } from './lib/web-client.js';

const QUICK = process.env.BENCH_QUICK === '1';
const ALL_PHASES = ['1', '2', '3', '3b', '4', '5', '6', '7', '8'] as const;
const PHASES = new Set((process.env.BENCH_PHASES ?? ALL_PHASES.join(',')).split(',').map((p) => p.trim()));
for (const p of PHASES) if (!(ALL_PHASES as readonly string[]).includes(p)) throw new Error(`BENCH_PHASES: no phase ${p} (${ALL_PHASES.join(',')})`);
const runs = (phase: (typeof ALL_PHASES)[number]): boolean => PHASES.has(phase);
const POSTGRES_ADMIN_URL = process.env.TEST_DATABASE_URL || null;
const REDIS_URL = process.env.TEST_REDIS_URL || 'redis://127.0.0.1:6379';
const PLAN = {
  ...(QUICK
    ? { startupRuns: 2, latencyRuns: 2, firstDeltaSamples: 2, levels: [1, 5], restS: 3 }
    : // 7 first-delta samples: a cold CLI start varies by ±100 ms from one start to the next.
      { startupRuns: 5, latencyRuns: 5, firstDeltaSamples: 7, levels: [1, 10, 25, 50], restS: 10 }),
  /** Before scenarios 1-3b, on every side: chats answering at once × short answers each (lib/scenarios.ts warmUp). */
  warmUp: QUICK ? { chats: 2, turnsPerChat: 10 } : { chats: 10, turnsPerChat: 60 },
  /** 3b. The saturated case at a chat-like pace: 50 chats × 20 deltas/s (40 deltas 50 ms apart). */
  saturated: QUICK ? { chats: 5, n: 10, ms: 50 } : { chats: 50, n: 40, ms: 50 },
  /** 7. The issue's case: 10 chats on loopback Redis, 100 deltas 20 ms apart each. */
  crossNode: QUICK ? { chats: 3, n: 20, ms: 20 } : { chats: 10, n: 100, ms: 20 },
  /** 8. Timed requests per read and database (after 5 untimed). */
  scaleSamples: QUICK ? 10 : 40,
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
  // The agents' CPU priority is the service's on every side (AGENT_NICE, bench/lib/agent-options.ts).
  const agentNice = env.AGENT_NICE;
  const relay = await ServiceProcess.start({
    dataDir: path.join(tempRoot, 'relay'),
    fakeUrl: fake.url,
    script: 'bench/relay-server.ts',
    ...(agentNice !== undefined ? { env: { AGENT_NICE: agentNice } } : {}),
  });
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
      const bareWorker = await BareWorker.start(fake.url, path.join(tempRoot, 'bare'), agentNice);
      worker = bareWorker;
      const bareOffsetMs = await bareWorker.clockOffsetMs();
      const bareSkewMs = fake.clockOffsetMs - bareOffsetMs;
      const ours = serviceTarget(service, benchSkewMs);
      const bare = bareTarget(bareWorker, bareSkewMs);
      const minimal = serviceTarget(relay, benchSkewMs, { name: 'relay' });
      log(`bare SDK worker pid ${worker.pid}`);

      const { chats: warmChats, turnsPerChat } = PLAN.warmUp;
      log(`warm-up: ${warmChats} chats × ${turnsPerChat} answers on each side, not counted`);
      const warm = await warmUp([ours, bare, minimal], PLAN.warmUp);
      log(`   ${Object.entries(warm.seconds).map(([side, s]) => `${side} ${s} s`).join(', ')}`);

      let latency: { service: LatencyResult; bare: LatencyResult; relay: LatencyResult } | null = null;
      if (runs('1')) {
        log('1. per-delta latency');
        const [latencyService, latencyBare, latencyRelay] = await deltaLatency([ours, bare, minimal], { runs: PLAN.latencyRuns, n: 200, ms: 5 });
        log(`   service p50 ${latencyService!.summary.p50} p99 ${latencyService!.summary.p99} ms; bare p50 ${latencyBare!.summary.p50} p99 ${latencyBare!.summary.p99} ms; relay p50 ${latencyRelay!.summary.p50} p99 ${latencyRelay!.summary.p99} ms`);
        latency = { service: latencyService!, bare: latencyBare!, relay: latencyRelay! };
      }

      let firstDelta: FirstDeltaResult[] | null = null;
      if (runs('2')) {
        log(`2. time to first delta${prewarm ? ` (and a service with ${prewarm.variable}=${prewarm.on})` : ''}`);
        const prewarmService = prewarm
          ? await ServiceProcess.start({
              dataDir: path.join(tempRoot, 'service-prewarm'),
              fakeUrl: fake.url,
              env: { ...env, [prewarm.variable]: prewarm.on },
            })
          : undefined;
        firstDelta = await withCleanup(
          () =>
            timeToFirstDelta(
              [
                { target: ours, withWarm: true },
                { target: bare, withWarm: true },
                // What the WebSocket hop alone adds to a first delta, for comparison.
                { target: minimal, withWarm: true },
                ...(prewarmService
                  ? [
                      { target: serviceTarget(prewarmService, benchSkewMs, { subscribeFirstMs: PREWARM_THINK_MS }), withWarm: false },
                      // The same for the bare SDK: what a prewarmed CLI's first answer costs without any service.
                      { target: bareTarget(bareWorker, bareSkewMs, { openFirstMs: PREWARM_THINK_MS }), withWarm: false },
                    ]
                  : []),
              ],
              { samples: PLAN.firstDeltaSamples },
            ),
          async () => {
            await prewarmService?.stop();
          },
        );
      }

      const concService: ConcurrencyLevel[] = [];
      const concBare: ConcurrencyLevel[] = [];
      const concRelay: ConcurrencyLevel[] = [];
      const sides = { service: ours, bare, relay: minimal } as const;
      if (runs('3')) {
        log('3. concurrency');
        const results = { service: concService, bare: concBare, relay: concRelay } as const;
        for (const [i, chats] of PLAN.levels.entries()) {
          // Alternating order, so that other work on the machine falls on every side alike.
          const order = i % 2 === 0 ? (['service', 'bare', 'relay'] as const) : (['relay', 'bare', 'service'] as const);
          for (const side of order) {
            // Without 3b, the service's very last level keeps its agents alive for the shutdown figure.
            const leaveOpen = !runs('3b') && side === 'service' && i === PLAN.levels.length - 1;
            const level = await concurrencyLevel(sides[side], chats, { n: 100, ms: 20, leaveOpen });
            results[side].push(level);
            log(`   ${side}: ${chats} chats p50 ${level.summary.p50} p99 ${level.summary.p99} ms, ${level.failures.length} failed`);
          }
        }
      }

      const saturated: SaturatedRun[] = [];
      if (runs('3b')) {
        const sat = PLAN.saturated;
        log(`3b. saturated: ${sat.chats} chats × /stamp ${sat.n} ${sat.ms}, the clients at raised and at normal priority`);
        for (const raisePriority of [true, false]) {
          for (const side of raisePriority ? (['service', 'bare', 'relay'] as const) : (['relay', 'bare', 'service'] as const)) {
            // The service's very last level keeps its agents alive for the shutdown figure.
            const leaveOpen = side === 'service' && !raisePriority;
            const level = await concurrencyLevel(sides[side], sat.chats, { n: sat.n, ms: sat.ms, raisePriority, leaveOpen });
            saturated.push({ side, raisedPriority: raisePriority, level });
            log(`   ${side} (client nice ${level.clientNice}): p50 ${level.summary.p50} p99 ${level.summary.p99} ms, ${level.failures.length} failed`);
          }
        }
      }
      await stopService();
      return {
        bareOffsetMs,
        warmUp: warm,
        latency,
        firstDelta: firstDelta ? { service: firstDelta[0]!, bare: firstDelta[1]!, relay: firstDelta[2]!, prewarm: firstDelta[3], barePrewarm: firstDelta[4] } : null,
        concurrency: runs('3') ? { service: concService, bare: concBare, relay: concRelay } : null,
        saturated: runs('3b') ? saturated : null,
      };
    },
    async () => {
      await stopService();
      await worker?.stop();
      await relay.stop();
      await assertNoAgents(tempRoot, 'after the service and the bare SDK worker stopped');
    },
  );
  // The last level of 3b (or of 3 without it) left its agents alive for the shutdown figure.
  const agentsAliveAtShutdown = runs('3b') ? PLAN.saturated.chats : runs('3') ? PLAN.levels.at(-1)! : 0;
  return { ...results, shutdownMs, agentsAliveAtShutdown };
}

/** REST under load: a database seeded before the service starts, then autocannon on two GET routes; per store. */
async function restPhase(tempRoot: string, fake: Fake, env: Record<string, string>): Promise<RestRun[]> {
  const out: RestRun[] = [];
  for (const dialect of POSTGRES_ADMIN_URL ? (['sqlite', 'postgres'] as const) : (['sqlite'] as const)) {
    const restDir = path.join(tempRoot, `rest-${dialect}`);
    fs.mkdirSync(restDir, { recursive: true });
    const pgDb = dialect === 'postgres' ? await createDatabase(POSTGRES_ADMIN_URL!, `bench_rest_${process.pid}_${Date.now()}`) : undefined;
    const target: DatabaseTarget = pgDb ? { kind: 'postgres', url: pgDb.url } : { kind: 'sqlite', file: path.join(restDir, 'chat.db') };
    try {
      log(`4. REST on ${dialect}: seeding 10,000 chats, one with 1,000 messages`);
      const seed = await seedDatabase(target, { chats: 10_000, messages: 1_000 });
      log(`   seeded in ${seed.seedMs} ms`);
      const service = await ServiceProcess.start({ dataDir: restDir, fakeUrl: fake.url, env: { ...env, ...(pgDb ? { DATABASE_URL: pgDb.url } : {}) } });
      out.push(
        await withCleanup(
          async () => {
            const history = await loadTest(service.url, `/api/chats/${seed.historyChatId}/messages`, { durationS: PLAN.restS });
            log(`   GET history of 1,000 messages: ${history.requestsPerSec.mean} req/s`);
            const list = await loadTest(service.url, '/api/chats', { durationS: PLAN.restS });
            log(`   GET /api/chats (10,000 chats): ${list.requestsPerSec.mean} req/s`);
            return { dialect, seed, history, list };
          },
          () => service.stop(),
        ),
      );
    } finally {
      await pgDb?.drop();
    }
  }
  return out;
}

/**
 * 8. The same reads on a database of 1,000 messages and on one of 10,000 chats / 1,000,000 messages, both services
 * up, the requests alternating between them; per store.
 */
async function dataScalePhase(tempRoot: string, fake: Fake, env: Record<string, string>): Promise<DataScaleRun[]> {
  const out: DataScaleRun[] = [];
  for (const dialect of POSTGRES_ADMIN_URL ? (['sqlite', 'postgres'] as const) : (['sqlite'] as const)) {
    const made: { seeded: SeededScale & { reused: boolean }; drop?: () => Promise<void>; env: Record<string, string> }[] = [];
    const services: ServiceProcess[] = [];
    try {
      for (const shape of [SMALL, LARGE]) {
        const label = `${shape.chats}-${shape.messages}`;
        log(`8. ${dialect}: a database of ${shape.chats.toLocaleString('en')} chats / ${shape.messages.toLocaleString('en')} messages`);
        const started = performance.now();
        if (dialect === 'sqlite') {
          const dir = path.join(tempRoot, `scale-sqlite-${label}`);
          fs.mkdirSync(dir, { recursive: true });
          const seeded = await sqliteScaleDatabase(path.join(dir, 'chat.db'), shape);
          made.push({ seeded, env: { DATABASE_URL: `sqlite:${path.join(dir, 'chat.db')}` } });
        } else {
          const db = await postgresScaleDatabase(POSTGRES_ADMIN_URL!, shape, `bench_scale_run_${process.pid}_${label}`);
          made.push({ seeded: db, drop: db.drop, env: { DATABASE_URL: db.url } });
        }
        log(`   ${made.at(-1)!.seeded.reused ? 'copied from the one an earlier run seeded' : 'seeded'} in ${round((performance.now() - started) / 1000, 1)} s`);
      }
      for (const [i, m] of made.entries()) {
        services.push(await ServiceProcess.start({ dataDir: path.join(tempRoot, `scale-${dialect}-service-${i}`), fakeUrl: fake.url, env: { ...env, ...m.env } }));
      }
      const reads: DataScaleRun['reads'] = [];
      const [small, large] = made.map((m) => scaleReads(m.seeded));
      for (const [k, read] of small!.entries()) {
        const [onSmall, onLarge] = await timeReads(
          services.map((x) => x.url),
          [read.route, large![k]!.route],
          { samples: PLAN.scaleSamples },
        );
        reads.push({ name: read.name, small: onSmall!, large: onLarge! });
        log(`   ${read.name}: ${onSmall!.medianMs} → ${onLarge!.medianMs} ms (median)`);
      }
      out.push({ dialect, small: made[0]!.seeded, large: made[1]!.seeded, reads });
    } finally {
      for (const service of services) await service.stop();
      for (const m of made) await m.drop?.();
    }
  }
  return out;
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

    const skipped: string[] = [];
    if (!POSTGRES_ADMIN_URL) skipped.push('Postgres (REST, cross-node, data at scale): TEST_DATABASE_URL is not set');

    let startup: StartupResult | null = null;
    if (runs('5')) {
      log(`5. start-up: ${PLAN.startupRuns} counted starts`);
      startup = await measureStartup(path.join(tempRoot, 'startup'), fake.url, { runs: PLAN.startupRuns, env: settings });
      log(`   median ${startup.medianStartupMs} ms`);
    }

    const streaming = ['1', '2', '3', '3b'].some((p) => PHASES.has(p)) ? await streamingPhase(tempRoot, fake, serviceSkewMs, settings, prewarm) : null;
    const servicePrewarm: NonNullable<BenchResults['firstDelta']>['servicePrewarm'] =
      prewarm && streaming?.firstDelta?.prewarm
        ? { ...streaming.firstDelta.prewarm, variable: prewarm.variable, value: prewarm.on, thinkMs: PREWARM_THINK_MS }
        : null;
    const prewarmNote = prewarm
      ? `Prewarm column: ${prewarm.variable}=${prewarm.on}; the client subscribes to the new chat, waits ` +
        `${PREWARM_THINK_MS} ms (the user typing), then sends. The other service figures ran with ${prewarm.variable}=${prewarm.off}. ` +
        `Bare SDK: query() starts without a message, its CLI initializes (initializationResult()), and the message follows ${PREWARM_THINK_MS} ms later.`
      : "Prewarm: n/a — src/config has no prewarm setting (no variable like AGENT_PREWARM): a chat's agent starts on its first message.";

    const rest = runs('4') ? await restPhase(tempRoot, fake, settings) : null;

    let webClient: BenchResults['webClient'] = null;
    if (runs('6') && chromiumPresent()) {
      log('6. web client in headless Chromium: first-load size, a 1,000-message chat, streaming');
      webClient = await measureWebClient(path.join(tempRoot, 'web'), fake.url, QUICK ? { renderRuns: 2, deltas: 200 } : {});
      log(`   ${webClient.firstLoad.totalGzipBytes} B gzip; 1,000 messages in ${webClient.render1000.medianMs} ms`);
    } else if (runs('6')) {
      log('6. web client: SKIPPED, no Chromium at /usr/bin/chromium (CHROMIUM_PATH)');
      skipped.push('6. web client: no Chromium');
    }

    let crossNode: CrossNodeResult | null = null;
    if (runs('7') && POSTGRES_ADMIN_URL) {
      const c = PLAN.crossNode;
      log(`7. cross-node: ${c.chats} chats × /stamp ${c.n} ${c.ms}; one node, then two on Postgres and Redis (${REDIS_URL})`);
      crossNode = await crossNodePhase({ tempRoot, fakeUrl: fake.url, env: settings, postgresAdminUrl: POSTGRES_ADMIN_URL, redisUrl: REDIS_URL, ...c, skewMs: serviceSkewMs });
      log(`   p50: one node ${crossNode.single.p50}, agent's node ${crossNode.sameNode.p50}, other node ${crossNode.otherNode.p50} ms; ${crossNode.failures.length} failed`);
      await assertNoAgents(tempRoot, 'after the cross-node phase');
    }

    const dataScale = runs('8') ? await dataScalePhase(tempRoot, fake, settings) : null;

    await fake.stop();
    const left = ourAgentProcesses(tempRoot);
    const results: BenchResults = {
      date: localDate(startedAt),
      startedAt: startedAt.toISOString(),
      durationS: round((performance.now() - t0) / 1000, 1),
      quick: QUICK,
      phases: [...PHASES],
      skipped,
      machine: { ...machine, busyBeforeRunPct: quiet.busyPct, waitedForQuietS: quiet.waitedS },
      serviceSettings: { ...settings, ...(prewarm ? { [prewarm.variable]: prewarm.off } : {}), LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info' },
      clock: {
        fakeOffsetMs: fake.clockOffsetMs,
        benchOffsetMs,
        bareOffsetMs: streaming?.bareOffsetMs ?? null,
        serviceSkewMs: round(serviceSkewMs, 6),
        bareSkewMs: streaming ? round(fake.clockOffsetMs - streaming.bareOffsetMs, 6) : null,
      },
      startup,
      warmUp: streaming?.warmUp ?? null,
      latency: streaming?.latency ?? null,
      firstDelta: streaming?.firstDelta
        ? {
            service: streaming.firstDelta.service,
            bare: streaming.firstDelta.bare,
            relay: streaming.firstDelta.relay,
            servicePrewarm,
            barePrewarm: streaming.firstDelta.barePrewarm ?? null,
            prewarmNote,
          }
        : null,
      concurrency: streaming?.concurrency ?? null,
      saturated: streaming?.saturated ?? null,
      serviceShutdown: streaming ? { ms: streaming.shutdownMs, agentsAlive: streaming.agentsAliveAtShutdown } : null,
      rest,
      webClient,
      crossNode,
      dataScale,
      cleanup: { ourAgentProcessesLeft: left, otherAgentProcesses: allAgentProcesses().filter((p) => !left.includes(p)) },
    };
    // A run of some phases only writes a file of its own: it must not replace the day's full run.
    const partial = PHASES.size < ALL_PHASES.length ? `-phases-${[...PHASES].join('-')}` : '';
    const file = path.join(REPO_ROOT, 'bench/results', `${results.date}${partial}${QUICK ? '-quick' : ''}.json`);
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
