import { ChatError } from '../protocol/errors.js';
import type { ChatExport } from '../protocol/export.js';
import type { ChatToImport } from '../store/chat-transfer.repository.js';
import { decodeImages, type ImageLimits } from './images.js';
import { buildImportContext } from './import-context.js';

/** The limits an import is held to: those of messages sent live. */
export interface ImportLimits {
  images: ImageLimits;
  maxMessageChars: number;
}

/** An export that parses but cannot be imported (a limit, a broken reference): a 400 naming the entry. */
export class ImportError extends Error {
  readonly statusCode = 400;
}

/**
 * Checks an export (already valid against ChatExportSchema) the way the service checks live input: user messages
 * within MAX_MESSAGE_CHARS, images within MAX_IMAGES_PER_MESSAGE and MAX_IMAGE_BYTES and really of their type,
 * every query reference resolvable. Returns what to store. Nothing is streaming or running in an imported chat:
 * such a message is stored `interrupted`, such a query `cancelled`.
 */
export function prepareImport(doc: ChatExport, limits: ImportLimits): ChatToImport {
  const nul = nulCharacterAt(doc, 'body');
  if (nul) throw new ImportError(`${nul}: contains a NUL character (U+0000), which chat text cannot hold`);
  const queryRefs = new Set<string>();
  doc.queries.forEach((q, i) => {
    if (queryRefs.has(q.id)) throw new ImportError(`queries[${i}]: the id ${JSON.stringify(q.id)} is used twice`);
    queryRefs.add(q.id);
  });
  const refOf = (ref: string | null, where: string) => {
    if (ref !== null && !queryRefs.has(ref)) throw new ImportError(`${where}.query_id: no query ${JSON.stringify(ref)} in queries`);
    return ref;
  };

  const entries = doc.entries.map((entry, i): ChatToImport['entries'][number] => {
    const where = `entries[${i}]`;
    if (entry.type === 'tool_use') {
      return {
        type: 'tool_use',
        toolUseId: entry.id,
        queryRef: refOf(entry.query_id, where),
        name: entry.name,
        input: entry.input,
        result: entry.result,
        isError: entry.is_error,
        superseded: entry.superseded,
      };
    }
    if (entry.role === 'user' && entry.content.length > limits.maxMessageChars) {
      throw new ImportError(`${where}: content is longer than ${limits.maxMessageChars} characters`);
    }
    let images;
    try {
      images = decodeImages(entry.images, limits.images);
    } catch (err) {
      if (err instanceof ChatError) throw new ImportError(`${where}: ${err.message}`);
      throw err;
    }
    return {
      type: 'message',
      role: entry.role,
      content: entry.content,
      status: entry.status === 'streaming' ? 'interrupted' : entry.status,
      queryRef: refOf(entry.query_id, where),
      superseded: entry.superseded,
      images,
    };
  });

  return {
    title: doc.chat.title,
    titleSource: doc.chat.title_source,
    ...(Object.keys(doc.chat.settings).length > 0 ? { settings: doc.chat.settings } : {}),
    queries: doc.queries.map((q) => ({
      ref: q.id,
      status: q.status === 'running' ? 'cancelled' : q.status,
      costUsd: q.cost_usd,
      durationMs: q.duration_ms,
      error: q.error,
      usage: q.usage.map((u) => ({
        model: u.model,
        inputTokens: u.input_tokens,
        outputTokens: u.output_tokens,
        cacheReadInputTokens: u.cache_read_input_tokens,
        cacheCreationInputTokens: u.cache_creation_input_tokens,
        costUsd: u.cost_usd,
      })),
    })),
    entries,
    importContext: buildImportContext(doc.entries) ?? null,
  };
}

/** Room in an import's body for everything but the largest message's images: text, tool output, small images. */
const IMPORT_TEXT_BYTES = 16 * 1024 * 1024;

/**
 * Largest body `POST /api/chats/import` reads, from the image limits: one message's worth of the largest images
 * (MAX_IMAGES_PER_MESSAGE × MAX_IMAGE_BYTES, in base64) plus 16 MiB for the rest of the conversation. A chat that
 * grew beyond it (many large images) exports, but does not import here (413 naming the limit).
 */
export function importBodyLimit(limits: Pick<ImportLimits, 'images'>): number {
  return Math.ceil(limits.images.maxBytes / 3) * 4 * limits.images.maxCount + IMPORT_TEXT_BYTES;
}

/**
 * Where a text of the export holds U+0000, if anywhere (PostgreSQL text cannot store it; no chat writes one). Tool
 * inputs are stored as JSON, where it is escaped, so they may.
 */
function nulCharacterAt(value: unknown, path: string): string | undefined {
  if (typeof value === 'string') return value.includes('\u0000') ? path : undefined;
  if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) {
      const found = nulCharacterAt(item, `${path}[${i}]`);
      if (found) return found;
    }
    return undefined;
  }
  if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      if (key === 'input' && path.includes('.entries[')) continue;
      const found = nulCharacterAt(item, `${path}.${key}`);
      if (found) return found;
    }
  }
  return undefined;
}
