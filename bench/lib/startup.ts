import { readProc } from './proc.js';
import { ServiceProcess } from './service.js';
import { median } from './stats.js';
import { round, sleep } from './util.js';

export interface StartupResult {
  runs: number;
  /** spawn() → first 200 from /healthz, ms, each counted run. */
  startupMs: number[];
  /** RSS of the service process `restMs` after it answered, bytes, each counted run. */
  restRssBytes: number[];
  restMs: number;
  medianStartupMs: number;
  medianRestRssBytes: number;
  /** SIGTERM → the process exited, ms (no agents running), each counted run. */
  shutdownMs: number[];
}

/**
 * Start-up of the service (compiled, as `npm start` runs it) on an existing database: one uncounted start creates
 * the database (a first install pays that once), then `runs` counted starts on the same folder.
 */
export async function measureStartup(
  dataDir: string,
  fakeUrl: string,
  { runs, restMs = 2_000, env = {} }: { runs: number; restMs?: number; env?: Record<string, string> },
): Promise<StartupResult> {
  const startupMs: number[] = [];
  const restRssBytes: number[] = [];
  const shutdownMs: number[] = [];
  for (let i = 0; i <= runs; i++) {
    const service = await ServiceProcess.start({ dataDir, fakeUrl, env });
    try {
      await sleep(restMs);
      const rss = readProc(service.pid)?.rssBytes;
      if (rss === undefined) throw new Error('the service exited while at rest');
      if (i > 0) {
        startupMs.push(round(service.startupMs, 1));
        restRssBytes.push(rss);
      }
    } finally {
      const { exitMs, forced } = await service.stop();
      if (forced) throw new Error('the service did not exit on SIGTERM (killed)');
      if (i > 0) shutdownMs.push(round(exitMs, 0));
    }
  }
  return {
    runs,
    startupMs,
    restRssBytes,
    restMs,
    medianStartupMs: round(median(startupMs), 1),
    medianRestRssBytes: median(restRssBytes),
    shutdownMs,
  };
}
