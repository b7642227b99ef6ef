import fs from 'node:fs/promises';

/**
 * Processes whose environment contains `NAME=VALUE` (Linux /proc; elsewhere none). Agent CLIs and every tool
 * process they start inherit the environment we give them, so an environment entry identifies them even after
 * they were reparented (their parent died) or moved to a process group of their own (as the CLI does for tools).
 */
export async function findProcessesWithEnv(entry: string, { prefix = false } = {}): Promise<number[]> {
  // With `prefix`, `NAME=VALUE...` matches any value that starts with VALUE.
  const marker = prefix ? entry : `${entry}\0`;
  const names = await fs.readdir('/proc').catch(() => [] as string[]);
  const found: number[] = [];
  await Promise.all(
    names.map(async (name) => {
      const pid = Number(name);
      if (!Number.isInteger(pid) || pid === process.pid) return;
      const environ = await fs.readFile(`/proc/${pid}/environ`, 'latin1').catch(() => '');
      if (environ.startsWith(marker) || environ.includes(`\0${marker}`)) found.push(pid);
    }),
  );
  return found.sort((a, b) => a - b);
}

export function killAll(pids: number[], signal: NodeJS.Signals = 'SIGKILL'): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // Already gone.
    }
  }
}
