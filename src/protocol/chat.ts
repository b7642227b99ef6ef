import { z } from 'zod';

/** Shapes shared by REST answers and WebSocket events: a chat and its stored messages. */

export const ChatIdSchema = z.uuid({ message: 'chat_id must be a UUID' });

/** The SDK's permission modes (their order from the narrowest to the widest is PERMISSION_MODE_ORDER in chats/chat-settings.ts). */
export const PERMISSION_MODES = ['default', 'acceptEdits', 'bypassPermissions', 'plan', 'dontAsk'] as const;
export type PermissionMode = (typeof PERMISSION_MODES)[number];

export const TITLE_SOURCES = ['default', 'message', 'model', 'user'] as const;

/**
 * A chat's own agent settings, each optional (absent: the service's). They can narrow what the operator allows,
 * never widen it: see docs/protocol.md, "Per-chat settings".
 */
export const ChatSettingsSchema = z
  .object({
    model: z
      .string({ message: 'model must be a string' })
      .trim()
      .min(1, 'model must not be empty')
      .max(200)
      .optional()
      .meta({ description: 'Model name; one of ALLOWED_MODELS when the service sets it' }),
    permission_mode: z
      .enum(PERMISSION_MODES, { message: `permission_mode must be one of ${PERMISSION_MODES.join(', ')}` })
      .optional()
      .meta({ description: 'No wider than the service\'s PERMISSION_MODE' }),
    system_prompt_append: z
      .string({ message: 'system_prompt_append must be a string' })
      .max(20_000, 'system_prompt_append must be at most 20000 characters')
      .optional()
      .meta({ description: "Appended to the service's system prompt for this chat" }),
    allowed_tools: z
      .array(z.string().min(1).max(200), { message: 'allowed_tools must be a list of tool names' })
      .max(100)
      .optional()
      .meta({ description: "Tools used without asking: a subset of the service's ALLOWED_TOOLS" }),
  })
  .strict()
  .meta({ id: 'ChatSettings' });
export type ChatSettings = z.infer<typeof ChatSettingsSchema>;

const shape = ChatSettingsSchema.shape;
/** Settings in a PATCH: a value sets it, `null` removes it (the service's own applies again), absent keeps it. */
export const ChatSettingsPatchSchema = z
  .object({
    model: shape.model.unwrap().nullable().optional().meta(shape.model.meta() ?? {}),
    permission_mode: shape.permission_mode.unwrap().nullable().optional().meta(shape.permission_mode.meta() ?? {}),
    system_prompt_append: shape.system_prompt_append.unwrap().nullable().optional().meta(shape.system_prompt_append.meta() ?? {}),
    allowed_tools: shape.allowed_tools.unwrap().nullable().optional().meta(shape.allowed_tools.meta() ?? {}),
  })
  .strict()
  .meta({ id: 'ChatSettingsPatch' });
export type ChatSettingsPatch = z.infer<typeof ChatSettingsPatchSchema>;

export const UsageTotalsSchema = z
  .object({
    input_tokens: z.number().int(),
    output_tokens: z.number().int(),
    cost_usd: z.number().meta({ description: 'USD, as the SDK estimates it' }),
    queries: z.number().int().meta({ description: 'Answers (queries) counted' }),
  })
  .meta({ id: 'UsageTotals' });

export const ChatSchema = z
  .object({
    id: z.string(),
    title: z.string(),
    created_at: z.string().meta({ description: 'ISO-8601' }),
    updated_at: z.string().meta({ description: 'ISO-8601; the chat list is ordered by it, newest first' }),
    sdk_session_id: z.string().nullable().meta({ description: 'Agent SDK session that holds the model context' }),
    title_source: z.enum(TITLE_SOURCES).optional().meta({
      description:
        'default ("New Chat"), message (from the first message), model (proposed by TITLE_MODEL) or user (set by a ' +
        'user: never replaced automatically)',
    }),
    settings: ChatSettingsSchema.optional().meta({ description: "The chat's own agent settings ({} when none)" }),
    forked_from: z.string().nullable().optional().meta({ description: 'The chat this one was forked from' }),
    usage: UsageTotalsSchema.optional().meta({ description: 'What the chat has cost so far (GET /api/chats/{id} only)' }),
  })
  .meta({ id: 'Chat' });
export type Chat = z.infer<typeof ChatSchema>;

export const StoredImageSchema = z
  .object({ id: z.string(), base64: z.string(), mimeType: z.string() })
  .meta({ id: 'StoredImage' });
export type StoredImage = z.infer<typeof StoredImageSchema>;

/**
 * An image sent by reference (in `history`, to a client with the `image_urls` capability): fetch its bytes with
 * `GET url` (same credentials as the API).
 */
export const ImageRefSchema = z
  .object({
    id: z.string(),
    mimeType: z.string(),
    url: z.string().meta({ description: 'Path of GET /api/chats/{id}/images/{image_id}: the image bytes, with its content type' }),
    size: z.number().int().meta({ description: 'Bytes of the image' }),
  })
  .meta({ id: 'ImageRef' });
export type ImageRef = z.infer<typeof ImageRefSchema>;

export const MessageStatusSchema = z.enum(['streaming', 'complete', 'interrupted', 'error']);

/**
 * How a stored answer ended, what it cost and how long it took: the `result` / `cancelled` / `error` event of a live
 * answer, for answers read back from history or REST.
 */
export const AnswerEndSchema = z
  .object({
    status: z.enum(['complete', 'cancelled', 'error']).meta({
      description: 'complete (the `result` event), cancelled (stopped) or error (the `error` event)',
    }),
    cost: z.number().nullable().meta({ description: 'USD spent by this answer alone, when known (like `result.cost`)' }),
    duration: z
      .number()
      .nullable()
      .meta({ description: 'Milliseconds from the message to the end of the answer, when known (like `result.duration`)' }),
    error: z.string().nullable().meta({ description: 'Why the answer failed (status error)' }),
  })
  .meta({ id: 'AnswerEnd' });
export type AnswerEnd = z.infer<typeof AnswerEndSchema>;

export const ChatMessageSchema = z
  .object({
    id: z.string(),
    chat_id: z.string(),
    role: z.enum(['user', 'assistant']),
    content: z.string(),
    timestamp: z.string().meta({ description: 'ISO-8601' }),
    images: z.array(StoredImageSchema).nullable(),
    status: MessageStatusSchema.meta({
      description:
        'complete; interrupted when a stop (or a crash) cut the answer short; error when the model failed; ' +
        'streaming while the answer is still being written',
    }),
    query_id: z.string().optional().meta({
      description:
        'The answer (query) the message belongs to: the user message that started it and the assistant text of its ' +
        'answer; absent on messages stored outside an answer',
    }),
    answer_end: AnswerEndSchema.optional().meta({
      description: 'On the last assistant message of a finished answer: how it ended, its cost and duration',
    }),
    superseded: z
      .boolean()
      .optional()
      .meta({
        description:
          'true: an answer replaced by a `retry` (kept, shown on request; the model no longer sees it). Absent otherwise',
      }),
  })
  .meta({ id: 'ChatMessage' });
export type ChatMessage = z.infer<typeof ChatMessageSchema>;

/** A message in `history`: images inline (base64), or by reference for a client with the `image_urls` capability. */
export const HistoryMessageSchema = ChatMessageSchema.extend({
  images: z.array(z.union([StoredImageSchema, ImageRefSchema])).nullable(),
}).meta({ id: 'HistoryMessage' });
export type HistoryMessage = z.infer<typeof HistoryMessageSchema>;

export const ToolUseRecordSchema = z
  .object({
    id: z.string().meta({ description: 'The tool_use id the model gave the call' }),
    tool_name: z.string(),
    tool_input: z.record(z.string(), z.unknown()),
    result_content: z.string().nullable(),
    is_error: z.boolean(),
    timestamp: z.string(),
    superseded: z
      .boolean()
      .optional()
      .meta({ description: 'true: a call of an answer replaced by a `retry` (kept; the model no longer sees it). Absent otherwise' }),
    result_truncated: z
      .boolean()
      .optional()
      .meta({
        description:
          'true: result_content is the start of a longer output (TOOL_OUTPUT_MAX_CHARS), ending with a marker; the whole ' +
          'record is GET /api/chats/{id}/tool-uses/{tool_use_id}',
      }),
  })
  .meta({ id: 'ToolUse' });
export type ToolUseRecord = z.infer<typeof ToolUseRecordSchema>;

export const IMAGE_MEDIA_TYPES = ['image/png', 'image/jpeg', 'image/gif', 'image/webp'] as const;
export type ImageMediaType = (typeof IMAGE_MEDIA_TYPES)[number];

export const ImageInputSchema = z.object({
  base64: z.string().min(1, 'image base64 must not be empty'),
  media_type: z.enum(IMAGE_MEDIA_TYPES, { message: `media_type must be one of ${IMAGE_MEDIA_TYPES.join(', ')}` }),
});
export type ImageInput = z.infer<typeof ImageInputSchema>;

/**
 * How a remembered approval ("Allow for this chat") matches later tool calls of the chat:
 * - `command`: a Bash command exactly equal to `pattern`.
 * - `command_prefix`: a simple Bash command (no `;`, `&`, `|`, redirection or substitution) matching the SDK's
 *   rule `pattern`: `npm test *` / `npm test:*` = `npm test` alone or followed by arguments; `*` stands for any text.
 * - `path_pattern`: a file whose absolute path matches `pattern` (`**` any depth, `*` within one folder).
 * - `file`: exactly the file `pattern` (absolute path).
 * - `domain`: a URL whose host is `pattern`.
 * - `input`: exactly this tool input (`pattern` is its JSON with sorted keys).
 */
export const PERMISSION_RULE_KINDS = ['command', 'command_prefix', 'path_pattern', 'file', 'domain', 'input'] as const;
export type PermissionRuleKind = (typeof PERMISSION_RULE_KINDS)[number];

export const RememberRuleSchema = z
  .object({
    tool_name: z.string(),
    kind: z.enum(PERMISSION_RULE_KINDS),
    pattern: z.string(),
    description: z.string().meta({ description: 'What the rule allows, in words (e.g. "Bash: exactly `touch a.txt`")' }),
  })
  .meta({ id: 'RememberRule' });
export type RememberRule = z.infer<typeof RememberRuleSchema>;

export const PermissionRuleSchema = RememberRuleSchema.extend({
  id: z.string(),
  chat_id: z.string(),
  created_at: z.string().meta({ description: 'ISO-8601' }),
}).meta({ id: 'PermissionRule', description: "A remembered approval of a chat: tool calls it matches run without asking" });
export type PermissionRule = z.infer<typeof PermissionRuleSchema>;
