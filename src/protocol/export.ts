import { z } from 'zod';
import { ChatSettingsSchema, IMAGE_MEDIA_TYPES, MessageStatusSchema, TITLE_SOURCES, UsageTotalsSchema } from './chat.js';
import { TitleSchema } from './rest.js';

/**
 * The chat export format (`GET /api/chats/{id}/export?format=json`, read back by `POST /api/chats/import`): one
 * definition that types the export and validates an import. Documented in docs/export-format.md. Stable: a change
 * that an older reader would misread gets a new `version`; fields are added, never renamed.
 */

export const CHAT_EXPORT_FORMAT = 'agent-chat-export';
export const CHAT_EXPORT_VERSION = 1;

export const ExportFormatQuerySchema = z.object({
  format: z
    .enum(['json', 'markdown'], { message: 'format must be json or markdown' })
    .default('json')
    .meta({ description: 'json: the versioned export (importable); markdown: a readable transcript' }),
});

const isoTime = z.string().max(64).meta({ description: 'ISO-8601' });

export const ExportedImageSchema = z
  .object({
    media_type: z.enum(IMAGE_MEDIA_TYPES, { message: `media_type must be one of ${IMAGE_MEDIA_TYPES.join(', ')}` }),
    base64: z.string().min(1, 'image base64 must not be empty').meta({ description: 'The image bytes, base64' }),
  })
  .meta({ id: 'ExportedImage' });

export const ExportedMessageSchema = z
  .object({
    type: z.literal('message'),
    id: z.string().max(200),
    role: z.enum(['user', 'assistant']),
    content: z.string(),
    status: MessageStatusSchema,
    created_at: isoTime,
    query_id: z.string().max(200).nullable().meta({ description: 'The query (answer) it belongs to: an id in `queries`' }),
    superseded: z.boolean().meta({ description: 'An answer replaced by a retry: kept, never sent to the model again' }),
    images: z.array(ExportedImageSchema),
  })
  .meta({ id: 'ExportedMessage' });
export type ExportedMessage = z.infer<typeof ExportedMessageSchema>;

export const ExportedToolUseSchema = z
  .object({
    type: z.literal('tool_use'),
    id: z.string().min(1).max(200).meta({ description: 'The tool_use id the model gave the call' }),
    query_id: z.string().max(200).nullable(),
    name: z.string().min(1).max(200),
    input: z.record(z.string(), z.unknown()),
    result: z.string().nullable().meta({ description: 'The whole tool output; null if the call never got one' }),
    is_error: z.boolean(),
    created_at: isoTime,
    completed_at: isoTime.nullable(),
    superseded: z
      .boolean()
      .default(false)
      .meta({ description: 'A call of an answer replaced by a retry (absent in older files: false)' }),
  })
  .meta({ id: 'ExportedToolUse' });
export type ExportedToolUse = z.infer<typeof ExportedToolUseSchema>;

export const ExportedEntrySchema = z.discriminatedUnion('type', [ExportedMessageSchema, ExportedToolUseSchema]);
export type ExportedEntry = z.infer<typeof ExportedEntrySchema>;

const count = z.number().int().min(0);

/** One model turn's tokens and cost, as the SDK reported them. */
export const ExportedUsageSchema = z
  .object({
    model: z.string().max(200).nullable(),
    input_tokens: count,
    output_tokens: count,
    cache_read_input_tokens: count,
    cache_creation_input_tokens: count,
    cost_usd: z.number().min(0),
  })
  .meta({ id: 'ExportedUsage' });
export type ExportedUsage = z.infer<typeof ExportedUsageSchema>;

export const ExportedQuerySchema = z
  .object({
    id: z.string().max(200),
    status: z.enum(['running', 'complete', 'cancelled', 'error']),
    cost_usd: z.number().min(0).nullable(),
    duration_ms: count.nullable(),
    error: z.string().nullable(),
    started_at: isoTime,
    ended_at: isoTime.nullable(),
    usage: z.array(ExportedUsageSchema).meta({ description: 'Per model turn, in order' }),
  })
  .meta({ id: 'ExportedQuery' });
export type ExportedQuery = z.infer<typeof ExportedQuerySchema>;

export const ChatExportSchema = z
  .object({
    format: z.literal(CHAT_EXPORT_FORMAT, { message: `format must be "${CHAT_EXPORT_FORMAT}"` }),
    version: z.literal(CHAT_EXPORT_VERSION, {
      message: `version must be ${CHAT_EXPORT_VERSION} (the export version this service reads)`,
    }),
    exported_at: isoTime,
    chat: z.object({
      id: z.string().max(200),
      title: TitleSchema,
      title_source: z.enum(TITLE_SOURCES),
      created_at: isoTime,
      updated_at: isoTime,
      settings: ChatSettingsSchema.meta({
        description: "The chat's own agent settings ({} when none); imported only within what the service allows (403 otherwise)",
      }),
    }),
    usage: UsageTotalsSchema.meta({ description: 'Sum of every query\'s usage (derived: ignored on import)' }),
    queries: z.array(ExportedQuerySchema).meta({ description: 'One per user message sent to the agent, oldest first' }),
    entries: z
      .array(ExportedEntrySchema)
      .meta({ description: 'Messages and tool calls in conversation order (the order the chat shows them)' }),
  })
  .meta({ id: 'ChatExport' });
export type ChatExport = z.infer<typeof ChatExportSchema>;
