import type { ExportedEntry } from '../protocol/export.js';
import type { Store } from '../store/store.js';

/**
 * Most characters of an imported transcript handed to the model (about 25k tokens): enough for the thread of a
 * long conversation, small enough to leave the model room to answer. Longer transcripts keep their newest part.
 */
export const IMPORT_CONTEXT_MAX_CHARS = 100_000;
/** Most characters of one tool result in that transcript: the model needs what a tool said, not all of a log. */
const TOOL_RESULT_MAX_CHARS = 2_000;

export const IMPORT_CONTEXT_OPEN = '<imported-conversation>';
export const IMPORT_CONTEXT_CLOSE = '</imported-conversation>';

const cut = (text: string, max: number) => (text.length <= max ? text : `${text.slice(0, max)} [… ${text.length - max} more characters]`);

/**
 * The model's context of an imported chat: the imported conversation as a transcript, which the chat's first
 * message after the import carries to the agent ahead of the user's text (the agent starts a fresh session; from
 * then on that session holds it). Superseded answers are left out, as they are from the model's context anywhere;
 * images are named, not sent again. Undefined for a conversation with nothing to carry.
 */
export function buildImportContext(entries: ExportedEntry[]): string | undefined {
  // An answer a retry replaced is gone from the model's context, its tool calls with it.
  const supersededQueries = new Set(
    entries.filter((e) => e.type === 'message' && e.superseded && e.query_id !== null).map((e) => e.query_id),
  );
  const lines: string[] = [];
  for (const entry of entries) {
    if (entry.type === 'tool_use') {
      if (entry.superseded || (entry.query_id !== null && supersededQueries.has(entry.query_id))) continue;
      const result = entry.result === null ? 'no result' : cut(entry.result, TOOL_RESULT_MAX_CHARS);
      lines.push(`[tool call ${entry.name}] input: ${JSON.stringify(entry.input)}\n[tool ${entry.is_error ? 'error' : 'result'}] ${result}`);
      continue;
    }
    if (entry.superseded) continue;
    const images = entry.images.map((img) => `[image: ${img.media_type}, not included]`);
    const status = entry.status === 'complete' ? '' : ` (${entry.status})`;
    lines.push(`[${entry.role}${status}] ${[entry.content, ...images].filter((s) => s.length > 0).join('\n')}`);
  }
  if (lines.length === 0) return undefined;
  // The newest lines that fit; what is left out is said, not hidden.
  const kept: string[] = [];
  let size = 0;
  for (let i = lines.length - 1; i >= 0; i--) {
    size += lines[i]!.length + 2;
    if (size > IMPORT_CONTEXT_MAX_CHARS && kept.length > 0) {
      kept.unshift(`[${i + 1} earlier part(s) of the conversation left out for length]`);
      break;
    }
    kept.unshift(cut(lines[i]!, IMPORT_CONTEXT_MAX_CHARS));
  }
  return [
    IMPORT_CONTEXT_OPEN,
    'This chat was imported from an export of an earlier conversation. That conversation, oldest first, is below; ' +
      'continue it. Its tools ran elsewhere: files or state they produced are not in your workspace.',
    '',
    kept.join('\n\n'),
    IMPORT_CONTEXT_CLOSE,
    '',
    '',
  ].join('\n');
}

/**
 * The context of a fork whose point no agent session reaches (the conversation up to it was imported: its answers
 * were given elsewhere): the conversation it holds as an imported transcript, as an imported chat gets. A question
 * the fork ends with is left out: the fork's next answer (a retry) sends it.
 */
export function buildForkContext(entries: ExportedEntry[]): string | undefined {
  const last = entries.at(-1);
  const upToPoint = last?.type === 'message' && last.role === 'user' ? entries.slice(0, -1) : entries;
  return buildImportContext(upToPoint);
}

/**
 * What the query's message carries to the model ahead of its text: while the chat's imported transcript is due
 * (ChatsTable.import_context), the stored conversation before the user message the query answers, as a
 * transcript; otherwise nothing. Built when the message is sent, not when the chat was imported, so an answer
 * superseded meanwhile (a retry) is left out and a re-answered question is not sent twice. `''` when it is due but
 * there is nothing before the message (it is settled all the same).
 */
export async function importedContextFor(store: Store, chatId: string, queryId: string): Promise<string | undefined> {
  if (!(await store.chats.importContext(chatId))) return undefined;
  const [query, { entries }] = await Promise.all([
    store.queries.get(queryId),
    store.transfer.transcript(chatId, { imageData: false }),
  ]);
  const userMessageId =
    query?.user_message_id ??
    entries.find((e) => e.type === 'message' && e.role === 'user' && e.query_id === queryId)?.id;
  const at = entries.findIndex((e) => e.type === 'message' && e.id === userMessageId);
  return buildImportContext(at >= 0 ? entries.slice(0, at) : entries) ?? '';
}
