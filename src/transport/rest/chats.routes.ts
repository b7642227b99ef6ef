import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { ChatMessageSchema, ChatSchema } from '../../protocol/chat.js';
import {
  ChatListSchema,
  ChatParamsSchema,
  CreateChatBodySchema,
  ErrorBodySchema,
  SearchQuerySchema,
  SuccessSchema,
  UpdateChatBodySchema,
} from '../../protocol/rest.js';
import { z } from 'zod';
import type { ChatService } from '../../chats/chat.service.js';
import { principalOf } from '../../auth/auth.plugin.js';
import { NotFoundError } from './errors.js';

export interface ChatsRoutesOptions {
  chats: ChatService;
}

/** `/api/chats...`: the REST half of the wire contract. Every call acts for the request's principal (auth.plugin). */
export const chatsRoutes: FastifyPluginAsyncZod<ChatsRoutesOptions> = async (app, { chats }) => {
  const notFound = { 404: ErrorBodySchema };
  const found = <T>(value: T | undefined, id: string): T => {
    if (value === undefined) throw new NotFoundError(`chat ${id} not found`);
    return value;
  };

  app.get('/api/chats', {
    schema: { tags: ['chats'], summary: 'List chats, most recently active first', response: { 200: ChatListSchema } },
    handler: async (req) => chats.list(principalOf(req)),
  });

  app.post('/api/chats', {
    schema: {
      tags: ['chats'],
      summary: 'Create a chat',
      body: CreateChatBodySchema,
      response: { 201: ChatSchema, 403: ErrorBodySchema },
    },
    handler: async (req, reply) => reply.code(201).send(await chats.create(principalOf(req), req.body?.title)),
  });

  // Declared before /api/chats/:id so "search" is never taken for an id.
  app.get('/api/chats/search', {
    schema: {
      tags: ['chats'],
      summary: 'Chats whose title or messages contain the text',
      querystring: SearchQuerySchema,
      response: { 200: ChatListSchema },
    },
    handler: async (req) => chats.search(principalOf(req), req.query.q),
  });

  app.get('/api/chats/:id', {
    schema: { tags: ['chats'], summary: 'One chat', params: ChatParamsSchema, response: { 200: ChatSchema, ...notFound } },
    handler: async (req) => found(await chats.get(principalOf(req), req.params.id), req.params.id),
  });

  for (const method of ['PUT', 'PATCH'] as const) {
    app.route({
      method,
      url: '/api/chats/:id',
      schema: {
        tags: ['chats'],
        summary: 'Rename a chat (PUT and PATCH are the same)',
        params: ChatParamsSchema,
        body: UpdateChatBodySchema,
        response: { 200: ChatSchema, ...notFound },
      },
      handler: async (req) => found(await chats.rename(principalOf(req), req.params.id, req.body.title), req.params.id),
    });
  }

  app.delete('/api/chats/:id', {
    schema: {
      tags: ['chats'],
      summary: "Delete a chat: stops its agent, removes its messages, images and tool uses",
      params: ChatParamsSchema,
      response: { 200: SuccessSchema, ...notFound },
    },
    handler: async (req) => {
      if (!(await chats.delete(principalOf(req), req.params.id))) throw new NotFoundError(`chat ${req.params.id} not found`);
      return { success: true as const };
    },
  });

  app.get('/api/chats/:id/messages', {
    schema: {
      tags: ['chats'],
      summary: 'Messages of a chat, oldest first',
      params: ChatParamsSchema,
      response: { 200: z.array(ChatMessageSchema), ...notFound },
    },
    handler: async (req) => found(await chats.messages(principalOf(req), req.params.id), req.params.id),
  });
};
