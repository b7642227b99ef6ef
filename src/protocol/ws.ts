import { z } from 'zod';
import {
  ChatMessageSchema,
  ChatSchema,
  HistoryMessageSchema,
  ImageInputSchema,
  RememberRuleSchema,
  ToolUseRecordSchema,
} from './chat.js';
import { ERROR_CODES } from './errors.js';

/**
 * The /ws/chat protocol, both directions. Frames are JSON text. The wire names come from the seed client and
 * must not change; fields beyond it (`seq`, `query_id`, ...) are additive. docs/protocol.md describes every frame
 * and a test keeps it in step with this file.
 */

// ---------------------------------------------------------------- client → server

/** Chat ids are UUIDs; the cap only keeps an absurd value from being carried around (and echoed in errors). */
export const MAX_CHAT_ID_CHARS = 128;
const chatId = z
  .string({ message: 'chat_id is required' })
  .min(1, 'chat_id is required')
  .max(MAX_CHAT_ID_CHARS, `chat_id is at most ${MAX_CHAT_ID_CHARS} characters`);

/**
 * What a client can do beyond the seed protocol. Values the server does not know are ignored (a newer client talks
 * to an older server unchanged), so the field is a list of strings, not an enum.
 * - `permission_prompts`: it shows `permission_request` events and answers them; without a socket that can,
 *   the server settles every question at once by PERMISSION_FALLBACK instead of waiting for nobody.
 * - `image_urls`: `history` may carry images by reference (`{id, mimeType, url, size}`, fetched with GET url)
 *   instead of inline base64, so a chat full of images opens with a small snapshot.
 */
export const CLIENT_CAPABILITIES = ['permission_prompts', 'image_urls'] as const;
export type ClientCapability = (typeof CLIENT_CAPABILITIES)[number];
export const CapabilitiesSchema = z
  .array(z.string().max(64, 'a capability is at most 64 characters'))
  .max(32, 'at most 32 capabilities')
  .optional()
  .meta({
    description:
      `What this client supports (${CLIENT_CAPABILITIES.join(', ')}); unknown values are ignored. Applies to the ` +
      'socket from this frame on; a frame without it leaves the socket\'s capabilities as they were',
  });

export const SubscribeFrameSchema = z.object({
  type: z.literal('subscribe'),
  chat_id: chatId,
  last_seq: z
    .number()
    .int()
    .optional()
    .meta({ description: 'The last seq the client saw: it gets exactly the events after it when they are still kept' }),
  capabilities: CapabilitiesSchema,
});
export const UnsubscribeFrameSchema = z.object({ type: z.literal('unsubscribe'), chat_id: chatId });
export const ChatFrameSchema = z.object({
  type: z.literal('chat'),
  chat_id: chatId,
  content: z.string({ message: 'content must be a string' }),
  images: z.array(ImageInputSchema).optional(),
  client_id: z
    .string()
    .min(1, { message: 'client_id must not be empty' })
    .max(100, { message: 'client_id is longer than 100 characters' })
    .optional()
    .meta({
      description:
        "The client's own id of this message (e.g. a UUID), unique in the chat: a message sent again with the same id after a reconnect is not answered twice; echoed in user_message",
    }),
  capabilities: CapabilitiesSchema,
});
export const StopFrameSchema = z.object({ type: z.literal('stop'), chat_id: chatId });
/**
 * Answer the chat's last user message again: a running answer is stopped first, the previous answer is kept as
 * superseded and dropped from the model's context. Subscribes the socket like `chat`.
 */
export const RetryFrameSchema = z.object({ type: z.literal('retry'), chat_id: chatId, capabilities: CapabilitiesSchema });
export const ClearHistoryFrameSchema = z.object({ type: z.literal('clear_history'), chat_id: chatId });

export const PermissionResponseFrameSchema = z.object({
  type: z.literal('permission_response'),
  chat_id: chatId,
  request_id: z.string({ message: 'request_id is required' }).min(1, 'request_id is required'),
  allow: z.boolean({ message: 'allow must be true or false' }),
  remember: z
    .boolean()
    .optional()
    .meta({
      description:
        "Also allow, in this chat from now on, what the request's remember_rule describes (kept until revoked with " +
        'DELETE /api/chats/{id}/permissions/{rule_id})',
    }),
});

export const ClientFrameSchema = z.discriminatedUnion('type', [
  SubscribeFrameSchema,
  UnsubscribeFrameSchema,
  ChatFrameSchema,
  StopFrameSchema,
  ClearHistoryFrameSchema,
  PermissionResponseFrameSchema,
  RetryFrameSchema,
]);
export type ClientFrame = z.infer<typeof ClientFrameSchema>;
export type ChatFrame = z.infer<typeof ChatFrameSchema>;
export const CLIENT_FRAME_TYPES = ClientFrameSchema.options.map((o) => o.shape.type.value);

// ---------------------------------------------------------------- server → client

/** Every event about a chat carries its id and a per-chat increasing sequence number. */
const chatEvent = { chat_id: z.string(), seq: z.number().int() };
/** Events produced while answering one user message also name that query. */
const queryEvent = { ...chatEvent, query_id: z.string() };

export const ServerEventSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('connected') }),
  z.object({
    type: z.literal('history'),
    ...chatEvent,
    messages: z.array(HistoryMessageSchema),
    has_more: z
      .boolean()
      .optional()
      .meta({
        description:
          'Older messages exist (beyond PAGE_SIZE or HISTORY_MAX_BYTES): page back with GET /api/chats/{id}/messages?before=<first id>',
      }),
  }),
  z.object({
    type: z.literal('tool_history'),
    ...chatEvent,
    tool_uses: z.array(ToolUseRecordSchema),
    has_more: z
      .boolean()
      .optional()
      .meta({ description: 'Older tool uses exist beyond PAGE_SIZE or HISTORY_MAX_BYTES: they are not sent' }),
  }),
  z.object({
    type: z.literal('processing_state'),
    ...chatEvent,
    is_processing: z.boolean(),
    query_id: z.string().nullable(),
    streaming_state: z
      .object({ text: z.string().meta({ description: 'Text of the current answer streamed so far' }) })
      .nullable(),
  }),
  z.object({
    type: z.literal('user_message'),
    ...queryEvent,
    content: z.string(),
    message_id: z.string(),
    /** The chat frame's client_id, when it had one. */
    client_id: z.string().optional(),
  }),
  z.object({
    type: z.literal('answer_retried'),
    ...queryEvent,
    message_id: z.string().meta({ description: 'The user message answered again (the new answer is this query)' }),
    superseded_message_ids: z
      .array(z.string())
      .meta({ description: 'The previous answer: kept, now `superseded: true` in history and REST' }),
  }),
  z.object({ type: z.literal('stream_start'), ...queryEvent }),
  z.object({ type: z.literal('text_delta'), ...queryEvent, delta: z.string() }),
  z.object({ type: z.literal('stream_end'), ...queryEvent }),
  z.object({ type: z.literal('assistant_message'), ...queryEvent, content: z.string() }),
  z.object({
    type: z.literal('tool_use'),
    ...queryEvent,
    tool_name: z.string(),
    tool_id: z.string(),
    tool_input: z.record(z.string(), z.unknown()),
  }),
  z.object({
    type: z.literal('tool_result'),
    ...queryEvent,
    tool_id: z.string(),
    content: z.string(),
    is_error: z.boolean(),
    truncated: z
      .boolean()
      .optional()
      .meta({
        description:
          'true: content is the start of a longer output (TOOL_OUTPUT_MAX_CHARS) ending with a marker; the whole is ' +
          'GET /api/chats/{id}/tool-uses/{tool_id}',
      }),
  }),
  z.object({
    type: z.literal('result'),
    ...queryEvent,
    success: z.boolean(),
    cost: z.number().meta({ description: 'USD spent by this query alone' }),
    duration: z.number().meta({ description: 'Milliseconds from the message to the end of the answer' }),
  }),
  z.object({ type: z.literal('cancelled'), ...queryEvent }),
  z.object({
    type: z.literal('permission_request'),
    ...queryEvent,
    request_id: z.string(),
    tool_name: z.string(),
    tool_input: z.record(z.string(), z.unknown()),
    tool_use_id: z.string(),
    expires_at: z.string().meta({ description: 'ISO-8601: without an answer by then, the tool is not allowed' }),
    remember_rule: RememberRuleSchema.optional().meta({
      description:
        'What answering with remember: true allows from then on in this chat (never the whole tool). Always sent by ' +
        'this version; optional so a client also works with a server from before it',
    }),
  }),
  z.object({
    type: z.literal('permission_resolved'),
    ...queryEvent,
    request_id: z.string(),
    outcome: z.enum(['allowed', 'denied', 'timeout', 'cancelled']),
  }),
  z.object({ type: z.literal('history_cleared'), ...chatEvent }),
  z.object({
    type: z.literal('notice'),
    ...chatEvent,
    code: z.enum(['session_restarted']),
    message: z.string(),
  }),
  z.object({
    type: z.literal('chat_updated'),
    chat_id: z.string(),
    change: z.enum(['created', 'updated', 'deleted']).meta({
      description: 'created (POST, fork, import), updated (title, settings, a new message) or deleted',
    }),
    chat: ChatSchema.nullable().meta({ description: 'The chat as GET /api/chats/{id} lists it; null when deleted' }),
  }),
  z.object({
    type: z.literal('error'),
    error: z.string(),
    // A string, not the enum, on the wire: a client must accept a code added later (protocol/errors.ts).
    code: z.string().meta({
      description: `Stable machine-readable kind, one of: ${ERROR_CODES.join(', ')}. Clients should accept codes they do not know`,
    }),
    chat_id: z.string().optional(),
    seq: z.number().int().optional(),
    query_id: z.string().optional(),
  }),
]);
export type ServerEvent = z.infer<typeof ServerEventSchema>;
export type ServerEventType = ServerEvent['type'];
export type EventOf<T extends ServerEventType> = Extract<ServerEvent, { type: T }>;

/** A chat event before the session stamps it with `chat_id` and `seq`. */
export type ChatEventBody = ServerEvent extends infer E
  ? E extends { chat_id: string; seq: number }
    ? Omit<E, 'chat_id' | 'seq'>
    : never
  : never;

/** The events that end a query; each query gets exactly one. */
export const TERMINAL_EVENT_TYPES = ['result', 'cancelled', 'error'] as const;
