import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { HealthSchema } from '../../protocol/rest.js';

/** Liveness: the process answers. (Readiness against the database comes with /readyz.) */
export const healthRoutes: FastifyPluginAsyncZod = async (app) => {
  app.get('/healthz', {
    schema: { tags: ['operations'], summary: 'Liveness probe', security: [], response: { 200: HealthSchema } },
    handler: async () => ({ status: 'ok' as const }),
  });
};
