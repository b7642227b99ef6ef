import { sql } from 'kysely';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Db } from '../../db/database.js';
import type { Metrics } from '../../observability/metrics.js';
import type { onRequestHookHandler } from 'fastify';
import { ErrorBodySchema, HealthSchema } from '../../protocol/rest.js';

export interface HealthRoutesOptions {
  db: Db;
  metrics: Metrics;
  /** Who may read /metrics (metricsAccess). */
  metricsAccess: onRequestHookHandler;
}

/**
 * Probes and metrics for operators. `/healthz`: the process answers (liveness). `/readyz`: it can serve, i.e. the
 * database answers (readiness). `/metrics`: Prometheus text format; it needs its own token once auth is on
 * (Prometheus sends one with `authorization: {credentials: ...}` in its scrape config): METRICS_TOKEN, not a
 * user's token, since the figures are every user's together.
 */
export const healthRoutes: FastifyPluginAsyncZod<HealthRoutesOptions> = async (app, { db, metrics, metricsAccess }) => {
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
    schema: {
      tags: ['operations'],
      summary: 'Prometheus metrics: needs METRICS_TOKEN as a bearer token once users exist',
      hide: false,
      response: { 200: z.string(), 401: ErrorBodySchema, 403: ErrorBodySchema },
    },
    onRequest: metricsAccess,
    handler: async (_req, reply) => {
      reply.type(metrics.registry.contentType);
      return metrics.registry.metrics();
    },
  });
};
