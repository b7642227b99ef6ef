// Reading a Messages API request body: the only input the fake ever looks at.
// Everything here is a pure function of the request, so concurrent sessions stay independent.

export interface ContentBlock {
  type: string;
  [key: string]: unknown;
}

export interface ApiMessage {
  role: string;
  content: string | ContentBlock[];
}

/** The subset of a /v1/messages body the fake cares about (the CLI sends much more). */
export interface MessagesRequest {
  model?: string;
  messages?: ApiMessage[];
  system?: unknown;
  tools?: unknown[];
  stream?: boolean;
  max_tokens?: number;
}

export interface ImageInfo {
  mediaType: string;
  bytes: number;
}

// The CLI injects context (date, CLAUDE.md, skills, ...) as extra text blocks wrapped in this tag.
const REMINDER_PREFIX = '<system-reminder>';

/** A message's content as blocks: plain string content is one text block. */
export function blocksOf(message: ApiMessage | undefined): ContentBlock[] {
  if (!message) return [];
  if (typeof message.content === 'string') return [{ type: 'text', text: message.content }];
  return Array.isArray(message.content) ? message.content : [];
}

function textOf(block: ContentBlock): string | undefined {
  return block.type === 'text' && typeof block.text === 'string' ? block.text : undefined;
}

/** What the human typed: text blocks minus CLI system reminders, joined and trimmed. */
export function userText(message: ApiMessage | undefined): string {
  return blocksOf(message)
    .map(textOf)
    .filter((t): t is string => t !== undefined && !t.trimStart().startsWith(REMINDER_PREFIX))
    .join('\n')
    .trim();
}

/** Text of every tool_result block (content may be a string or an array of text blocks). */
export function toolResultTexts(message: ApiMessage | undefined): string[] {
  return blocksOf(message)
    .filter((b) => b.type === 'tool_result')
    .map((b) => {
      const content = b.content;
      if (typeof content === 'string') return content;
      if (Array.isArray(content)) {
        return (content as ContentBlock[])
          .map(textOf)
          .filter((t): t is string => t !== undefined)
          .join('\n');
      }
      return '';
    });
}

/** Base64 image blocks of a message, in order, with their decoded size. */
export function imagesOf(message: ApiMessage | undefined): ImageInfo[] {
  return blocksOf(message)
    .filter((b) => b.type === 'image')
    .map((b) => {
      const source = (b.source ?? {}) as { type?: string; media_type?: string; data?: string };
      const bytes = source.type === 'base64' && typeof source.data === 'string'
        ? Buffer.from(source.data, 'base64').length
        : 0;
      return { mediaType: source.media_type ?? 'unknown', bytes };
    });
}

/**
 * Index of the user turn the model must answer: the last message once trailing `system`-role
 * messages are skipped (the CLI appends its environment/context as mid-conversation system
 * messages AFTER the user's message). -1 if the conversation does not end on a user turn.
 */
function lastUserIndex(request: MessagesRequest): number {
  const messages = request.messages ?? [];
  for (let i = messages.length - 1; i >= 0; i--) {
    const role = messages[i]?.role;
    if (role === 'user') return i;
    if (role !== 'system') return -1;
  }
  return -1;
}

export function lastUserMessage(request: MessagesRequest): ApiMessage | undefined {
  return request.messages?.[lastUserIndex(request)];
}

/**
 * Plain user texts of all user messages before the one being answered: tool results and
 * reminder-only messages are skipped. This is what proves a resumed session kept its history.
 */
export function earlierUserTexts(request: MessagesRequest): string[] {
  const end = lastUserIndex(request);
  return (request.messages ?? [])
    .slice(0, Math.max(0, end))
    .filter((m) => m.role === 'user' && toolResultTexts(m).length === 0)
    .map(userText)
    .filter((t) => t.length > 0);
}

/** Rough token estimate (~4 chars per token): enough for the CLI to compute a non-zero cost. */
export function estimateTokens(value: unknown): number {
  const text = typeof value === 'string' ? value : JSON.stringify(value ?? '');
  return Math.max(1, Math.ceil(text.length / 4));
}
