// Randomized interrupt stress against the real service + SDK/CLI + the fake model (see test/stress/stress-runner.ts).
//   npm run stress -- --ops 5000 --seed 7 [--chats 4 --sockets 3] [--clear] [--env KEY=VALUE ...]
//   npm run stress -- --model-faults --env AGENT_API_TIMEOUT_MS=2000 ...   (the fake model's fault scripts mixed in)
//   TEST_DATABASE_URL=postgres://... npm run stress -- --nodes 3 --ops 300 --seed 1
//        (several node processes on one new Postgres database and one Redis key prefix, TEST_REDIS_URL or the local
//        Redis; sockets reconnect to random nodes and nodes are killed -9 and started again)
//        [--node-logs DIR]: each node's log kept in DIR/<node id>.log
//   npm run stress:deep -- [--seeds 10] [--first-seed 1] [--ops 10000] [--profiles replace,pressure,faults,plain]
//                          [--record bench/results/stress-deep.jsonl]
// One run prints its figures and every violation; the deep mode runs one fresh service per seed, rotating through
// the profiles below, prints a line per seed and a summary. Both exit 1 on any violation.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startAgentServer } from '../test/helpers/agent-server.js';
import { runStress, STRESS_SERVER_ENV, type StressFigures } from '../test/stress/stress-runner.js';
import { serviceTarget, startClusterTarget, type StressTarget } from '../test/stress/stress-target.js';

const { values } = parseArgs({
  options: {
    ops: { type: 'string' },
    seed: { type: 'string', default: String(Date.now() % 100_000) },
    chats: { type: 'string' },
    sockets: { type: 'string' },
    /** Several node processes (a cluster on Postgres and Redis) instead of one in-process service. */
    nodes: { type: 'string', default: '1' },
    'settle-timeout': { type: 'string', default: '120000' },
    /** A frame error code expected under the settings, e.g. agent_busy with --env MAX_LIVE_AGENTS=2 (repeatable). */
    'allow-error': { type: 'string', multiple: true, default: [] },
    /** Also send clear_history frames. */
    clear: { type: 'boolean', default: false },
    /** Mix in the fake model's fault scripts and storms (set AGENT_API_TIMEOUT_MS low: stalls wait for it). */
    'model-faults': { type: 'boolean', default: false },
    /** Extra service settings, e.g. --env AGENT_INTERRUPT_TIMEOUT_MS=100 (repeatable). */
    env: { type: 'string', multiple: true, default: [] },
    /** With --nodes: keep each node's log (LOG_LEVEL info unless --env sets it) in this folder, <node id>.log. */
    'node-logs': { type: 'string' },
    /** Deep mode: many seeds, one fresh service each, over the profiles. */
    deep: { type: 'boolean', default: false },
    seeds: { type: 'string', default: '10' },
    'first-seed': { type: 'string', default: '1' },
    profiles: { type: 'string', default: 'replace,pressure,faults,plain' },
    /**
     * Appends one JSON line per finished seed (its figures, violations, the commit and the machine's load) to this
     * file: a deep run that outlasts one sitting can be continued with --first-seed and still add up to one record.
     */
    record: { type: 'string' },
  },
});

const num = (name: string, value: string | undefined): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) {
    console.error(`--${name} must be a non-negative integer, got ${value}`);
    process.exit(2);
  }
  return n;
};

const parseEnv = (pairs: string[]): Record<string, string> => {
  const env: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) {
      console.error(`--env expects KEY=VALUE, got ${pair}`);
      process.exit(2);
    }
    env[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return env;
};

interface RunSettings {
  seed: number;
  ops: number;
  chats: number;
  sockets: number;
  clear: boolean;
  modelFaults?: boolean;
  allowErrors: string[];
  env: Record<string, string>;
  nodes?: number;
}

/**
 * The deep mode's service profiles. Reconnects (with and without last_seq, clean and abrupt) are in every plan.
 * - replace: every stop that the agent does not confirm within 100 ms replaces its process; clear_history in the mix.
 * - pressure: 6 chats share 2 live agents (least recently used idle one evicted, `agent_busy` when all answer) and
 *   idle agents are closed after 1 s; clear_history in the mix.
 * - plain: the default settings, clear_history in the mix.
 */
const PROFILES: Record<string, Omit<RunSettings, 'seed' | 'ops'>> = {
  replace: { chats: 8, sockets: 5, clear: true, allowErrors: [], env: { AGENT_INTERRUPT_TIMEOUT_MS: '100' } },
  pressure: {
    chats: 6,
    sockets: 4,
    clear: true,
    allowErrors: ['agent_busy'],
    env: { MAX_LIVE_AGENTS: '2', AGENT_IDLE_TIMEOUT_MS: '1000' },
  },
  plain: { chats: 4, sockets: 3, clear: true, allowErrors: [], env: {} },
  /** The model failing: 429/529 with retry-after, stalls past the API timeout, malformed SSE, cuts, storms. */
  faults: {
    chats: 6,
    sockets: 4,
    clear: true,
    modelFaults: true,
    allowErrors: [],
    env: { AGENT_API_TIMEOUT_MS: '2000', AGENT_MAX_RETRIES: '1', AGENT_INTERRUPT_TIMEOUT_MS: '500' },
  },
};

const settleTimeoutMs = num('settle-timeout', values['settle-timeout']);

const root = path.resolve(import.meta.dirname, '..');

async function startTarget(settings: RunSettings): Promise<{ target: StressTarget; dir?: string }> {
  const env = { ...STRESS_SERVER_ENV, ...settings.env };
  if ((settings.nodes ?? 1) <= 1) {
    const server = await startAgentServer(env);
    return { target: serviceTarget(server), dir: server.dir };
  }
  if (!process.env.TEST_DATABASE_URL) {
    console.error('--nodes needs a Postgres: set TEST_DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/postgres)');
    process.exit(2);
  }
  // The nodes run what `npm start` runs: dist/server.js, compiled from src/ first.
  execFileSync(process.execPath, [path.join(root, 'scripts/build-server.mjs')], { cwd: root, stdio: 'ignore' });
  const logDir = values['node-logs'];
  if (logDir) fs.mkdirSync(logDir, { recursive: true });
  return { target: await startClusterTarget(settings.nodes!, logDir ? { LOG_LEVEL: 'info', ...env } : env, logDir) };
}

async function runOne(settings: RunSettings, log: (line: string) => void): Promise<StressFigures> {
  const { target, dir } = await startTarget(settings);
  try {
    return await runStress({
      seed: settings.seed,
      ops: settings.ops,
      chats: settings.chats,
      sockets: settings.sockets,
      clearHistory: settings.clear,
      modelFaults: settings.modelFaults ?? false,
      allowedFrameErrors: settings.allowErrors,
      target,
      settleTimeoutMs,
      log,
    });
  } finally {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  }
}

function reproduce(s: RunSettings): string {
  const envArgs = Object.entries(s.env).map(([k, v]) => ` --env ${k}=${v}`).join('');
  const flags = (s.clear ? ' --clear' : '') + (s.modelFaults ? ' --model-faults' : '') + s.allowErrors.map((c) => ` --allow-error ${c}`).join('');
  const nodes = (s.nodes ?? 1) > 1 ? ` --nodes ${s.nodes}` : '';
  return `npm run stress -- --seed ${s.seed} --ops ${s.ops} --chats ${s.chats} --sockets ${s.sockets}${nodes}${envArgs}${flags}`;
}

/** One finished seed, with what it ran on, appended as a JSON line. */
function record(file: string, row: Record<string, unknown>): void {
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    if (execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8' }).trim()) commit += '+changes';
  } catch {
    // not a git checkout: the commit stays unknown
  }
  const line = { finishedAt: new Date().toISOString(), commit, loadAverage: os.loadavg().map((l) => Math.round(l * 10) / 10), cores: os.cpus().length, ...row };
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.appendFileSync(file, `${JSON.stringify(line)}\n`);
}

if (values.deep) {
  const seeds = num('seeds', values.seeds);
  const first = num('first-seed', values['first-seed']);
  const ops = num('ops', values.ops ?? '10000');
  const profiles = (values.profiles ?? '').split(',').filter(Boolean);
  for (const p of profiles) {
    if (!PROFILES[p]) {
      console.error(`unknown profile ${p} (known: ${Object.keys(PROFILES).join(', ')})`);
      process.exit(2);
    }
  }
  const started = Date.now();
  const rows: Record<string, unknown>[] = [];
  const failed: { settings: RunSettings; violations: string[] }[] = [];
  console.log(`deep stress: ${seeds} seeds from ${first}, ${ops} operations each, profiles ${profiles.join(',')}`);
  for (let k = 0; k < seeds; k++) {
    const profile = profiles[k % profiles.length]!;
    const settings: RunSettings = { seed: first + k, ops, ...PROFILES[profile]!, env: { ...PROFILES[profile]!.env } };
    if (values.chats) settings.chats = Math.max(1, num('chats', values.chats));
    if (values.sockets) settings.sockets = Math.max(1, num('sockets', values.sockets));
    const f = await runOne(settings, () => {});
    const row = {
      seed: f.seed,
      profile,
      ops: f.operations,
      queries: f.queries,
      results: f.results,
      cancelled: f.cancelled,
      errors: f.errors,
      refused: f.refused,
      cutOffByReset: f.cutOffByReset,
      reconnects: f.reconnects,
      violations: f.violations.length,
      seconds: Math.round(f.durationMs / 1000),
    };
    rows.push(row);
    console.log(`seed ${f.seed} [${profile}]: ${JSON.stringify(row)}`);
    if (values.record) record(values.record, { ...row, violations: f.violations, reproduce: reproduce(settings) });
    if (f.violations.length > 0) {
      failed.push({ settings, violations: f.violations });
      for (const v of f.violations) console.log(`  - ${v}`);
      console.log(`  reproduce: ${reproduce(settings)}`);
    }
  }
  console.table(rows);
  const minutes = ((Date.now() - started) / 60_000).toFixed(1);
  if (failed.length > 0) {
    console.log(`\n${failed.length} of ${seeds} seed(s) had violations (${minutes} min):`);
    for (const { settings } of failed) console.log(`  ${reproduce(settings)}`);
    process.exit(1);
  }
  console.log(`\ndeep stress: ${seeds} seeds, ${ops} operations each, 0 violations (${minutes} min)`);
  process.exit(0);
}

const settings: RunSettings = {
  seed: num('seed', values.seed),
  ops: num('ops', values.ops ?? '1000'),
  chats: Math.max(1, num('chats', values.chats ?? '4')),
  sockets: Math.max(1, num('sockets', values.sockets ?? '3')),
  clear: values.clear ?? false,
  modelFaults: values['model-faults'] ?? false,
  allowErrors: values['allow-error'] ?? [],
  env: parseEnv(values.env ?? []),
  nodes: Math.max(1, num('nodes', values.nodes)),
};
const figures = await runOne(settings, (line) => console.error(line));
const { violations, ...rest } = figures;
console.table({ ...rest, violations: violations.length });
if (violations.length > 0) {
  console.log(`\n${violations.length} violation(s):`);
  for (const v of violations) console.log(`  - ${v}`);
  console.log(`\nreproduce: ${reproduce(settings)}`);
  process.exit(1);
}
console.log('no violations');
process.exit(0);
