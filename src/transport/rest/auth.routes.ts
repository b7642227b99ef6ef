import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { AuthService } from '../../auth/auth.service.js';
import { principalOf } from '../../auth/auth.plugin.js';
import { ErrorBodySchema, WsTicketSchema } from '../../protocol/rest.js';

export interface AuthRoutesOptions {
  auth: AuthService;
}

/** `/api/ws-ticket`: a short-lived, single-use ticket for browsers to open the WebSocket as the token's user. */
export const authRoutes: FastifyPluginAsyncZod<AuthRoutesOptions> = async (app, { auth }) => {
  app.post('/api/ws-ticket', {
    schema: {
      tags: ['auth'],
      summary: 'A single-use ticket to open /ws/chat?ticket=... within a few seconds',
      response: { 200: WsTicketSchema, 503: ErrorBodySchema },
    },
    handler: async (req, reply) => {
      let ticket: string;
      try {
        ticket = await auth.tickets.issue(principalOf(req));
      } catch (err) {
        // Tickets shared through Redis, and Redis unreachable: the token itself still opens a socket.
        req.log.warn({ err }, 'could not issue a WebSocket ticket');
        return reply.code(503).header('retry-after', '5').send({ detail: 'tickets unavailable: try again shortly' });
      }
      return { ticket, expires_in: Math.round(auth.tickets.ttlMs / 1000) };
    },
  });
};
