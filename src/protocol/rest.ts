import { z } from 'zod';
import { ChatSchema, ChatSettingsPatchSchema, PermissionRuleSchema, UsageTotalsSchema } from './chat.js';

/** Bodies, parameters and answers of the REST API (`/api/...`), also the source of the OpenAPI document. */

export const TitleSchema = z
  .string({ message: 'title must be a string' })
  .trim()
  .min(1, 'title must not be empty')
  .max(500, 'title must be at most 500 characters');

export const CreateChatBodySchema = z
  .object({ title: TitleSchema.optional() })
  .nullish()
  .meta({ description: 'The body may be absent; the title defaults to "New Chat"' });
export type CreateChatBody = z.infer<typeof CreateChatBodySchema>;

export const UpdateChatBodySchema = z
  .object({
    title: TitleSchema.optional(),
    settings: ChatSettingsPatchSchema.optional().meta({
      description:
        "The chat's own agent settings, merged into its current ones (null removes one). Only narrower than the " +
        "service's: a wider permission_mode, a tool outside ALLOWED_TOOLS or a model outside ALLOWED_MODELS is a 403",
    }),
  })
  .refine((body) => body.title !== undefined || body.settings !== undefined, { message: 'give a title, settings or both' });
export type UpdateChatBody = z.infer<typeof UpdateChatBodySchema>;

export const ForkChatBodySchema = z.object({
  message_id: z.string({ message: 'message_id is required' }).min(1, 'message_id is required').max(128).meta({
    description:
      'The message the fork ends with: an answer (its whole answer is included, the agent continues after it) or a ' +
      'question (included unanswered, the context ends at the answer before it: send `retry` to have it answered)',
  }),
});
export type ForkChatBody = z.infer<typeof ForkChatBodySchema>;

export const ChatParamsSchema = z.object({ id: z.string() });
export const ImageParamsSchema = z.object({ id: z.string(), image_id: z.string() });
export const ToolUseParamsSchema = z.object({ id: z.string(), tool_use_id: z.string() });
export const PermissionRuleParamsSchema = z.object({ id: z.string(), rule_id: z.string() });

export const SearchQuerySchema = z.object({
  q: z.string().max(500).default('').meta({ description: 'Matched case-insensitively against titles and message text' }),
});

const pageLimit = z.coerce
  .number({ message: 'limit must be a number' })
  .int('limit must be an integer')
  .min(1, 'limit must be at least 1')
  .max(10_000, 'limit must be at most 10000');

export const MessagesQuerySchema = z
  .object({
    limit: pageLimit.optional().meta({ description: 'Page size (default PAGE_SIZE, 500)' }),
    before: z.string().optional().meta({ description: 'Message id: the page of messages just before it' }),
    after: z.string().optional().meta({ description: 'Message id: the page of messages just after it' }),
  })
  .refine((q) => !(q.before && q.after), { message: 'give before or after, not both' });

export const ChatListQuerySchema = z.object({
  limit: pageLimit.optional().meta({ description: 'Page size (default PAGE_SIZE, 500)' }),
  before: z.string().optional().meta({ description: 'Chat id: the chats listed after it (older activity)' }),
});

const isoInstant = z
  .string()
  .refine((s) => /^\d{4}-\d{2}-\d{2}/.test(s) && !Number.isNaN(Date.parse(s)), 'must be an ISO-8601 date or time')
  .transform((s) => new Date(s).toISOString());

export const UsageQuerySchema = z.object({
  from: isoInstant.optional().meta({ description: 'ISO-8601 date or time, inclusive (e.g. 2026-11-01)' }),
  to: isoInstant.optional().meta({ description: 'ISO-8601 date or time, exclusive' }),
  group_by: z.enum(['chat', 'day'], { message: 'group_by must be chat or day' }).default('day'),
});

export const UsageReportSchema = z
  .object({
    group_by: z.enum(['chat', 'day']),
    from: z.string().nullable(),
    to: z.string().nullable(),
    total: UsageTotalsSchema,
    groups: z.array(
      UsageTotalsSchema.extend({
        key: z.string().meta({ description: 'The chat id, or the UTC day (YYYY-MM-DD)' }),
      }),
    ),
  })
  .meta({ id: 'UsageReport' });
export type UsageReport = z.infer<typeof UsageReportSchema>;

export const ErrorBodySchema = z.object({ detail: z.string() }).meta({ id: 'Error' });
export type ErrorBody = z.infer<typeof ErrorBodySchema>;

export const SuccessSchema = z.object({ success: z.literal(true) });

export const ChatListSchema = z.array(ChatSchema);

export const PermissionRuleListSchema = z.array(PermissionRuleSchema);

export const HealthSchema = z.object({ status: z.literal('ok') });

export const WsTicketSchema = z
  .object({
    ticket: z.string().meta({ description: 'Open the socket as /ws/chat?ticket=<ticket>; works once' }),
    expires_in: z.number().int().meta({ description: 'Seconds the ticket stays valid' }),
  })
  .meta({ id: 'WsTicket' });
export type WsTicket = z.infer<typeof WsTicketSchema>;

export const ServiceInfoSchema = z
  .object({
    version: z.string(),
    demo: z.boolean().meta({ description: "Answers come from the repo's scripted fake model, not Claude (DEMO_MODE)" }),
    limits: z
      .object({
        max_message_chars: z.number().int(),
        max_images_per_message: z.number().int(),
        max_image_bytes: z.number().int().meta({ description: 'Largest decoded image' }),
        image_media_types: z.array(z.string()),
      })
      .meta({ description: 'What a `chat` frame may carry: a client checks these before sending' }),
  })
  .meta({ id: 'ServiceInfo' });
export type ServiceInfo = z.infer<typeof ServiceInfoSchema>;
