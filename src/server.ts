import 'dotenv/config';
import { buildApp } from './app.js';
import { RedisUnavailableError } from './cluster/redis.js';
import { StartupRefusedError } from './auth/exposure.js';
import { loggerOptions } from './observability/logger.js';
import { loadConfigOrReport } from './config/config.js';

/**
 * The process entry point: the only module that reads process.env, listens, and handles signals.
 * SIGTERM/SIGINT: stop accepting connections, let in-flight requests finish, close agents and the database, exit.
 * A second signal, or the shutdown timeout, exits at once.
 */
async function main(): Promise<void> {
  const config = loadConfigOrReport(process.env);
  if (!config) process.exit(2);

  let app: Awaited<ReturnType<typeof buildApp>>;
  try {
    app = await buildApp(config, {
      logger: loggerOptions(config),
    });
  } catch (err) {
    if (err instanceof StartupRefusedError) {
      console.error(err.message);
      process.exit(2);
    }
    if (err instanceof RedisUnavailableError) {
      console.error(err.message);
      process.exit(1);
    }
    throw err;
  }

  let closing = false;
  const shutdown = (signal: NodeJS.Signals) => {
    if (closing) {
      app.log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    closing = true;
    app.log.info({ signal }, 'shutting down');
    const timer = setTimeout(() => {
      app.log.error('shutdown timed out: exiting');
      process.exit(1);
    }, config.SHUTDOWN_TIMEOUT_MS);
    timer.unref();
    app.close().then(
      () => {
        app.log.info('stopped');
        process.exit(0);
      },
      (err: unknown) => {
        app.log.error({ err }, 'error while shutting down');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);

  try {
    await app.listen({ port: config.PORT, host: config.HOST });
  } catch (err) {
    app.log.fatal({ err }, `cannot listen on ${config.HOST}:${config.PORT}`);
    await app.close();
    process.exit(1);
  }
}

void main();
