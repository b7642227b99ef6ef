import fs from 'node:fs/promises';

/** Every process's environment (pid → its NUL-separated entries), but this process's own. */
type Environs = Map<number, string>;

async function readEnvirons(): Promise<Environs> {
  const names = await fs.readdir('/proc').catch(() => [] as string[]);
  const environs: Environs = new Map();
  await Promise.all(
    names.map(async (name) => {
      const pid = Number(name);
      if (!Number.isInteger(pid) || pid === process.pid) return;
      const environ = await fs.readFile(`/proc/${pid}/environ`, 'latin1').catch(() => '');
      if (environ) environs.set(pid, environ);
    }),
  );
  return environs;
}

let scanning: Promise<Environs> | undefined;
let nextScan: Promise<Environs> | undefined;

/**
 * One read of /proc shared by every caller that asked before it started. Fifty agents ending together (a shutdown)
 * each look for their leftover tools: one scan each read every process's environment fifty times over, seconds
 * with many processes alive. A caller never joins a scan already under way (a process started just before the
 * call could be missed): it waits for the next one, which then serves everyone who asked meanwhile.
 */
function environs(): Promise<Environs> {
  if (!scanning) {
    scanning = readEnvirons().finally(() => {
      scanning = undefined;
    });
    return scanning;
  }
  nextScan ??= scanning
    .catch(() => undefined)
    .then(() => {
      nextScan = undefined;
      return environs();
    });
  return nextScan;
}

/**
 * Processes whose environment contains `NAME=VALUE` (Linux /proc; elsewhere none). Agent CLIs and every tool
 * process they start inherit the environment we give them, so an environment entry identifies them even after
 * they were reparented (their parent died) or moved to a process group of their own (as the CLI does for tools).
 */
export async function findProcessesWithEnv(entry: string, { prefix = false } = {}): Promise<number[]> {
  // With `prefix`, `NAME=VALUE...` matches any value that starts with VALUE.
  const marker = prefix ? entry : `${entry}\0`;
  const found: number[] = [];
  for (const [pid, environ] of await environs()) {
    if (environ.startsWith(marker) || environ.includes(`\0${marker}`)) found.push(pid);
  }
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
