import websocket from '@fastify/websocket';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { limitKey } from '../../auth/principal.js';
import type { RequestLimiter } from '../../auth/auth.plugin.js';
import { admitSocket, CLOSE_UNAUTHORIZED, selectSubprotocol, type SocketAdmission } from '../../auth/socket-admission.js';
import { ChatSocket, type ChatSocketDeps } from './chat-socket.js';
import { LargeFrameGate } from './large-frame-gate.js';

/**
 * Frames over SMALL_FRAME_BYTES being received at once, over all sockets (large-frame-gate.ts): what the service
 * holds of them is about LARGE_FRAMES_AT_ONCE × the largest frame, plus one being decoded. Two let two users send
 * images at full speed at the same time; more would only raise the memory bound.
 */
const LARGE_FRAMES_AT_ONCE = 2;
/** A frame in progress below this never waits for a slot (any text message; small images). */
const SMALL_FRAME_BYTES = 1024 * 1024;

export interface WsRoutesOptions extends ChatSocketDeps {
  /** CORS_ORIGINS: browser origins besides the service's own that may open the socket. */
  corsOrigins: readonly string[];
  /**
   * The REST rate limit (per IP without a valid token): every refused authentication of a socket counts against
   * it, so guessing tokens over WebSocket upgrades is throttled exactly like over REST. Past it, the upgrade itself
   * is answered 429 `{detail}`.
   */
  authFailureLimit?: RequestLimiter;
  /** Most open sockets per user (per IP with AUTH_DISABLED; local mode is not limited); 0: no limit. */
  maxSocketsPerUser: number;
}

/**
 * Largest inbound frame, from the real limits: the biggest `chat` frame that can be valid. Each image is at most
 * MAX_IMAGE_BYTES in base64 (4 characters per 3 bytes) with a `data:` prefix and its JSON; the text at most
 * MAX_MESSAGE_CHARS characters, each at most 6 bytes in JSON (`\uXXXX`); plus the frame's own fields. A bigger frame
 * cannot be valid, so it is not even read (close 1009).
 */
export const maxFrameBytes = (deps: Pick<ChatSocketDeps, 'images' | 'maxMessageChars'>): number => {
  const perImage = Math.ceil(deps.images.maxBytes / 3) * 4 + 128;
  return deps.images.maxCount * perImage + deps.maxMessageChars * 6 + 1024;
};

/** Close code of a socket over MAX_SOCKETS_PER_USER. */
export const CLOSE_TOO_MANY_SOCKETS = 4429;

/**
 * `/ws/chat`: the live half of the wire contract. Whether the socket may be used, and by whom, is decided before
 * the upgrade (admitSocket); a refused socket is still upgraded, then closed at once with 4401 or 4403, because a
 * browser sees the close code but never the HTTP status of a refused upgrade.
 */
export const wsRoutes: FastifyPluginAsync<WsRoutesOptions> = async (app, { corsOrigins, authFailureLimit, maxSocketsPerUser, ...deps }) => {
  await app.register(websocket, {
    options: { maxPayload: maxFrameBytes(deps), handleProtocols: (protocols) => selectSubprotocol(protocols) },
    // A protocol error (invalid UTF-8, a frame over the limit, a bad opcode) ends the connection; it is logged
    // once, at warn, with its reason and no stack (the plugin's default logs an error with a stack each time).
    errorHandler: (error, socket, req) => {
      req.log.warn({ reason: error.message, code: (error as { code?: unknown }).code }, 'websocket protocol error: connection closed');
      socket.terminate();
    },
  });
  const socketsPerKey = new Map<string, number>();
  const largeFrames = new LargeFrameGate(LARGE_FRAMES_AT_ONCE, SMALL_FRAME_BYTES);
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
      const key = identity.limitKey;
      if (key !== undefined && maxSocketsPerUser > 0) {
        const open = socketsPerKey.get(key) ?? 0;
        if (open >= maxSocketsPerUser) {
          req.log.info({ open }, 'websocket refused: too many open sockets for this user');
          socket.close(CLOSE_TOO_MANY_SOCKETS, `too many open connections: at most ${maxSocketsPerUser} per user`);
          return;
        }
        socketsPerKey.set(key, open + 1);
        socket.once('close', () => {
          const left = (socketsPerKey.get(key) ?? 1) - 1;
          if (left > 0) socketsPerKey.set(key, left);
          else socketsPerKey.delete(key);
        });
      }
      new ChatSocket(socket, { ...deps, largeFrames }, req.log, identity).start();
    },
  );
};
