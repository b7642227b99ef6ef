import { z } from 'zod';

/** Shapes shared by REST answers and WebSocket events: a chat and its stored messages. */

export const ChatIdSchema = z.uuid({ message: 'chat_id must be a UUID' });

export const ChatSchema = z
  .object({
    id: z.string(),
    title: z.string(),
    created_at: z.string().meta({ description: 'ISO-8601' }),
    updated_at: z.string().meta({ description: 'ISO-8601; the chat list is ordered by it, newest first' }),
    sdk_session_id: z.string().nullable().meta({ description: 'Agent SDK session that holds the model context' }),
  })
  .meta({ id: 'Chat' });
export type Chat = z.infer<typeof ChatSchema>;

export const StoredImageSchema = z
  .object({ id: z.string(), base64: z.string(), mimeType: z.string() })
  .meta({ id: 'StoredImage' });
export type StoredImage = z.infer<typeof StoredImageSchema>;

export const MessageStatusSchema = z.enum(['streaming', 'complete', 'interrupted', 'error']);

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
  })
  .meta({ id: 'ChatMessage' });
export type ChatMessage = z.infer<typeof ChatMessageSchema>;

export const ToolUseRecordSchema = z
  .object({
    id: z.string().meta({ description: 'The tool_use id the model gave the call' }),
    tool_name: z.string(),
    tool_input: z.record(z.string(), z.unknown()),
    result_content: z.string().nullable(),
    is_error: z.boolean(),
    timestamp: z.string(),
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
