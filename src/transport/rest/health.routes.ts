import { sql } from 'kysely';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { RedisHandle } from '../../cluster/redis.js';
import type { Db } from '../../db/database.js';
import type { Metrics } from '../../observability/metrics.js';
import type { onRequestHookHandler } from 'fastify';
import { ErrorBodySchema, HealthSchema } from '../../protocol/rest.js';

export interface HealthRoutesOptions {
  db: Db;
  /** The shared Redis (multi-node mode): readiness needs it too. */
  redis?: RedisHandle;
  metrics: Metrics;
  /** Who may read /metrics (metricsAccess). */
  metricsAccess: onRequestHookHandler;
}

/**
 * Probes and metrics for operators. `/healthz`: the process answers (liveness). `/readyz`: it can serve, i.e. the
 * database answers, and in multi-node mode Redis too (readiness): a node without Redis cannot share limits,
 * tickets or chats, so a load balancer should send it nothing. `/metrics`: Prometheus text format; it needs its own token once auth is on
 * (Prometheus sends one with `authorization: {credentials: ...}` in its scrape config): METRICS_TOKEN, not a
 * user's token, since the figures are every user's together.
 */
export const healthRoutes: FastifyPluginAsyncZod<HealthRoutesOptions> = async (app, { db, redis, metrics, metricsAccess }) => {
  app.get('/healthz', {
    schema: { tags: ['operations'], summary: 'Liveness probe', security: [], response: { 200: HealthSchema } },
    handler: async () => ({ status: 'ok' as const }),
  });

  app.get('/readyz', {
    schema: {
      tags: ['operations'],
      summary: 'Readiness probe: the database answers (and Redis, in multi-node mode)',
      security: [],
      response: { 200: HealthSchema, 503: z.object({ status: z.literal('unavailable'), detail: z.string() }) },
    },
    handler: async (req, reply) => {
      const [database, shared] = await Promise.allSettled([sql`select 1`.execute(db), redis?.ping()]);
      const unreachable = [
        ...(database.status === 'rejected' ? [{ what: 'database', err: database.reason as unknown }] : []),
        ...(shared.status === 'rejected' ? [{ what: 'redis', err: shared.reason as unknown }] : []),
      ];
      if (unreachable.length === 0) return { status: 'ok' as const };
      for (const { what, err } of unreachable) req.log.error({ err }, `readiness check failed: ${what}`);
      const detail = unreachable.map(({ what }) => `${what} unreachable`).join(', ');
      return reply.code(503).send({ status: 'unavailable' as const, detail });
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
