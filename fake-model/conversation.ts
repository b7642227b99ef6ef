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
  /** Side requests (e.g. the session title) ask for JSON via `format: {type:'json_schema'}`. */
  output_config?: { format?: { type?: string; schema?: unknown } };
}

export interface ImageInfo {
  mediaType: string;
  bytes: number;
}

// Text the CLI adds to user turns on its own: context reminders (date, skills, token budget...),
// the transcript of local commands such as `/model` (sent by setModel()), and the marker it
// leaves where a turn was interrupted.
const CLI_TEXT_PREFIXES = [
  '<system-reminder>',
  '<local-command-',
  '<command-name>',
  '<command-message>',
  '[Request interrupted by user',
];
const REMINDER_SPAN = /<system-reminder>[\s\S]*?<\/system-reminder>/g;

/** A message's content as blocks: plain string content is one text block. */
export function blocksOf(message: ApiMessage | undefined): ContentBlock[] {
  if (!message) return [];
  if (typeof message.content === 'string') return [{ type: 'text', text: message.content }];
  return Array.isArray(message.content) ? message.content : [];
}

function textOf(block: ContentBlock): string | undefined {
  return block.type === 'text' && typeof block.text === 'string' ? block.text : undefined;
}

function isCliText(block: ContentBlock): boolean {
  const text = textOf(block)?.trimStart();
  return text !== undefined && CLI_TEXT_PREFIXES.some((p) => text.startsWith(p));
}

/**
 * The human turns inside one API user message, each as its blocks (text, images, ...).
 * Usually there is one, but the CLI merges consecutive user turns into one message when a turn
 * got no assistant reply (after an API error or an interrupt). The merged turns are separated by
 * CLI text: each turn's own reminders, or the "[Request interrupted by user]" marker.
 */
export function userTurns(message: ApiMessage | undefined): ContentBlock[][] {
  const turns: ContentBlock[][] = [];
  let current: ContentBlock[] | undefined;
  for (const block of blocksOf(message)) {
    if (block.type === 'tool_result') continue;
    if (isCliText(block)) {
      current = undefined;
      continue;
    }
    if (!current) turns.push((current = []));
    current.push(block);
  }
  return turns;
}

// The service's own preamble of an imported chat's first message (the imported transcript): context, not the
// text the user typed, so a directive after it still counts. `/received` shows it.
const IMPORTED_SPAN = /<imported-conversation>[\s\S]*?<\/imported-conversation>\s*/g;

function joinedText(blocks: ContentBlock[]): string {
  return blocks
    .map(textOf)
    .filter((t): t is string => t !== undefined)
    .join('\n')
    .replace(IMPORTED_SPAN, '')
    .trim();
}

/**
 * Every message of the request as the model reads it, one `role: ...` line group per message: text (CLI reminders
 * removed), `[tool_use NAME {input}]`, `[tool_result TEXT]`, `[image MEDIA_TYPE]`. What `/received` answers with.
 */
export function transcriptOf(request: MessagesRequest): string {
  return (request.messages ?? [])
    // The CLI's own environment notes (role `system`) are left out: long, and the same in every turn.
    .filter((message) => message.role !== 'system')
    .map((message) => {
      const parts = blocksOf(message)
        .map((b): string => {
          if (b.type === 'text') return (textOf(b) ?? '').replace(REMINDER_SPAN, '').trim();
          if (b.type === 'tool_use') return `[tool_use ${String(b.name)} ${JSON.stringify(b.input ?? {})}]`;
          if (b.type === 'tool_result') return `[tool_result ${toolResultTexts({ role: 'user', content: [b] })[0] ?? ''}]`;
          if (b.type === 'image') return `[image ${String((b.source as { media_type?: string } | undefined)?.media_type ?? 'unknown')}]`;
          return '';
        })
        .filter((t) => t.length > 0);
      return parts.length > 0 ? `${message.role}: ${parts.join('\n')}` : '';
    })
    .filter((t) => t.length > 0)
    .join('\n');
}

/** What the human typed in the latest turn of a message, minus CLI additions. */
export function userText(message: ApiMessage | undefined): string {
  return joinedText(userTurns(message).at(-1) ?? []);
}

/**
 * Text of every tool_result block (content may be a string or an array of text blocks), with the
 * reminders the CLI appends to tool output removed.
 */
export function toolResultTexts(message: ApiMessage | undefined): string[] {
  return blocksOf(message)
    .filter((b) => b.type === 'tool_result')
    .map((b) => {
      const content = b.content;
      const raw = typeof content === 'string'
        ? content
        : Array.isArray(content)
          ? (content as ContentBlock[]).map(textOf).filter((t): t is string => t !== undefined).join('\n')
          : '';
      return raw.replace(REMINDER_SPAN, '').trim();
    });
}

/** Base64 image blocks of the latest turn of a message, in order, with their decoded size. */
export function imagesOf(message: ApiMessage | undefined): ImageInfo[] {
  return (userTurns(message).at(-1) ?? [])
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
 * Plain user texts of every turn before the one being answered, oldest first: tool results and
 * CLI reminders are left out. This is what proves a resumed session kept its history.
 */
export function earlierUserTexts(request: MessagesRequest): string[] {
  const end = lastUserIndex(request);
  const turns = (request.messages ?? [])
    .slice(0, end + 1)
    .filter((m) => m.role === 'user')
    .flatMap((m) => userTurns(m));
  // The last turn of the last user message is the one being answered, not an earlier one.
  if (end >= 0 && userTurns(request.messages?.[end]).length > 0) turns.pop();
  return turns.map(joinedText).filter((t) => t.length > 0);
}

/** Rough token estimate (~4 chars per token): enough for the CLI to compute a non-zero cost. */
export function estimateTokens(value: unknown): number {
  const text = typeof value === 'string' ? value : JSON.stringify(value ?? '');
  return Math.max(1, Math.ceil(text.length / 4));
}
