import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { ChatMessageSchema, ChatSchema, ToolUseRecordSchema } from '../../protocol/chat.js';
import type { FastifyError, FastifyReply } from 'fastify';
import { ChatExportSchema, ExportFormatQuerySchema } from '../../protocol/export.js';
import { attachmentHeader, exportFileName, renderChatMarkdown } from '../../chats/chat-export.js';
import {
  ChatListQuerySchema,
  ChatListSchema,
  ChatParamsSchema,
  CreateChatBodySchema,
  ErrorBodySchema,
  ForkChatBodySchema,
  ImageParamsSchema,
  MessagesQuerySchema,
  PermissionRuleListSchema,
  PermissionRuleParamsSchema,
  ToolUseParamsSchema,
  SearchQuerySchema,
  SuccessSchema,
  UpdateChatBodySchema,
  UsageQuerySchema,
  UsageReportSchema,
} from '../../protocol/rest.js';
import { z } from 'zod';
import type { ChatService } from '../../chats/chat.service.js';
import { principalOf } from '../../auth/auth.plugin.js';
import { NotFoundError } from './errors.js';

export interface ChatsRoutesOptions {
  chats: ChatService;
  /** Default page size of the lists. */
  pageSize: number;
  /** Largest body of POST /api/chats/import (importBodyLimit: it carries images; other routes keep the app's). */
  importBodyLimit: number;
}

/**
 * Lists stay JSON arrays (what the seed's clients read); paging rides in headers: `X-Has-More: true` and a
 * `Link` (RFC 8288) to the next page when there is more.
 */
function setPageHeaders(reply: FastifyReply, hasMore: boolean, rel: 'next' | 'prev', url: string): void {
  reply.header('X-Has-More', String(hasMore));
  if (hasMore) reply.header('Link', `<${url}>; rel="${rel}"`);
}

/** `/api/chats...`: the REST half of the wire contract. Every call acts for the request's principal (auth.plugin). */
export const chatsRoutes: FastifyPluginAsyncZod<ChatsRoutesOptions> = async (app, { chats, pageSize, importBodyLimit }) => {
  const notFound = { 404: ErrorBodySchema };
  const found = <T>(value: T | undefined, id: string): T => {
    if (value === undefined) throw new NotFoundError(`chat ${id} not found`);
    return value;
  };

  app.get('/api/chats', {
    schema: {
      tags: ['chats'],
      summary: 'List chats, most recently active first (paged: X-Has-More and Link headers)',
      querystring: ChatListQuerySchema,
      response: { 200: ChatListSchema, 400: ErrorBodySchema },
    },
    handler: async (req, reply) => {
      const limit = req.query.limit ?? pageSize;
      const page = await chats.listPage(principalOf(req), { limit, ...(req.query.before ? { before: req.query.before } : {}) });
      const last = page.chats.at(-1)?.id ?? '';
      setPageHeaders(reply, page.hasMore, 'next', `/api/chats?limit=${limit}&before=${encodeURIComponent(last)}`);
      return page.chats;
    },
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
    handler: async (req) => found(await chats.getWithUsage(principalOf(req), req.params.id), req.params.id),
  });

  app.get('/api/usage', {
    schema: {
      tags: ['usage'],
      summary: "The caller's tokens and cost per chat or per UTC day (chats deleted since included)",
      querystring: UsageQuerySchema,
      response: { 200: UsageReportSchema },
    },
    handler: async (req) => {
      const { from, to, group_by } = req.query;
      return chats.usage(principalOf(req), { ...(from ? { from } : {}), ...(to ? { to } : {}) }, group_by);
    },
  });

  for (const method of ['PUT', 'PATCH'] as const) {
    app.route({
      method,
      url: '/api/chats/:id',
      schema: {
        tags: ['chats'],
        summary: "Rename a chat and/or change its own agent settings, within the service's (PUT and PATCH are the same)",
        params: ChatParamsSchema,
        body: UpdateChatBodySchema,
        response: { 200: ChatSchema, 403: ErrorBodySchema, ...notFound },
      },
      handler: async (req) => {
        const { title, settings } = req.body;
        const changes = { ...(title !== undefined ? { title } : {}), ...(settings ? { settings } : {}) };
        return found(await chats.update(principalOf(req), req.params.id, changes), req.params.id);
      },
    });
  }

  app.post('/api/chats/:id/fork', {
    schema: {
      tags: ['chats'],
      summary: "A new chat with this chat's conversation up to a message, its agent continuing from that point",
      params: ChatParamsSchema,
      body: ForkChatBodySchema,
      response: { 201: ChatSchema, 403: ErrorBodySchema, 409: ErrorBodySchema, ...notFound },
    },
    handler: async (req, reply) => {
      const chat = found(await chats.fork(principalOf(req), req.params.id, req.body.message_id), req.params.id);
      return reply.code(201).send(chat);
    },
  });

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
      summary: 'Messages of a chat, oldest first: the latest page, or the one before/after a message (X-Has-More, Link)',
      params: ChatParamsSchema,
      querystring: MessagesQuerySchema,
      response: { 200: z.array(ChatMessageSchema), 400: ErrorBodySchema, ...notFound },
    },
    handler: async (req, reply) => {
      const { id } = req.params;
      const limit = req.query.limit ?? pageSize;
      const { before, after } = req.query;
      const page = found(
        await chats.messages(principalOf(req), id, { limit, ...(before ? { before } : {}), ...(after ? { after } : {}) }),
        id,
      );
      const base = `/api/chats/${encodeURIComponent(id)}/messages?limit=${limit}`;
      if (after) {
        setPageHeaders(reply, page.hasMore, 'next', `${base}&after=${encodeURIComponent(page.messages.at(-1)?.id ?? '')}`);
      } else {
        setPageHeaders(reply, page.hasMore, 'prev', `${base}&before=${encodeURIComponent(page.messages[0]?.id ?? '')}`);
      }
      return page.messages;
    },
  });

  // Images by reference (the `image_urls` capability): the bytes, with their content type. Owner-checked like
  // every chat route; immutable, so a client may cache them.
  app.get('/api/chats/:id/images/:image_id', {
    schema: {
      tags: ['chats'],
      summary: "One image of a chat's messages: its bytes, with its content type",
      params: ImageParamsSchema,
      response: { 200: z.any().meta({ description: 'The image (image/png, image/jpeg, image/gif or image/webp)' }), ...notFound },
    },
    handler: async (req, reply) => {
      const { id, image_id: imageId } = req.params;
      const image = await chats.image(principalOf(req), id, imageId);
      if (!image) throw new NotFoundError(`image ${imageId} not found in chat ${id}`);
      return reply
        .type(image.mediaType)
        .header('cache-control', 'private, max-age=31536000, immutable')
        .header('x-content-type-options', 'nosniff')
        .send(image.data);
    },
  });

  app.get('/api/chats/:id/tool-uses/:tool_use_id', {
    schema: {
      tags: ['chats'],
      summary: 'One tool use of a chat with its whole output (tool_history and tool_result cut long ones)',
      params: ToolUseParamsSchema,
      response: { 200: ToolUseRecordSchema, ...notFound },
    },
    handler: async (req) => {
      const { id, tool_use_id: toolUseId } = req.params;
      const toolUse = await chats.toolUse(principalOf(req), id, toolUseId);
      if (!toolUse) throw new NotFoundError(`tool use ${toolUseId} not found in chat ${id}`);
      return toolUse;
    },
  });

  app.get('/api/chats/:id/permissions', {
    schema: {
      tags: ['chats'],
      summary: "The chat's remembered approvals (\"Allow for this chat\"), oldest first: tool calls they match run without asking",
      params: ChatParamsSchema,
      response: { 200: PermissionRuleListSchema, ...notFound },
    },
    handler: async (req) => found(await chats.permissionRules(principalOf(req), req.params.id), req.params.id),
  });

  app.delete('/api/chats/:id/permissions/:rule_id', {
    schema: {
      tags: ['chats'],
      summary: 'Revoke a remembered approval: what it allowed is asked about again',
      params: PermissionRuleParamsSchema,
      response: { 200: SuccessSchema, ...notFound },
    },
    handler: async (req) => {
      const { id, rule_id: ruleId } = req.params;
      const revoked = found(await chats.revokePermissionRule(principalOf(req), id, ruleId), id);
      if (!revoked) throw new NotFoundError(`permission rule ${ruleId} not found in chat ${id}`);
      return { success: true as const };
    },
  });

  app.get('/api/chats/:id/export', {
    schema: {
      tags: ['chats'],
      summary:
        'The whole conversation as a download: format=json (the versioned export, importable: docs/export-format.md) ' +
        'or format=markdown (a readable transcript)',
      params: ChatParamsSchema,
      querystring: ExportFormatQuerySchema,
      response: {
        200: ChatExportSchema.or(z.string().meta({ description: 'format=markdown: text/markdown' })),
        ...notFound,
      },
    },
    handler: async (req, reply) => {
      const { id } = req.params;
      const doc = found(await chats.export(principalOf(req), id), id);
      const markdown = req.query.format === 'markdown';
      const name = exportFileName(doc.chat.title, new Date(doc.exported_at), markdown ? 'md' : 'json');
      reply.header('content-disposition', attachmentHeader(name)).header('cache-control', 'no-store');
      if (!markdown) return doc;
      return reply.type('text/markdown; charset=utf-8').send(renderChatMarkdown(doc));
    },
  });

  app.post('/api/chats/import', {
    bodyLimit: importBodyLimit,
    schema: {
      tags: ['chats'],
      summary:
        "An export (format=json) as a new chat of the caller: checked like live input, within the chat quota, stored " +
        'whole or not at all',
      body: ChatExportSchema,
      response: { 201: ChatSchema, 400: ErrorBodySchema, 403: ErrorBodySchema, 413: ErrorBodySchema, 422: ErrorBodySchema },
    },
    // Only the size refusal is worded here (with the limit); every other error goes on to the app's handler.
    errorHandler: (err: FastifyError, _req, reply) => {
      if (err.code !== 'FST_ERR_CTP_BODY_TOO_LARGE') throw err;
      return reply.code(413).send({ detail: `the import is larger than ${importBodyLimit} bytes, the most this service reads` });
    },
    handler: async (req, reply) => reply.code(201).send(await chats.import(principalOf(req), req.body)),
  });
};
