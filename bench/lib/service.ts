import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { REPO_ROOT, stopTree, track, TSX_IMPORT } from './children.js';
import { freePort, sleep } from './util.js';

export interface ServiceOptions {
  /** The service's data folder: database, workspaces, agent home, and its log file. */
  dataDir: string;
  fakeUrl: string;
  /** Extra variables (e.g. AGENT_PREWARM) on top of the benchmark's fixed configuration. */
  env?: Record<string, string>;
  startTimeoutMs?: number;
  /** Another server to run in the service's place (under tsx), configured the same way (bench/relay-server.ts). */
  script?: string;
  /** Extra Node flags before the script (e.g. `--cpu-prof`, used by bench/profile.ts). */
  nodeArgs?: string[];
}

/** What compiledService() found, once per run. */
let compiled: { env: Record<string, string>; args: string[] } | undefined;

/**
 * How `npm start` runs the service: its Node flags and entry point, read from package.json's `start:prod` (so the
 * benchmark measures exactly that command), after `npm start`'s own step that compiles src/ to dist/ when stale.
 */
export function compiledService(): { env: Record<string, string>; args: string[] } {
  // Once per run: the sources do not change under a benchmark, and every start would otherwise spawn the build check.
  if (compiled) return compiled;
  execFileSync(process.execPath, [path.join(REPO_ROOT, 'scripts/build-server.mjs')], { cwd: REPO_ROOT, stdio: 'ignore' });
  const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  const command = pkg.scripts['start:prod']!;
  const words = command.split(/\s+/);
  const env: Record<string, string> = {};
  // Leading NAME=value words are the environment npm's shell gives the process (e.g. MALLOC_ARENA_MAX).
  while (/^[A-Z_][A-Z0-9_]*=/.test(words[0] ?? '')) {
    const [name, ...value] = words.shift()!.split('=');
    env[name!] = value.join('=');
  }
  if (words.shift() !== 'node') throw new Error(`package.json start:prod does not run node: ${command}`);
  compiled = { env, args: words.map((arg) => (arg.endsWith('.js') ? path.join(REPO_ROOT, arg) : arg)) };
  return compiled;
}

/**
 * The real service as a child process, compiled and started as `npm start` does, configured only through its
 * environment, exactly as an operator would run it. Its environment is built from scratch (not inherited) and its cwd is its data folder,
 * so neither the benchmark's environment nor a developer's `.env` in the repo changes what is measured.
 */
export class ServiceProcess {
  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
    readonly logFile: string,
    /** ms from spawn() to the first 200 from /healthz. */
    readonly startupMs: number,
  ) {}

  get pid(): number {
    return this.child.pid!;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}/ws/chat`;
  }

  static async start(opts: ServiceOptions): Promise<ServiceProcess> {
    const port = await freePort();
    fs.mkdirSync(opts.dataDir, { recursive: true });
    const logFile = path.join(opts.dataDir, `service-${port}.log`);
    const log = fs.openSync(logFile, 'a');
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
      HOME: opts.dataDir,
      ...(process.env.TMPDIR ? { TMPDIR: process.env.TMPDIR } : {}),
      PORT: String(port),
      HOST: '127.0.0.1',
      DATABASE_URL: `sqlite:${path.join(opts.dataDir, 'chat.db')}`,
      WORKSPACE_DIR: path.join(opts.dataDir, 'workspaces'),
      AGENT_HOME_DIR: path.join(opts.dataDir, 'agent-home'),
      // The service's default level: what an operator runs. Logs go to a file, never through the benchmark.
      LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info',
      ANTHROPIC_BASE_URL: opts.fakeUrl,
      // The relay's names for the same (it has no config module of its own).
      FAKE_URL: opts.fakeUrl,
      DATA_DIR: opts.dataDir,
      ANTHROPIC_API_KEY: 'bench-key-for-the-fake-model',
      // As in test/helpers/agent-server.ts: no permission prompts (nobody answers them), no retries on the fake.
      PERMISSION_MODE: 'bypassPermissions',
      AGENT_MAX_RETRIES: '0',
      ...opts.env,
    };
    const run = opts.script ? { env: {}, args: ['--import', TSX_IMPORT, path.join(REPO_ROOT, opts.script)] } : compiledService();
    // BENCH_SERVICE_NODE_ARGS: Node flags for the service alone, to look into a figure (e.g. `--trace-gc`, which
    // Node refuses in NODE_OPTIONS); its output goes to the service's log.
    const extraNodeArgs = opts.script ? [] : (process.env.BENCH_SERVICE_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
    const spawnedAt = performance.now();
    const child = track(
      // After the entry's own flags (a V8 flag given twice takes the last value), before its script.
      spawn(process.execPath, [...(opts.nodeArgs ?? []), ...run.args.slice(0, -1), ...extraNodeArgs, ...run.args.slice(-1)], {
        cwd: opts.dataDir,
        env: { ...run.env, ...env },
        stdio: ['ignore', log, log],
      }),
    );
    fs.closeSync(log);
    let exit: string | undefined;
    child.once('exit', (code, signal) => {
      exit = `exited (code ${code}, signal ${signal})`;
    });

    const timeoutMs = opts.startTimeoutMs ?? 30_000;
    const deadline = spawnedAt + timeoutMs;
    for (;;) {
      if (exit) throw new Error(`service ${exit} before answering /healthz; log ${logFile}:\n${tail(logFile)}`);
      if ((await healthz(port)) === 200) break;
      if (performance.now() > deadline) {
        await stopTree(child, { graceMs: 2_000 });
        throw new Error(`service did not answer /healthz within ${timeoutMs} ms; log ${logFile}:\n${tail(logFile)}`);
      }
      // Polling fast enough that start-up is measured to a few ms.
      await sleep(5);
    }
    return new ServiceProcess(child, port, logFile, performance.now() - spawnedAt);
  }

  /** SIGTERM (graceful: agents closed, database closed), then SIGKILL of whatever is left after the grace time. */
  async stop(graceMs = 20_000): Promise<{ exitMs: number; forced: boolean }> {
    return stopTree(this.child, { signal: 'SIGTERM', graceMs });
  }
}

/** Status of GET /healthz, or 0 if nothing answers yet. No keep-alive: each poll is independent. */
function healthz(port: number): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/healthz', agent: false, timeout: 1_000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
  });
}

function tail(file: string, lines = 20): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** REST helpers the scenarios need (chat create/delete), with a timeout on every call. */
export async function api<T>(baseUrl: string, method: string, route: string, body?: unknown): Promise<T> {
  const res = await fetch(`${baseUrl}${route}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  if (!res.ok) throw new Error(`${method} ${route}: HTTP ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}
