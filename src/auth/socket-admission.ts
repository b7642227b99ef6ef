import type { FastifyRequest } from 'fastify';
import type { AuthService } from './auth.service.js';
import { isLoopbackHostHeader } from './loopback.js';
import type { Principal } from './principal.js';
import { bearerToken } from './tokens.js';

/** The subprotocol a client offers (with `bearer.<token>` beside it) and the server selects. */
export const WS_SUBPROTOCOL = 'agent-chat';
const BEARER_SUBPROTOCOL = 'bearer.';

/** Close codes of a refused socket (4000-4999 is the application range; browsers can read them). */
export const CLOSE_UNAUTHORIZED = 4401;
export const CLOSE_FORBIDDEN = 4403;

export type SocketAdmission =
  | { ok: true; principal: Principal }
  | { ok: false; code: typeof CLOSE_UNAUTHORIZED | typeof CLOSE_FORBIDDEN; reason: string };

/**
 * The `ws` server's `handleProtocols`: selects `agent-chat` when offered. It never selects (so never echoes) the
 * `bearer.<token>` entry. A client that offers protocols without `agent-chat` gets none, and a browser then
 * fails the connection, as the WebSocket standard requires.
 */
export const selectSubprotocol = (protocols: Set<string>): string | false =>
  protocols.has(WS_SUBPROTOCOL) ? WS_SUBPROTOCOL : false;

export function offeredSubprotocols(header: string | string[] | undefined): string[] {
  const value = Array.isArray(header) ? header.join(',') : (header ?? '');
  return value.split(',').map((p) => p.trim()).filter((p) => p.length > 0);
}

/**
 * Whether a browser page from `origin` may open this socket (cross-site WebSocket hijacking: browsers let any
 * page open a WebSocket anywhere, and only the Origin header tells who did). Allowed: no Origin (not a browser),
 * an origin in CORS_ORIGINS, or the page's own host (same origin as the service).
 */
export function originAllowed(origin: string | undefined, host: string | undefined, allowed: readonly string[]): boolean {
  if (origin === undefined) return true;
  if (allowed.includes(origin.toLowerCase())) return true;
  if (!host) return false;
  try {
    return new URL(origin).host === new URL(`http://${host}`).host;
  } catch {
    return false;
  }
}

/**
 * Decides, before the upgrade, whether a WebSocket may be used and by whom. Credentials, first present wins:
 * `?ticket=` (from POST /api/ws-ticket, single use), a `bearer.<token>` subprotocol, an `Authorization: Bearer`
 * header. The refusal is sent as a close code after the upgrade: a browser cannot read the status of a failed
 * upgrade, only why an open socket was closed.
 */
export async function admitSocket(
  req: FastifyRequest,
  { auth, corsOrigins }: { auth: AuthService; corsOrigins: readonly string[] },
): Promise<SocketAdmission> {
  if (!originAllowed(req.headers.origin, req.host, corsOrigins)) {
    return { ok: false, code: CLOSE_FORBIDDEN, reason: 'origin not allowed' };
  }
  const mode = await auth.mode();
  if (mode === 'local' && !isLoopbackHostHeader(req.headers.host)) {
    return { ok: false, code: CLOSE_FORBIDDEN, reason: 'host not allowed before a user exists' };
  }
  const anonymous = await auth.anonymous();
  if (anonymous) return { ok: true, principal: anonymous };

  const refused = (reason: string): SocketAdmission => ({ ok: false, code: CLOSE_UNAUTHORIZED, reason });
  const ticket = (req.query as Record<string, unknown> | undefined)?.ticket;
  if (ticket !== undefined) {
    let principal: Principal | undefined;
    try {
      principal = typeof ticket === 'string' ? await auth.tickets.redeem(ticket) : undefined;
    } catch (err) {
      // Tickets shared through Redis, and Redis unreachable: the client asks again, or uses its token.
      req.log.warn({ err }, 'could not redeem a WebSocket ticket');
      return refused('tickets unavailable: try again shortly');
    }
    return principal ? { ok: true, principal } : refused('invalid, used or expired ticket');
  }
  const fromProtocol = offeredSubprotocols(req.headers['sec-websocket-protocol'])
    .find((p) => p.startsWith(BEARER_SUBPROTOCOL))
    ?.slice(BEARER_SUBPROTOCOL.length);
  const token = fromProtocol ?? bearerToken(req.headers.authorization);
  if (token === undefined) return refused('authentication required');
  const principal = await auth.verifyToken(token);
  return principal ? { ok: true, principal } : refused('invalid or revoked token');
}
