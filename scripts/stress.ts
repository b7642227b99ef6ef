// Randomized interrupt stress against the real service + SDK/CLI + the fake model (see test/stress/stress-runner.ts).
//   npm run stress -- --ops 5000 --seed 7 [--chats 4 --sockets 3] [--clear] [--env KEY=VALUE ...]
// Prints the figures and every violation; exits 1 on any violation.
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { startAgentServer } from '../test/helpers/agent-server.js';
import { runStress, STRESS_SERVER_ENV } from '../test/stress/stress-runner.js';

const { values } = parseArgs({
  options: {
    ops: { type: 'string', default: '1000' },
    seed: { type: 'string', default: String(Date.now() % 100_000) },
    chats: { type: 'string', default: '4' },
    sockets: { type: 'string', default: '3' },
    'settle-timeout': { type: 'string', default: '120000' },
    /** A frame error code expected under the settings, e.g. agent_busy with --env MAX_LIVE_AGENTS=2 (repeatable). */
    'allow-error': { type: 'string', multiple: true, default: [] },
    /** Also send clear_history frames. */
    clear: { type: 'boolean', default: false },
    /** Extra service settings, e.g. --env AGENT_INTERRUPT_TIMEOUT_MS=100 (repeatable). */
    env: { type: 'string', multiple: true, default: [] },
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

const seed = num('seed', values.seed);
const ops = num('ops', values.ops);
const chats = Math.max(1, num('chats', values.chats));
const sockets = Math.max(1, num('sockets', values.sockets));
const settleTimeoutMs = num('settle-timeout', values['settle-timeout']);

const env: Record<string, string> = { ...STRESS_SERVER_ENV };
for (const pair of values.env ?? []) {
  const eq = pair.indexOf('=');
  if (eq <= 0) {
    console.error(`--env expects KEY=VALUE, got ${pair}`);
    process.exit(2);
  }
  env[pair.slice(0, eq)] = pair.slice(eq + 1);
}

const server = await startAgentServer(env);
const figures = await runStress({
  seed,
  ops,
  chats,
  sockets,
  clearHistory: values.clear ?? false,
  allowedFrameErrors: values['allow-error'] ?? [],
  server,
  settleTimeoutMs,
  log: (line) => console.error(line),
});
fs.rmSync(server.dir, { recursive: true, force: true });

const { violations, ...rest } = figures;
console.table({ ...rest, violations: violations.length });
if (violations.length > 0) {
  console.log(`\n${violations.length} violation(s):`);
  for (const v of violations) console.log(`  - ${v}`);
  const envArgs = (values.env ?? []).map((p) => ` --env ${p}`).join('') + (values.clear ? ' --clear' : '') +
    (values['allow-error'] ?? []).map((c) => ` --allow-error ${c}`).join('');
  console.log(`\nreproduce: npm run stress -- --seed ${seed} --ops ${ops} --chats ${chats} --sockets ${sockets}${envArgs}`);
  process.exit(1);
}
console.log('no violations');
process.exit(0);
