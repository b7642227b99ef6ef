import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { REPO_ROOT, stopTree, track, TSX_IMPORT } from './children.js';
import { withTimeout } from './util.js';

export interface FakeProcess {
  url: string;
  pid: number;
  /** The fake process's (wall − monotonic) clock constant, see lib/clock.ts. */
  clockOffsetMs: number;
  stop(): Promise<void>;
}

/** Starts bench/fake-worker.ts (the repo's fake model in its own process) and reads its URL. */
export async function startFake(): Promise<FakeProcess> {
  const child: ChildProcess = track(
    spawn(process.execPath, ['--import', TSX_IMPORT, path.join(REPO_ROOT, 'bench/fake-worker.ts')], {
      cwd: REPO_ROOT,
      // stdin is a pipe only so the fake notices if the benchmark dies without stopping it.
      stdio: ['pipe', 'pipe', 'inherit'],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...(process.env.TMPDIR ? { TMPDIR: process.env.TMPDIR } : {}) },
    }),
  );
  const lines = readline.createInterface({ input: child.stdout! });
  const first = new Promise<string>((resolve, reject) => {
    lines.once('line', resolve);
    child.once('exit', (code) => reject(new Error(`fake model exited with code ${code} before printing its URL`)));
  });
  const info = JSON.parse(await withTimeout(first, 20_000, 'the fake model to start')) as {
    url: string;
    clockOffsetMs: number;
  };
  return {
    ...info,
    pid: child.pid!,
    stop: async () => {
      lines.close();
      await stopTree(child, { graceMs: 5_000 });
    },
  };
}
