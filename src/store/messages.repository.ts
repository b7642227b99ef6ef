import { randomUUID } from 'node:crypto';
import { CompiledStatement } from '../db/compiled-statement.js';
import { inTransaction, type Db } from '../db/database.js';
import type { MessageImageRow, MessageRow, MessageStatus } from '../db/schema.js';
import { sql } from 'kysely';
import type { AnswerEnd, ChatMessage, HistoryMessage, ImageMediaType } from '../protocol/chat.js';
import { ChatsRepository } from './chats.repository.js';
import { queriesIn, type WorkScope } from './queries.repository.js';

export interface ImageToStore {
  mediaType: ImageMediaType;
  data: Buffer;
}

export interface NewMessage {
  /** Chosen by the caller when another row must name the message before it exists (its query); else a new one. */
  id?: string;
  chatId: string;
  role: 'user' | 'assistant';
  content: string;
  status?: MessageStatus;
  queryId?: string | null;
  images?: ImageToStore[];
}

const toMessage = (row: MessageRow, images: MessageImageRow[] | undefined): ChatMessage => ({
  id: row.id,
  chat_id: row.chat_id,
  role: row.role,
  content: row.content,
  timestamp: row.created_at,
  status: row.status,
  images:
    images && images.length > 0
      ? images.map((img) => ({ id: img.id, base64: img.data.toString('base64'), mimeType: img.media_type }))
      : null,
  ...(row.query_id !== null ? { query_id: row.query_id } : {}),
  ...(row.superseded === 1 ? { superseded: true } : {}),
});

/** The stored outcome of a query, as it is shown on the answer's last message. */
const answerEnd = (q: { status: string; cost_usd: number | null; duration_ms: number | null; error: string | null }): AnswerEnd | undefined =>
  q.status === 'complete' || q.status === 'cancelled' || q.status === 'error'
    ? {
        status: q.status,
        cost: q.cost_usd === null ? null : Number(q.cost_usd),
        duration: q.duration_ms === null ? null : Number(q.duration_ms),
        error: q.error,
      }
    : undefined;

export const imagePath = (chatId: string, imageId: string): string => `/api/chats/${chatId}/images/${imageId}`;

const imageRef = (chatId: string, id: string, mimeType: string, size: number) => ({
  id,
  mimeType,
  url: imagePath(chatId, id),
  size,
});

/** Characters of `bytes` bytes in base64. */
const base64Length = (bytes: number): number => Math.ceil(bytes / 3) * 4;

/** The statements every answer runs: its messages and their updates while it streams (CompiledStatement says why). */
const insertMessage = new CompiledStatement(
  (
    db: Db,
    id: string,
    chatId: string,
    position: number,
    role: MessageRow['role'],
    content: string,
    status: MessageStatus,
    queryId: string | null,
    createdAt: string,
  ) =>
    db
      .insertInto('messages')
      .values({ id, chat_id: chatId, position, role, content, status, query_id: queryId, created_at: createdAt, superseded: 0 }),
);
const updateMessage = new CompiledStatement((db: Db, id: string, content: string, status: MessageStatus) =>
  db.updateTable('messages').set({ content, status }).where('id', '=', id),
);

/** Messages and their images. */
export class MessagesRepository {
  constructor(
    private readonly db: Db,
    private readonly now: () => Date,
  ) {}

  /**
   * Stores a message with its images in one transaction, at the chat's next position, and moves the chat to the
   * top of the list. Returns undefined when the chat does not exist (e.g. deleted meanwhile).
   */
  async add(message: NewMessage): Promise<ChatMessage | undefined> {
    return inTransaction(this.db, async (trx) => {
      const chats = new ChatsRepository(trx, this.now);
      const position = await chats.nextPosition(message.chatId, { touch: true });
      if (position === undefined) return undefined;
      const row: MessageRow = {
        id: message.id ?? randomUUID(),
        chat_id: message.chatId,
        position,
        role: message.role,
        content: message.content,
        status: message.status ?? 'complete',
        query_id: message.queryId ?? null,
        created_at: this.now().toISOString(),
        superseded: 0,
      };
      await insertMessage.execute(trx, row.id, row.chat_id, row.position, row.role, row.content, row.status, row.query_id, row.created_at);
      const images: MessageImageRow[] = (message.images ?? []).map((img, ordinal) => ({
        id: randomUUID(),
        message_id: row.id,
        ordinal,
        media_type: img.mediaType,
        data: img.data,
      }));
      if (images.length > 0) await trx.insertInto('message_images').values(images).execute();
      return toMessage(row, images);
    });
  }

  /** Rewrites an assistant message as it streams (checkpoints) and when it ends. */
  async update(id: string, content: string, status: MessageStatus): Promise<void> {
    await updateMessage.execute(this.db, id, content, status);
  }

  async setStatus(id: string, status: MessageStatus): Promise<void> {
    await this.db.updateTable('messages').set({ status }).where('id', '=', id).execute();
  }

  /**
   * A query whose node was lost: its answer blocks left `streaming` keep the text checkpointed so far and become
   * `interrupted` (those with no text are removed), like a crash recovery for that query alone.
   */
  async interruptStreamsOf(queryId: string): Promise<number> {
    const result = await this.db
      .updateTable('messages')
      .set({ status: 'interrupted' })
      .where('query_id', '=', queryId)
      .where('status', '=', 'streaming')
      .executeTakeFirst();
    await this.db.deleteFrom('messages').where('query_id', '=', queryId).where('status', '=', 'interrupted').where('content', '=', '').execute();
    return Number(result.numUpdatedRows);
  }

  async remove(id: string): Promise<void> {
    await this.db.deleteFrom('messages').where('id', '=', id).execute();
  }

  /**
   * Answers of `scope` a crashed process left `streaming`: they keep the text checkpointed so far and become
   * `interrupted` (one that had no text yet is removed). Run before any agent of that scope runs again.
   */
  async interruptAbandonedStreams(scope: WorkScope = { kind: 'all' }): Promise<number> {
    const queries = queriesIn(this.db, scope);
    let update = this.db.updateTable('messages').set({ status: 'interrupted' }).where('status', '=', 'streaming');
    let empty = this.db.deleteFrom('messages').where('status', '=', 'interrupted').where('content', '=', '');
    if (queries) {
      update = update.where('query_id', 'in', queries);
      empty = empty.where('query_id', 'in', queries);
    }
    const result = await update.executeTakeFirst();
    await empty.execute();
    return Number(result.numUpdatedRows);
  }

  /**
   * One page of the chat's messages, in conversation order. Without a cursor: the latest `limit`. `before` / `after`
   * (a message id) give the page just before / after that message. `hasMore` says whether more lie further in the
   * direction of the page (older for the latest page and `before`, newer for `after`). An unknown cursor id
   * gives undefined.
   */
  async page(
    chatId: string,
    { limit, before, after, settledOnly = false }: { limit: number; before?: string; after?: string; settledOnly?: boolean },
  ): Promise<{ messages: ChatMessage[]; hasMore: boolean } | undefined> {
    const cursorId = before ?? after;
    let cursor: number | undefined;
    if (cursorId !== undefined) {
      const row = await this.db
        .selectFrom('messages')
        .select('position')
        .where('chat_id', '=', chatId)
        .where('id', '=', cursorId)
        .executeTakeFirst();
      if (!row) return undefined;
      cursor = row.position;
    }
    const forward = after !== undefined;
    let query = this.db.selectFrom('messages').selectAll().where('chat_id', '=', chatId);
    if (settledOnly) query = query.where('status', '!=', 'streaming');
    if (cursor !== undefined) query = query.where('position', forward ? '>' : '<', cursor);
    const rows = await query
      .orderBy('position', forward ? 'asc' : 'desc')
      .limit(limit + 1)
      .execute();
    const hasMore = rows.length > limit;
    const pageRows = rows.slice(0, limit);
    if (!forward) pageRows.reverse();
    return { messages: await this.withAnswerEnds(chatId, pageRows, await this.withImages(pageRows)), hasMore };
  }

  /**
   * The newest settled messages for a subscriber's `history`, oldest first: at most `limit`, and about `maxBytes`
   * of JSON at most, counted from the newest (which is always sent, so a chat never looks empty). Images are
   * inline base64, or with `imageRefs` references to GET /api/chats/{id}/images/{image_id}; either way only the
   * images actually sent are read. `hasMore`: older messages were left out (by `limit` or by bytes).
   */
  async latest(
    chatId: string,
    { limit, maxBytes, imageRefs }: { limit: number; maxBytes: number; imageRefs: boolean },
  ): Promise<{ messages: HistoryMessage[]; hasMore: boolean }> {
    const rows = await this.db
      .selectFrom('messages')
      .selectAll()
      .where('chat_id', '=', chatId)
      .where('status', '!=', 'streaming')
      .orderBy('position', 'desc')
      .limit(limit + 1)
      .execute();
    let hasMore = rows.length > limit;
    const candidates = rows.slice(0, limit);
    if (candidates.length === 0) return { messages: [], hasMore };
    const imageInfo = await this.db
      .selectFrom('message_images')
      .innerJoin('messages', 'messages.id', 'message_images.message_id')
      .select([
        'message_images.id as id',
        'message_images.message_id as message_id',
        'message_images.media_type as media_type',
        // length() of a BLOB (SQLite) or bytea (PostgreSQL) is its size in bytes.
        sql<number>`length(message_images.data)`.as('size'),
      ])
      .where('messages.chat_id', '=', chatId)
      .where('messages.position', '>=', candidates.at(-1)!.position)
      .orderBy('message_images.ordinal')
      .execute();
    const infoByMessage = new Map<string, typeof imageInfo>();
    for (const img of imageInfo) infoByMessage.set(img.message_id, [...(infoByMessage.get(img.message_id) ?? []), img]);

    const chosen: { row: MessageRow; images: typeof imageInfo }[] = [];
    let bytes = 0;
    for (const row of candidates) {
      const images = infoByMessage.get(row.id) ?? [];
      const refs = images.map((img) => imageRef(chatId, img.id, img.media_type, Number(img.size)));
      const size =
        Buffer.byteLength(JSON.stringify(toMessage(row, undefined))) +
        (imageRefs
          ? Buffer.byteLength(JSON.stringify(refs))
          : images.reduce((sum, img) => sum + base64Length(Number(img.size)) + 96, 0));
      if (chosen.length > 0 && bytes + size > maxBytes) {
        hasMore = true;
        break;
      }
      bytes += size;
      chosen.push({ row, images });
    }
    chosen.reverse();

    const chosenRows = chosen.map((c) => c.row);
    if (imageRefs) {
      const messages = chosen.map(({ row, images }) => ({
        ...toMessage(row, undefined),
        images: images.length > 0 ? images.map((img) => imageRef(chatId, img.id, img.media_type, Number(img.size))) : null,
      }));
      return { messages: await this.withAnswerEnds(chatId, chosenRows, messages), hasMore };
    }
    return { messages: await this.withAnswerEnds(chatId, chosenRows, await this.withImages(chosenRows)), hasMore };
  }

  /** One stored image of a chat (for GET /api/chats/{id}/images/{image_id}); undefined if the chat has none such. */
  async image(chatId: string, imageId: string): Promise<{ mediaType: string; data: Buffer } | undefined> {
    const row = await this.db
      .selectFrom('message_images')
      .innerJoin('messages', 'messages.id', 'message_images.message_id')
      .select(['message_images.media_type', 'message_images.data'])
      .where('messages.chat_id', '=', chatId)
      .where('message_images.id', '=', imageId)
      .executeTakeFirst();
    return row && { mediaType: row.media_type, data: row.data };
  }

  /** The chat's messages in conversation order, images included. */
  async list(chatId: string): Promise<ChatMessage[]> {
    const rows = await this.db.selectFrom('messages').selectAll().where('chat_id', '=', chatId).orderBy('position').execute();
    return this.withImages(rows);
  }

  private async withImages(rows: MessageRow[]): Promise<ChatMessage[]> {
    if (rows.length === 0) return [];
    // A page asks for its messages' images by id; a whole long history by chat (SQL has a cap on bound values).
    const images =
      rows.length <= 500
        ? await this.db
            .selectFrom('message_images')
            .selectAll()
            .where('message_id', 'in', rows.map((r) => r.id))
            .orderBy('ordinal')
            .execute()
        : await this.db
            .selectFrom('message_images')
            .innerJoin('messages', 'messages.id', 'message_images.message_id')
            .selectAll('message_images')
            .where('messages.chat_id', '=', rows[0]!.chat_id)
            .orderBy('message_images.ordinal')
            .execute();
    const byMessage = new Map<string, MessageImageRow[]>();
    for (const img of images) byMessage.set(img.message_id, [...(byMessage.get(img.message_id) ?? []), img]);
    return rows.map((row) => toMessage(row, byMessage.get(row.id)));
  }

  /**
   * Puts `answer_end` on each message that is the last assistant message of a finished answer (its query), so a
   * page read back shows each answer's cost and duration like a live `result` does. `messages` are `rows`, in the
   * same order. One query for the whole page: the answers that have a message from the page's first one on, with
   * the position of their last assistant message (which may lie in a newer page).
   */
  private async withAnswerEnds<M extends ChatMessage | HistoryMessage>(chatId: string, rows: MessageRow[], messages: M[]): Promise<M[]> {
    const first = rows.reduce((min, r) => Math.min(min, r.position), Number.POSITIVE_INFINITY);
    if (!rows.some((r) => r.role === 'assistant' && r.query_id !== null)) return messages;
    const answers = await this.db
      .selectFrom('messages')
      .innerJoin('queries', 'queries.id', 'messages.query_id')
      .select((eb) => [
        'messages.query_id as query_id',
        eb.fn.max('messages.position').as('last_position'),
        'queries.status as status',
        'queries.cost_usd as cost_usd',
        'queries.duration_ms as duration_ms',
        'queries.error as error',
      ])
      .where('messages.chat_id', '=', chatId)
      .where('messages.role', '=', 'assistant')
      .where('messages.position', '>=', first)
      .groupBy(['messages.query_id', 'queries.status', 'queries.cost_usd', 'queries.duration_ms', 'queries.error'])
      .execute();
    const endAt = new Map<number, AnswerEnd>();
    for (const a of answers) {
      const end = answerEnd(a);
      if (end) endAt.set(Number(a.last_position), end);
    }
    return messages.map((m, i) => {
      const end = endAt.get(rows[i]!.position);
      return end ? { ...m, answer_end: end } : m;
    });
  }

  /** The chat's latest user message that is part of the conversation (what a retry answers again), with its images. */
  async lastQuestion(
    chatId: string,
  ): Promise<{ id: string; content: string; position: number; images: ImageToStore[] } | undefined> {
    const row = await this.db
      .selectFrom('messages')
      .select(['id', 'content', 'position'])
      .where('chat_id', '=', chatId)
      .where('role', '=', 'user')
      .where('superseded', '=', 0)
      .orderBy('position', 'desc')
      .limit(1)
      .executeTakeFirst();
    if (!row) return undefined;
    const images = await this.db
      .selectFrom('message_images')
      .select(['media_type', 'data'])
      .where('message_id', '=', row.id)
      .orderBy('ordinal')
      .execute();
    return { ...row, images: images.map((img) => ({ mediaType: img.media_type as ImageMediaType, data: img.data })) };
  }

  /**
   * Marks the answer after the question at `position` superseded (every message and tool use after it: a question
   * is always the chat's last one when it is retried). Kept and listed, never sent to the model again. Returns the
   * ids of its messages.
   */
  async supersedeAfter(chatId: string, position: number): Promise<string[]> {
    await this.db
      .updateTable('tool_uses')
      .set({ superseded: 1 })
      .where('chat_id', '=', chatId)
      .where('position', '>', position)
      .where('superseded', '=', 0)
      .execute();
    const rows = await this.db
      .updateTable('messages')
      .set({ superseded: 1 })
      .where('chat_id', '=', chatId)
      .where('position', '>', position)
      .where('superseded', '=', 0)
      .returning(['id', 'position'])
      .execute();
    return rows.sort((a, b) => a.position - b.position).map((r) => r.id);
  }

  /** Forgets the chat's conversation (messages, images, tool uses, queries, agent transcripts); the chat itself stays. */
  async clear(chatId: string): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await trx.deleteFrom('messages').where('chat_id', '=', chatId).execute();
      await trx.deleteFrom('tool_uses').where('chat_id', '=', chatId).execute();
      await trx.deleteFrom('queries').where('chat_id', '=', chatId).execute();
      // The model's context goes too: the next message starts a new agent session.
      await trx.deleteFrom('agent_transcript_entries').where('chat_id', '=', chatId).execute();
      await trx
        .updateTable('chats')
        .set({ sdk_session_id: null, resume_at: null, updated_at: this.now().toISOString() })
        .where('id', '=', chatId)
        .execute();
    });
  }
}
