import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AuthService } from './auth.service.js';
import { isLoopbackHostHeader } from './loopback.js';
import { isUnlimited, limitKey, type Principal } from './principal.js';
import { originAllowed } from './socket-admission.js';
import { bearerToken } from './tokens.js';
import { isWebClientRoute } from '../transport/web/web.plugin.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Who is asking; set by the auth hook on every route that is not public (see principalOf). */
    principal: Principal | null;
  }
}

/** Counts a request against its key; throws a 429 error (answered as `{detail}`) past the limit. */
export type RequestLimiter = (req: FastifyRequest, reply: FastifyReply) => Promise<void>;

/**
 * Routes anyone may call: probes, the API description, the web client's files, and the WebSocket (which authenticates itself after the
 * upgrade, to answer with a close code a browser can read). Everything else, unknown paths included, is private:
 * a new route needs a token unless it is listed here.
 */
export function isPublicRoute(routeUrl: string | undefined): boolean {
  if (routeUrl === undefined) return false;
  return (
    routeUrl === '/healthz' ||
    routeUrl === '/readyz' ||
    // Its own credential (METRICS_TOKEN), checked by the route: see metrics-access.ts.
    routeUrl === '/metrics' ||
    routeUrl === '/openapi.json' ||
    routeUrl === '/ws/chat' ||
    routeUrl === '/docs' ||
    routeUrl.startsWith('/docs/') ||
    isWebClientRoute(routeUrl)
  );
}

/** The principal the auth hook set; a route that needs one and has none is a wiring bug, not a client error. */
export function principalOf(req: FastifyRequest): Principal {
  if (!req.principal) throw new Error(`no principal on ${req.method} ${req.routeOptions.url}: auth hook not run`);
  return req.principal;
}

export const UNAUTHENTICATED_DETAIL = 'authentication required: send "Authorization: Bearer <token>"';
export const INVALID_TOKEN_DETAIL = 'invalid or revoked token';

/**
 * Authentication of the REST API: one `onRequest` hook, before the body is read, that works out the principal,
 * counts the request against the rate limit (failed attempts too, per IP: guessing tokens is throttled), then
 * refuses a request without a principal.
 *
 * Local mode (no user yet): every request is the local principal, as long as it is addressed to a loopback name
 * (see isLoopbackHostHeader). AUTH_DISABLED: every request is the local principal. Auth enabled: a valid
 * `Authorization: Bearer` token is required.
 *
 * Without authentication (local mode, AUTH_DISABLED) a request that changes something must not come from another
 * site's page (see crossSiteRefusal).
 */
export function installAuth(
  app: FastifyInstance,
  { auth, limit, corsOrigins = [] }: { auth: AuthService; limit?: RequestLimiter; corsOrigins?: readonly string[] },
): void {
  app.decorateRequest('principal', null);

  app.addHook('onRequest', async (req, reply) => {
    // A CORS preflight never carries credentials (@fastify/cors answers it before this hook when enabled).
    if (req.method === 'OPTIONS' || isPublicRoute(req.routeOptions.url)) return;
    const failure = await identify(req, auth, corsOrigins);
    // Local mode's own client is not limited: it behaves exactly as before users existed.
    const exempt = req.principal !== null && isUnlimited(req.principal);
    if (limit && !exempt) await limit(req, reply);
    if (failure) {
      if (failure.challenge) void reply.header('www-authenticate', failure.challenge);
      return reply.code(failure.status).send({ detail: failure.detail });
    }
  });
}

interface Refusal {
  status: 401 | 403;
  detail: string;
  challenge?: string;
}

/** Methods that change something. A page of any site can send them cross-site as "simple" requests (a form, or a
 * fetch with a text/plain body): no CORS preflight asks first, only the Origin header tells who sent them. */
const STATE_CHANGING_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export const CROSS_SITE_DETAIL =
  "refused: a request that changes something may come only from this service's own pages or an origin of " +
  'CORS_ORIGINS (its Origin header names another site)';

/**
 * Cross-site request forgery where no credential stands in its way. With authentication on, every request needs an
 * `Authorization` header that another site's page cannot send without a CORS preflight, which only CORS_ORIGINS
 * pass. Without it (local mode, AUTH_DISABLED), a page the operator visits could create chats and start agents with
 * a simple POST. So there a state-changing request whose Origin is neither the service's own (the Host it was sent
 * to) nor in CORS_ORIGINS is refused; requests without Origin (curl, scripts, other non-browser clients) and reads
 * pass, as before (a cross-site page cannot read an answer without CORS headers). The rule is the WebSocket's
 * (originAllowed), so whatever may open a socket may also send these requests.
 */
function crossSiteRefusal(req: FastifyRequest, corsOrigins: readonly string[]): Refusal | undefined {
  if (!STATE_CHANGING_METHODS.has(req.method) || originAllowed(req.headers.origin, req.host, corsOrigins)) return undefined;
  return { status: 403, detail: CROSS_SITE_DETAIL };
}

/** Sets req.principal, or says why the request has none. */
async function identify(req: FastifyRequest, auth: AuthService, corsOrigins: readonly string[]): Promise<Refusal | undefined> {
  const mode = await auth.mode();
  if (mode === 'local' && !isLoopbackHostHeader(req.headers.host)) {
    return { status: 403, detail: 'until a user is added, this service only answers requests addressed to localhost' };
  }
  const anonymous = await auth.anonymous();
  if (anonymous) {
    const crossSite = crossSiteRefusal(req, corsOrigins);
    if (crossSite) return crossSite;
    req.principal = anonymous;
    return undefined;
  }
  const token = bearerToken(req.headers.authorization);
  if (token === undefined) return { status: 401, detail: UNAUTHENTICATED_DETAIL, challenge: 'Bearer' };
  const principal = await auth.verifyToken(token);
  if (!principal) return { status: 401, detail: INVALID_TOKEN_DETAIL, challenge: 'Bearer error="invalid_token"' };
  req.principal = principal;
  return undefined;
}

/** The rate limit's key of a request: its user, else its IP. */
export const requestLimitKey = (req: FastifyRequest): string =>
  (req.principal && limitKey(req.principal, req.ip)) ?? `ip:${req.ip}`;
