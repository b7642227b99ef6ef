import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { AddressInfo } from 'node:net';
import { buildApp } from '../../src/app.js';
import { loadConfig, type Config } from '../../src/config/config.js';

export interface TestServer {
  app: FastifyInstance;
  config: Config;
  /** http://127.0.0.1:PORT */
  url: string;
  /** ws://127.0.0.1:PORT/ws/chat */
  wsUrl: string;
  /** The temporary folder holding the database, workspaces and agent home. */
  dir: string;
  close(): Promise<void>;
}

import { makeTempDir } from './temp-dirs.js';
export { makeTempDir };

/**
 * A real server on an ephemeral loopback port over a real SQLite file in a temp folder. Pass the same `dir` again
 * to restart on the same data.
 */
export async function startTestServer(env: Record<string, string> = {}, dir = makeTempDir()): Promise<TestServer> {
  const config = loadConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    DATABASE_URL: `sqlite:${path.join(dir, 'chat.db')}`,
    WORKSPACE_DIR: path.join(dir, 'workspaces'),
    AGENT_HOME_DIR: path.join(dir, 'agent-home'),
    LOG_LEVEL: 'silent',
    // Agents are confined wherever bubblewrap works (as in CI); where it does not, tests of other features still
    // run with users. agent-confinement.test.ts checks the default refusal.
    ALLOW_UNCONFINED_AGENTS: 'true',
    ...env,
  });
  const app = await buildApp(config);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as AddressInfo;
  return {
    app,
    config,
    dir,
    url: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}/ws/chat`,
    close: () => app.close(),
  };
}
