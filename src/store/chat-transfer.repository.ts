import { randomUUID } from 'node:crypto';
import type { Db } from '../db/database.js';
import { lockUntilCommit } from '../db/locks.js';
import type { MessageStatus, QueryStatus, TitleSource } from '../db/schema.js';
import type { Chat, ChatSettings, ImageMediaType } from '../protocol/chat.js';
import type { ExportedEntry, ExportedQuery } from '../protocol/export.js';
import { ChatsRepository, type OwnerScope } from './chats.repository.js';

/** A chat's whole conversation as the export format holds it (ids are the stored ones). */
export interface ChatTranscript {
  queries: ExportedQuery[];
  entries: ExportedEntry[];
}

/** A conversation to store as a new chat: checked already (limits, references), images decoded. */
export interface ChatToImport {
  title: string;
  titleSource: TitleSource;
  /** The chat's own agent settings, already checked against the operator's. */
  settings?: ChatSettings;
  queries: {
    /** The id in the imported file: entries name their query by it. */
    ref: string;
    status: QueryStatus;
    costUsd: number | null;
    durationMs: number | null;
    error: string | null;
    usage: {
      model: string | null;
      inputTokens: number;
      outputTokens: number;
      cacheReadInputTokens: number;
      cacheCreationInputTokens: number;
      costUsd: number;
    }[];
  }[];
  entries: (
    | {
        type: 'message';
        role: 'user' | 'assistant';
        content: string;
        status: MessageStatus;
        queryRef: string | null;
        superseded: boolean;
        images: { mediaType: ImageMediaType; data: Buffer }[];
      }
    | {
        type: 'tool_use';
        toolUseId: string;
        queryRef: string | null;
        name: string;
        input: Record<string, unknown>;
        result: string | null;
        isError: boolean;
        superseded: boolean;
      }
  )[];
  /** What the chat's first message carries to the model (see ChatsTable.import_context), or null. */
  importContext: string | null;
}

const parseInput = (json: string): Record<string, unknown> => {
  try {
    const value: unknown = JSON.parse(json);
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : { value };
  } catch {
    return { raw: json };
  }
};

/** Reads a chat's whole conversation out (export) and writes one in as a new chat (import). */
export class ChatTransferRepository {
  constructor(
    private readonly db: Db,
    private readonly now: () => Date,
  ) {}

  /**
   * Everything of the chat, in conversation order: messages with their images, tool calls whole, queries with usage.
   * Without `imageData` the images' bytes are not read (their `base64` is empty): for a transcript that only names them.
   */
  async transcript(chatId: string, { imageData = true }: { imageData?: boolean } = {}): Promise<ChatTranscript> {
    const [messages, images, toolUses, queries, usage] = await Promise.all([
      this.db.selectFrom('messages').selectAll().where('chat_id', '=', chatId).execute(),
      this.db
        .selectFrom('message_images')
        .innerJoin('messages', 'messages.id', 'message_images.message_id')
        .select(['message_images.message_id', 'message_images.media_type'])
        .$if(imageData, (qb) => qb.select('message_images.data'))
        .where('messages.chat_id', '=', chatId)
        .orderBy('message_images.ordinal')
        .execute(),
      this.db.selectFrom('tool_uses').selectAll().where('chat_id', '=', chatId).execute(),
      this.db.selectFrom('queries').selectAll().where('chat_id', '=', chatId).orderBy('started_at').orderBy('id').execute(),
      this.db.selectFrom('usage').selectAll().where('chat_id', '=', chatId).orderBy('created_at').orderBy('id').execute(),
    ]);
    const imagesOf = new Map<string, typeof images>();
    for (const img of images) imagesOf.set(img.message_id, [...(imagesOf.get(img.message_id) ?? []), img]);
    const usageOf = new Map<string, typeof usage>();
    for (const row of usage) if (row.query_id) usageOf.set(row.query_id, [...(usageOf.get(row.query_id) ?? []), row]);

    const positioned: { position: number; entry: ExportedEntry }[] = [
      ...messages.map((m) => ({
        position: m.position,
        entry: {
          type: 'message' as const,
          id: m.id,
          role: m.role,
          content: m.content,
          status: m.status,
          created_at: m.created_at,
          query_id: m.query_id,
          superseded: m.superseded === 1,
          images: (imagesOf.get(m.id) ?? []).map((img) => ({
            media_type: img.media_type as ImageMediaType,
            base64: img.data?.toString('base64') ?? '',
          })),
        },
      })),
      ...toolUses.map((t) => ({
        position: t.position,
        entry: {
          type: 'tool_use' as const,
          id: t.tool_use_id,
          query_id: t.query_id,
          name: t.tool_name,
          input: parseInput(t.tool_input),
          result: t.result_content,
          is_error: t.is_error === 1,
          created_at: t.created_at,
          completed_at: t.completed_at,
          superseded: t.superseded === 1,
        },
      })),
    ];
    positioned.sort((a, b) => a.position - b.position);
    return {
      entries: positioned.map((p) => p.entry),
      queries: queries.map((q) => ({
        id: q.id,
        status: q.status,
        cost_usd: q.cost_usd === null ? null : Number(q.cost_usd),
        duration_ms: q.duration_ms === null ? null : Number(q.duration_ms),
        error: q.error,
        started_at: q.started_at,
        ended_at: q.ended_at,
        usage: (usageOf.get(q.id) ?? []).map((u) => ({
          model: u.model,
          input_tokens: Number(u.input_tokens),
          output_tokens: Number(u.output_tokens),
          cache_read_input_tokens: Number(u.cache_read_input_tokens),
          cache_creation_input_tokens: Number(u.cache_creation_input_tokens),
          cost_usd: Number(u.cost_usd),
        })),
      })),
    };
  }

  /**
   * Stores the conversation as a new chat of `owner`, all of it or nothing (one transaction). With `maxChats` > 0
   * the owner's chat count is checked under the same quota lock as creating a chat; undefined when it is reached.
   * Usage rows are marked imported: spent elsewhere, they count in no budget or report here.
   */
  async importChat(owner: OwnerScope, maxChats: number, data: ChatToImport): Promise<Chat | undefined> {
    return this.db.transaction().execute(async (trx) => {
      const chats = new ChatsRepository(trx, this.now);
      if (maxChats > 0) {
        await lockUntilCommit(trx, `chat-quota:${owner.userId ?? '(no owner)'}`);
        if ((await chats.count(owner)) >= maxChats) return undefined;
      }
      const created = await chats.create(data.title, owner, data.settings ? { settings: data.settings } : {});
      const chatId = created.id;
      const queryIds = new Map<string, string>();
      for (const q of data.queries) {
        const id = randomUUID();
        queryIds.set(q.ref, id);
        const at = this.now().toISOString();
        await trx
          .insertInto('queries')
          .values({
            id,
            chat_id: chatId,
            status: q.status,
            cost_usd: q.costUsd,
            duration_ms: q.durationMs,
            error: q.error,
            started_at: at,
            ended_at: q.status === 'running' ? null : at,
          })
          .execute();
        for (const u of q.usage) {
          await trx
            .insertInto('usage')
            .values({
              id: randomUUID(),
              query_id: id,
              chat_id: chatId,
              user_id: owner.userId,
              model: u.model,
              input_tokens: u.inputTokens,
              output_tokens: u.outputTokens,
              cache_read_input_tokens: u.cacheReadInputTokens,
              cache_creation_input_tokens: u.cacheCreationInputTokens,
              cost_usd: u.costUsd,
              created_at: this.now().toISOString(),
              imported: 1,
            })
            .execute();
        }
      }
      const queryOf = (ref: string | null) => (ref === null ? null : (queryIds.get(ref) ?? null));
      let position = 0;
      for (const entry of data.entries) {
        position++;
        const at = this.now().toISOString();
        if (entry.type === 'message') {
          const messageId = randomUUID();
          await trx
            .insertInto('messages')
            .values({
              id: messageId,
              chat_id: chatId,
              position,
              role: entry.role,
              content: entry.content,
              status: entry.status,
              query_id: queryOf(entry.queryRef),
              created_at: at,
              superseded: entry.superseded ? 1 : 0,
            })
            .execute();
          if (entry.images.length > 0) {
            await trx
              .insertInto('message_images')
              .values(
                entry.images.map((img, ordinal) => ({
                  id: randomUUID(),
                  message_id: messageId,
                  ordinal,
                  media_type: img.mediaType,
                  data: img.data,
                })),
              )
              .execute();
          }
        } else {
          await trx
            .insertInto('tool_uses')
            .values({
              id: randomUUID(),
              chat_id: chatId,
              query_id: queryOf(entry.queryRef),
              position,
              tool_use_id: entry.toolUseId,
              tool_name: entry.name,
              tool_input: JSON.stringify(entry.input),
              result_content: entry.result,
              is_error: entry.isError ? 1 : 0,
              superseded: entry.superseded ? 1 : 0,
              created_at: at,
              // Nothing runs this call here: it is settled as it came, never left open for crash recovery to end.
              completed_at: at,
            })
            .execute();
        }
      }
      const at = this.now().toISOString();
      await trx
        .updateTable('chats')
        .set({ last_position: position, title_source: data.titleSource, import_context: data.importContext, updated_at: at })
        .where('id', '=', chatId)
        .execute();
      return { ...created, title_source: data.titleSource, updated_at: at };
    });
  }
}
