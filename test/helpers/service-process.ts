import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export interface ServiceProcess {
  child: ChildProcess;
  url: string;
  wsUrl: string;
  /** Resolves with the exit code (or signal) once the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  output(): string;
}

const root = path.resolve(import.meta.dirname, '../..');

/** Service processes started and not exited yet: a test that fails or times out midway must not leave one. */
const running = new Set<ChildProcess>();

/** SIGKILLs every service process a test file started and did not stop (test/helpers/cleanup-setup.ts). */
export function killServiceProcesses(): void {
  for (const child of running) child.kill('SIGKILL');
  running.clear();
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

/**
 * The service as its own OS process, for what only a real process shows: signals, kill -9, start-up recovery. It
 * runs what `npm start` runs, `node dist/server.js` (compiled from src/ by the tests' global setup).
 */
export async function startServiceProcess(env: Record<string, string>, { logFile }: { logFile?: string } = {}): Promise<ServiceProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, ['dist/server.js'], {
    cwd: root,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? '/root',
      PORT: String(port),
      HOST: '127.0.0.1',
      // As in test-server.ts: where bubblewrap does not work, services with users still start for other tests.
      ALLOW_UNCONFINED_AGENTS: 'true',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  child.once('exit', () => running.delete(child));
  let output = '';
  // With a log file, everything the process prints is also appended to it (kept after the run, e.g. by a chaos run).
  const log = logFile ? fs.createWriteStream(logFile, { flags: 'a' }) : undefined;
  const collect = (d: Buffer) => {
    output += d.toString();
    log?.write(d);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  child.once('close', () => log?.end());
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const url = `http://127.0.0.1:${port}`;
  // About a second alone; tens of seconds on a loaded machine.
  const deadline = Date.now() + 90_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`service exited at start-up:\n${output}`);
    const ok = await fetch(`${url}/healthz`).then((r) => r.ok, () => false);
    if (ok) break;
    if (Date.now() > deadline) throw new Error(`service did not start:\n${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { child, url, wsUrl: `ws://127.0.0.1:${port}/ws/chat`, exited, output: () => output };
}
