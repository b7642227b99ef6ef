import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { ChatService } from './chats/chat.service.js';
import type { Config } from './config/config.js';
import { openDatabase } from './db/database.js';
import { Store } from './store/store.js';
import { chatsRoutes } from './transport/rest/chats.routes.js';
import { installErrorHandler } from './transport/rest/errors.js';
import { healthRoutes } from './transport/rest/health.routes.js';
import { registerOpenApi } from './transport/rest/openapi.js';
import { installJsonBodyParser } from './transport/rest/json-body.js';
import { APP_VERSION } from './version.js';

export interface AppOptions {
  /** Fastify's logger option; server.ts passes pino settings, tests usually `false`. */
  logger?: FastifyServerOptions['logger'];
  /** The clock used for stored timestamps. */
  now?: () => Date;
}

/**
 * Wires config → storage → domain services → transport. Never listens: server.ts does, and tests call
 * `app.inject()` or `app.listen({port: 0})` on an app of their own. `app.close()` releases everything it opened.
 */
export async function buildApp(config: Config, options: AppOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: options.logger ?? false,
    trustProxy: config.TRUST_PROXY,
    // Chat ids and titles are short; a body of a few MB is an image-free mistake or an attack.
    bodyLimit: 1024 * 1024,
  }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  installErrorHandler(app);
  installJsonBodyParser(app);

  const db = await openDatabase(config.DATABASE_URL);
  app.addHook('onClose', async () => {
    await db.destroy();
  });
  const store = new Store(db, options.now);
  const chats = new ChatService(store, { closeChat: async () => {} });

  await registerOpenApi(app, APP_VERSION);
  await app.register(healthRoutes);
  await app.register(chatsRoutes, { chats });
  return app;
}
