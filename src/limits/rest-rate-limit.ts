import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance } from 'fastify';
import type { RedisHandle } from '../cluster/redis.js';
import { requestLimitKey, type RequestLimiter } from '../auth/auth.plugin.js';

const MINUTE_MS = 60_000;

/** Error whose status the error handler answers as `{detail}`. */
class TooManyRequestsError extends Error {
  constructor(
    message: string,
    readonly statusCode: number,
  ) {
    super(message);
  }
}

/**
 * RATE_LIMIT_PER_MINUTE with @fastify/rate-limit (fixed one-minute windows), keyed by user, or by IP for a request
 * without a valid token. Not global: the auth hook calls the returned limiter itself, after it knows the principal,
 * so failed authentication attempts are counted too and local mode is left out.
 *
 * The counters live in this process, or with `redis` (several nodes) in Redis under `<prefix>rest-limit:`, so the
 * allowance is one for the whole deployment. While Redis is unreachable requests are not counted rather than
 * refused (skipOnError): the node's /readyz reports it, and its load balancer stops sending it requests.
 */
export async function registerRestRateLimit(
  app: FastifyInstance,
  perMinute: number,
  redis?: RedisHandle,
): Promise<RequestLimiter> {
  await app.register(rateLimit, {
    global: false,
    ...(redis ? { redis: redis.client, nameSpace: redis.key('rest-limit', ''), skipOnError: true } : {}),
  });
  const handler = app.rateLimit({
    max: perMinute,
    timeWindow: MINUTE_MS,
    keyGenerator: requestLimitKey,
    errorResponseBuilder: (_req, context) =>
      new TooManyRequestsError(
        `too many requests: at most ${context.max} a minute; retry in ${context.after}`,
        context.statusCode,
      ),
  });
  return async (req, reply) => {
    await handler.call(app, req, reply);
  };
}
