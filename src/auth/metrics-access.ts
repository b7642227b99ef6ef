import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { RequestLimiter } from './auth.plugin.js';
import type { AuthService } from './auth.service.js';
import { isLoopbackHostHeader } from './loopback.js';
import { bearerToken } from './tokens.js';

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/**
 * Who may read `/metrics`. The figures are the whole service's (every user's queries and cost together), so a
 * user's API token is not enough: the operator's own credential, METRICS_TOKEN, sent as `Authorization: Bearer`.
 * Without METRICS_TOKEN, only where no authentication is in force (local mode on loopback, or AUTH_DISABLED behind
 * an authenticating proxy); once users exist it answers 403 until the operator sets one. Wrong tokens count against
 * the per-address rate limit like any failed authentication.
 */
export function metricsAccess({
  metricsToken,
  auth,
  limit,
}: {
  metricsToken: string | undefined;
  auth: AuthService;
  limit?: RequestLimiter;
}): (req: FastifyRequest, reply: FastifyReply) => Promise<void> {
  const expected = metricsToken === undefined ? undefined : digest(metricsToken);
  return async (req, reply) => {
    if (expected) {
      const token = bearerToken(req.headers.authorization);
      if (token !== undefined && timingSafeEqual(digest(token), expected)) return;
      if (limit) await limit(req, reply);
      void reply.header('www-authenticate', 'Bearer realm="metrics"');
      return reply.code(401).send({ detail: 'metrics need the METRICS_TOKEN: send "Authorization: Bearer <METRICS_TOKEN>"' });
    }
    if ((await auth.mode()) === 'local' && !isLoopbackHostHeader(req.headers.host)) {
      return reply.code(403).send({ detail: 'until a user is added, this service only answers requests addressed to localhost' });
    }
    if (await auth.anonymous()) return;
    return reply.code(403).send({ detail: 'metrics are off while users exist: set METRICS_TOKEN on the service and send it as a bearer token' });
  };
}
