import { sql } from 'kysely';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Db } from '../../db/database.js';
import type { Metrics } from '../../observability/metrics.js';
import { HealthSchema } from '../../protocol/rest.js';

export interface HealthRoutesOptions {
  db: Db;
  metrics: Metrics;
}

/**
 * Probes and metrics for operators. `/healthz`: the process answers (liveness). `/readyz`: it can serve, i.e. the
 * database answers (readiness). `/metrics`: Prometheus text format; it needs a token like the API once auth is on
 * (Prometheus sends one with `authorization: {credentials: ...}` in its scrape config).
 */
export const healthRoutes: FastifyPluginAsyncZod<HealthRoutesOptions> = async (app, { db, metrics }) => {
  app.get('/healthz', {
    schema: { tags: ['operations'], summary: 'Liveness probe', security: [], response: { 200: HealthSchema } },
    handler: async () => ({ status: 'ok' as const }),
  });

  app.get('/readyz', {
    schema: {
      tags: ['operations'],
      summary: 'Readiness probe: the database answers',
      security: [],
      response: { 200: HealthSchema, 503: z.object({ status: z.literal('unavailable'), detail: z.string() }) },
    },
    handler: async (req, reply) => {
      try {
        await sql`select 1`.execute(db);
        return { status: 'ok' as const };
      } catch (err) {
        req.log.error({ err }, 'readiness check failed: database');
        return reply.code(503).send({ status: 'unavailable' as const, detail: 'database unreachable' });
      }
    },
  });

  app.get('/metrics', {
    schema: { tags: ['operations'], summary: 'Prometheus metrics', hide: false },
    handler: async (_req, reply) => {
      reply.type(metrics.registry.contentType);
      return metrics.registry.metrics();
    },
  });
};
