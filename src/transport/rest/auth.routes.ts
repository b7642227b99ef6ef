import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { AuthService } from '../../auth/auth.service.js';
import { principalOf } from '../../auth/auth.plugin.js';
import { WsTicketSchema } from '../../protocol/rest.js';

export interface AuthRoutesOptions {
  auth: AuthService;
}

/** `/api/ws-ticket`: a short-lived, single-use ticket for browsers to open the WebSocket as the token's user. */
export const authRoutes: FastifyPluginAsyncZod<AuthRoutesOptions> = async (app, { auth }) => {
  app.post('/api/ws-ticket', {
    schema: {
      tags: ['auth'],
      summary: 'A single-use ticket to open /ws/chat?ticket=... within a few seconds',
      response: { 200: WsTicketSchema },
    },
    handler: async (req) => ({
      ticket: auth.tickets.issue(principalOf(req)),
      expires_in: Math.round(auth.tickets.ttlMs / 1000),
    }),
  });
};
