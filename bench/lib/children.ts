import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { descendants, isAlive, signalAll } from './proc.js';
import { sleep } from './util.js';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * `node --import <tsx>` runs the TypeScript sources in ONE process (the `tsx` CLI would put a wrapper process
 * in between, and its pid would not be the service's). Resolved to a file URL so children can run in any cwd
 * (the service runs in its temp data folder, away from the repo's .env).
 */
export const TSX_IMPORT = import.meta.resolve('tsx');

/** Child processes the benchmark started and has not stopped yet; killed on any exit path. */
const live = new Set<ChildProcess>();

export function track(child: ChildProcess): ChildProcess {
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

/**
 * Stops a process and everything under it. Descendants are collected BEFORE the signal (once the parent dies
 * they are re-parented to init and no longer findable by tree), and again while waiting. `signal` goes to the
 * root only, so it can shut down gracefully and close its own children; whatever is still alive after
 * `graceMs` gets SIGKILL.
 */
export async function stopTree(
  child: ChildProcess,
  { signal = 'SIGTERM', graceMs = 15_000 }: { signal?: NodeJS.Signals; graceMs?: number } = {},
): Promise<{ exitMs: number; forced: boolean }> {
  const pid = child.pid;
  const started = performance.now();
  if (pid === undefined) return { exitMs: 0, forced: false };
  const known = new Set<number>(descendants(pid).map((p) => p.pid));
  const exited = child.exitCode !== null || child.signalCode !== null;
  if (!exited) signalAll([pid], signal);
  const deadline = Date.now() + graceMs;
  let rootExitMs: number | undefined = exited ? 0 : undefined;
  while (Date.now() < deadline) {
    for (const p of descendants(pid)) known.add(p.pid);
    const rootGone = child.exitCode !== null || child.signalCode !== null || !isAlive(pid);
    if (rootGone && rootExitMs === undefined) rootExitMs = performance.now() - started;
    if (rootGone && [...known].every((p) => !isAlive(p))) {
      live.delete(child);
      return { exitMs: rootExitMs ?? performance.now() - started, forced: false };
    }
    await sleep(25);
  }
  signalAll([pid, ...known], 'SIGKILL');
  live.delete(child);
  await sleep(100);
  return { exitMs: performance.now() - started, forced: true };
}

/** Last resort on an error or Ctrl-C: SIGKILL every tracked child and its tree, synchronously. */
export function killAllNow(): void {
  for (const child of live) {
    if (child.pid === undefined) continue;
    const tree = descendants(child.pid).map((p) => p.pid);
    signalAll([child.pid, ...tree], 'SIGKILL');
  }
  live.clear();
}
