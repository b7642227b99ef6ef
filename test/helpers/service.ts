import path from 'node:path';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance, FastifyServerOptions } from 'fastify';
import { startFakeModel, type FakeModel } from '../../fake-model/server.js';
import { buildApp } from '../../src/app.js';
import { loadConfig, type Config } from '../../src/config/config.js';
import { createTestDatabase, type StoreKind, type TestDatabase } from './stores.js';
import { makeTempDir } from './temp-dirs.js';

export interface ServiceOptions {
  /** The store under the service: a SQLite file in `dir` (default), or a Postgres database made for it. */
  store?: StoreKind;
  /** Configuration on top of the test defaults (a DATABASE_URL here wins over `store`). */
  env?: Record<string, string>;
  /**
   * The REAL Agent SDK and CLI against the repo's scripted fake model (the only fake: at the model's HTTP
   * boundary), with the model credentials, bypassPermissions and no CLI retries; Bash really runs, in the chat's
   * workspace under `dir`. Without it the service has no model credentials (REST, auth and protocol tests).
   */
  agent?: boolean;
  /** A fake model to share (closed by its owner); with `agent`, one is started (and closed) otherwise. */
  fake?: FakeModel;
  /** The service's logger settings for its configuration (default: none); e.g. loggerOptions with a stream to read. */
  logger?: (config: Config) => FastifyServerOptions['logger'];
  /** The folder of the SQLite file, the workspaces and the agent homes: the same one again restarts on the same data. */
  dir?: string;
}

export interface Service {
  app: FastifyInstance;
  config: Config;
  store: StoreKind;
  /** http://127.0.0.1:PORT */
  url: string;
  /** ws://127.0.0.1:PORT/ws/chat */
  wsUrl: string;
  /** The temporary folder holding the SQLite database, workspaces and agent homes (removed after the test file). */
  dir: string;
  /** The fake model the agents talk to (with `agent`). */
  fake: FakeModel | undefined;
  /** Stops the service and what it made (the fake model, the Postgres database). */
  close(): Promise<void>;
  /** Stops the service and starts it again on the same data, the same store and the same fake model. */
  restart(): Promise<Service>;
}

/**
 * The service in this process, listening on an ephemeral loopback port: the one way tests start it. Temp folders
 * are removed per test file (temp-dirs.ts); a Postgres database made here is dropped by close().
 */
export async function startService(options: ServiceOptions = {}): Promise<Service> {
  const store = options.store ?? 'sqlite';
  const dir = options.dir ?? makeTempDir();
  const fake = options.agent ? (options.fake ?? (await startFakeModel())) : options.fake;
  const ownsFake = fake !== undefined && fake !== options.fake;
  let database: TestDatabase | undefined;
  try {
    database = store === 'postgres' && !options.env?.DATABASE_URL ? await createTestDatabase('postgres') : undefined;
    const databaseUrl = database?.url ?? `sqlite:${path.join(dir, 'chat.db')}`;
    const running = await listen(options, dir, databaseUrl, fake);
    // What this start made, released once: by close(), or by the close() of the service a restart() started.
    const release = async () => {
      await database?.drop();
      if (ownsFake) await fake.close();
    };
    const service = (app: FastifyInstance, config: Config): Service => ({
      app,
      config,
      store,
      dir,
      fake,
      ...addresses(app),
      close: async () => {
        await app.close();
        await release();
      },
      restart: async () => {
        await app.close();
        const next = await listen(options, dir, databaseUrl, fake);
        return service(next.app, next.config);
      },
    });
    return service(running.app, running.config);
  } catch (err) {
    await database?.drop();
    if (ownsFake) await fake.close();
    throw err;
  }
}

async function listen(
  options: ServiceOptions,
  dir: string,
  databaseUrl: string,
  fake: FakeModel | undefined,
): Promise<{ app: FastifyInstance; config: Config }> {
  const config = loadConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    DATABASE_URL: databaseUrl,
    WORKSPACE_DIR: path.join(dir, 'workspaces'),
    AGENT_HOME_DIR: path.join(dir, 'agent-home'),
    LOG_LEVEL: 'silent',
    // Agents are confined wherever bubblewrap works (as in CI); where it does not, tests of other features still
    // run with users. agent-confinement.test.ts checks the default refusal.
    ALLOW_UNCONFINED_AGENTS: 'true',
    ...(options.agent && fake
      ? { ANTHROPIC_BASE_URL: fake.url, ANTHROPIC_API_KEY: 'test-key', PERMISSION_MODE: 'bypassPermissions', AGENT_MAX_RETRIES: '0' }
      : {}),
    ...options.env,
  });
  const app = await buildApp(config, options.logger ? { logger: options.logger(config) } : {});
  try {
    await app.listen({ port: 0, host: '127.0.0.1' });
  } catch (err) {
    await app.close();
    throw err;
  }
  return { app, config };
}

function addresses(app: FastifyInstance): { url: string; wsUrl: string } {
  const { port } = app.server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, wsUrl: `ws://127.0.0.1:${port}/ws/chat` };
}
