import type { Chat } from '../protocol/chat.js';
import {
  CHAT_EXPORT_FORMAT,
  CHAT_EXPORT_VERSION,
  type ChatExport,
  type ExportedEntry,
  type ExportedQuery,
} from '../protocol/export.js';
import type { ChatTranscript } from '../store/chat-transfer.repository.js';

/** The export document of a chat (docs/export-format.md). */
export function buildChatExport(chat: Chat, transcript: ChatTranscript, exportedAt: Date): ChatExport {
  const usage = { input_tokens: 0, output_tokens: 0, cost_usd: 0, queries: 0 };
  for (const q of transcript.queries) {
    if (q.usage.length > 0) usage.queries++;
    for (const u of q.usage) {
      usage.input_tokens += u.input_tokens;
      usage.output_tokens += u.output_tokens;
      usage.cost_usd += u.cost_usd;
    }
  }
  return {
    format: CHAT_EXPORT_FORMAT,
    version: CHAT_EXPORT_VERSION,
    exported_at: exportedAt.toISOString(),
    chat: {
      id: chat.id,
      title: chat.title,
      title_source: chat.title_source ?? 'user',
      created_at: chat.created_at,
      updated_at: chat.updated_at,
      settings: chat.settings ?? {},
    },
    usage,
    queries: transcript.queries,
    entries: transcript.entries,
  };
}

/**
 * A file name for the download: the title's letters and digits (any script) joined by dashes, and the day.
 * `ascii` is the fallback for clients that ignore `filename*`.
 */
export function exportFileName(title: string, exportedAt: Date, extension: 'json' | 'md'): { utf8: string; ascii: string } {
  const day = exportedAt.toISOString().slice(0, 10);
  const slug = (s: string) =>
    s
      .normalize('NFKC')
      .replace(/[^\p{L}\p{N}]+/gu, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 60)
      .replace(/-+$/, '');
  const name = slug(title) || 'chat';
  const ascii = slug(title.normalize('NFKD').replace(/[^\x20-\x7e]/g, ' ')) || 'chat';
  return { utf8: `${name}-${day}.${extension}`, ascii: `${ascii}-${day}.${extension}` };
}

/** `Content-Disposition` for a download (RFC 6266; `filename*` per RFC 5987 carries a non-ASCII name). */
export function attachmentHeader(name: { utf8: string; ascii: string }): string {
  const encoded = encodeURIComponent(name.utf8).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename="${name.ascii}"; filename*=UTF-8''${encoded}`;
}

/** A code fence longer than any run of backticks in `text`, so the text cannot close it. */
function fenced(text: string, language = ''): string {
  const longest = Math.max(2, ...[...text.matchAll(/`+/g)].map((m) => m[0].length));
  const fence = '`'.repeat(longest + 1);
  return `${fence}${language}\n${text}\n${fence}`;
}

const STATUS_NOTE: Record<string, string> = {
  streaming: 'still being written when exported',
  interrupted: 'stopped before it ended',
  error: 'failed',
};

const QUERY_STATUS: Record<ExportedQuery['status'], string> = {
  running: 'still running when exported',
  complete: 'complete',
  cancelled: 'stopped',
  error: 'ended with an error',
};

const usd = (n: number) => `$${n.toFixed(4)}`;

function querySummary(q: ExportedQuery): string {
  const parts = [`Answer ${QUERY_STATUS[q.status]}`];
  if (q.cost_usd !== null) parts.push(usd(q.cost_usd));
  if (q.duration_ms !== null) parts.push(`${(q.duration_ms / 1000).toFixed(1)} s`);
  const input = q.usage.reduce((n, u) => n + u.input_tokens, 0);
  const output = q.usage.reduce((n, u) => n + u.output_tokens, 0);
  if (q.usage.length > 0) parts.push(`${input} input / ${output} output tokens`);
  const models = [...new Set(q.usage.map((u) => u.model).filter((m): m is string => m !== null))];
  if (models.length > 0) parts.push(models.join(', '));
  if (q.error) parts.push(`error: ${q.error.replace(/\s+/g, ' ')}`);
  return `_${parts.join(' · ')}_`;
}

function entryMarkdown(entry: ExportedEntry): string {
  if (entry.type === 'tool_use') {
    const lines = [`**Tool \`${entry.name}\`**${entry.is_error ? ' (failed)' : ''}`, '', fenced(JSON.stringify(entry.input, null, 2), 'json')];
    lines.push('', entry.result === null ? '_No result._' : `Result:\n\n${fenced(entry.result)}`);
    return lines.join('\n');
  }
  const who = entry.role === 'user' ? 'User' : 'Assistant';
  const notes = [entry.created_at];
  if (entry.status !== 'complete') notes.push(`_${STATUS_NOTE[entry.status] ?? entry.status}_`);
  if (entry.superseded) notes.push('_superseded by a retry_');
  const lines = [`### ${who} · ${notes.join(' · ')}`, '', entry.content];
  entry.images.forEach((img, i) => {
    const bytes = Buffer.byteLength(img.base64, 'base64');
    lines.push('', `![image ${i + 1} (${img.media_type}, ${bytes} bytes)](data:${img.media_type};base64,${img.base64})`);
  });
  return lines.join('\n');
}

/**
 * A readable transcript: messages with their times and statuses, tool calls with input and result, images inline
 * as data URLs (the file stands alone; some viewers do not show data URLs), each answer's status and cost. For
 * reading only: the JSON export is the one that imports.
 */
export function renderChatMarkdown(doc: ChatExport): string {
  const out: string[] = [`# ${doc.chat.title.replace(/\n/g, ' ')}`, ''];
  out.push(
    `- Created: ${doc.chat.created_at}`,
    `- Exported: ${doc.exported_at}`,
    `- Cost: ${usd(doc.usage.cost_usd)} (${doc.usage.input_tokens} input / ${doc.usage.output_tokens} output tokens, ${doc.usage.queries} answers)`,
    '',
  );
  const queries = new Map(doc.queries.map((q) => [q.id, q]));
  /** After the last entry of a query comes its summary. */
  const lastEntryOf = new Map<string, number>();
  doc.entries.forEach((e, i) => {
    if (e.query_id !== null) lastEntryOf.set(e.query_id, i);
  });
  doc.entries.forEach((entry, i) => {
    out.push('---', '', entryMarkdown(entry), '');
    const query = entry.query_id === null ? undefined : queries.get(entry.query_id);
    if (query && lastEntryOf.get(query.id) === i) out.push(querySummary(query), '');
  });
  return out.join('\n');
}
