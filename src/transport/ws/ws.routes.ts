import websocket from '@fastify/websocket';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { limitKey } from '../../auth/principal.js';
import type { RequestLimiter } from '../../auth/auth.plugin.js';
import { admitSocket, CLOSE_UNAUTHORIZED, selectSubprotocol, type SocketAdmission } from '../../auth/socket-admission.js';
import { ChatSocket, type ChatSocketDeps } from './chat-socket.js';

export interface WsRoutesOptions extends ChatSocketDeps {
  /** CORS_ORIGINS: browser origins besides the service's own that may open the socket. */
  corsOrigins: readonly string[];
  /**
   * The REST rate limit (per IP without a valid token): every refused authentication of a socket counts against
   * it, so guessing tokens over WebSocket upgrades is throttled exactly like over REST. Past it, the upgrade itself
   * is answered 429 `{detail}`.
   */
  authFailureLimit?: RequestLimiter;
}

/** Largest inbound frame: a message with its images (base64 is 4/3 of the bytes) and some room for JSON. */
export const maxFrameBytes = (deps: ChatSocketDeps) =>
  Math.ceil(deps.images.maxBytes * deps.images.maxCount * 1.4) + deps.maxMessageChars * 4 + 64 * 1024;

/**
 * `/ws/chat`: the live half of the wire contract. Whether the socket may be used, and by whom, is decided before
 * the upgrade (admitSocket); a refused socket is still upgraded, then closed at once with 4401 or 4403, because a
 * browser sees the close code but never the HTTP status of a refused upgrade.
 */
export const wsRoutes: FastifyPluginAsync<WsRoutesOptions> = async (app, { corsOrigins, authFailureLimit, ...deps }) => {
  await app.register(websocket, {
    options: { maxPayload: maxFrameBytes(deps), handleProtocols: (protocols) => selectSubprotocol(protocols) },
  });
  const admissions = new WeakMap<FastifyRequest, SocketAdmission>();
  app.get(
    '/ws/chat',
    {
      websocket: true,
      schema: { hide: true },
      preValidation: async (req, reply) => {
        // A plain GET (no upgrade) gets a 404 from @fastify/websocket; it must not use up a ticket.
        if (!req.ws) return;
        const admission = await admitSocket(req, { auth: deps.auth, corsOrigins });
        if (!admission.ok && admission.code === CLOSE_UNAUTHORIZED && authFailureLimit) await authFailureLimit(req, reply);
        admissions.set(req, admission);
      },
    },
    (socket, req) => {
      const admission = admissions.get(req);
      admissions.delete(req);
      if (!admission?.ok) {
        const refusal = admission ?? { code: 4401, reason: 'not admitted' };
        req.log.info({ code: refusal.code, reason: refusal.reason }, 'websocket refused');
        socket.close(refusal.code, refusal.reason);
        return;
      }
      const identity = { principal: admission.principal, limitKey: limitKey(admission.principal, req.ip) };
      new ChatSocket(socket, deps, req.log, identity).start();
    },
  );
};
