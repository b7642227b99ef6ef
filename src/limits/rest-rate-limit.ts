import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance } from 'fastify';
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
 * RATE_LIMIT_PER_MINUTE with @fastify/rate-limit (in memory, fixed one-minute windows), keyed by user, or by IP
 * for a request without a valid token. Not global: the auth hook calls the returned limiter itself, after it knows
 * the principal, so failed authentication attempts are counted too and local mode is left out.
 */
export async function registerRestRateLimit(app: FastifyInstance, perMinute: number): Promise<RequestLimiter> {
  await app.register(rateLimit, { global: false });
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
