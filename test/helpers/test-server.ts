import { startService, type Service } from './service.js';
import { makeTempDir } from './temp-dirs.js';

export { makeTempDir };

/** The service without model credentials (REST, auth and protocol tests): see startService. */
export type TestServer = Service;

/**
 * A real server on an ephemeral loopback port over a real SQLite file in a temp folder. Pass the same `dir` again
 * to restart on the same data.
 */
export function startTestServer(env: Record<string, string> = {}, dir = makeTempDir()): Promise<TestServer> {
  return startService({ env, dir });
}
