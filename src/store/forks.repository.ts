import { randomUUID } from 'node:crypto';
import type { Db } from '../db/database.js';
import type { MessageRow } from '../db/schema.js';

/** Where a fork at one message ends, as stored. */
export interface ForkPoint {
  role: 'user' | 'assistant';
  superseded: boolean;
  /** The query of the message is still answering. */
  running: boolean;
  /**
   * The last position the fork holds: the message itself for a user message; for an answer, the end of the whole
   * answer it belongs to (its last text block or tool use), because the model's context can only be cut between
   * answers.
   */
  endPosition: number;
}

/** Copying the start of one chat's conversation into another (forks). */
export class ForksRepository {
  constructor(private readonly db: Db) {}

  /** The fork point of a message of the chat; undefined when the chat has no such message. */
  async forkPoint(chatId: string, messageId: string): Promise<ForkPoint | undefined> {
    const message = await this.db
      .selectFrom('messages')
      .leftJoin('queries', 'queries.id', 'messages.query_id')
      .select(['messages.role', 'messages.position', 'messages.superseded', 'messages.query_id', 'queries.status'])
      .where('messages.chat_id', '=', chatId)
      .where('messages.id', '=', messageId)
      .executeTakeFirst();
    if (!message) return undefined;
    let endPosition = message.position;
    if (message.role === 'assistant' && message.query_id) {
      const [text, tools] = await Promise.all([
        this.db
          .selectFrom('messages')
          .select((eb) => eb.fn.max('position').as('end'))
          .where('chat_id', '=', chatId)
          .where('query_id', '=', message.query_id)
          .executeTakeFirst(),
        this.db
          .selectFrom('tool_uses')
          .select((eb) => eb.fn.max('position').as('end'))
          .where('chat_id', '=', chatId)
          .where('query_id', '=', message.query_id)
          .executeTakeFirst(),
      ]);
      endPosition = Math.max(endPosition, Number(text?.end ?? 0), Number(tools?.end ?? 0));
    }
    return {
      role: message.role,
      superseded: message.superseded === 1,
      running: message.status === 'running',
      endPosition,
    };
  }

  /**
   * Copies chat `from`'s conversation up to `endPosition` into the (new, empty) chat `to`, in one transaction, with
   * new ids in the same order: its messages (superseded answers left out) with their images, the tool uses of the
   * answers kept, and the queries they belong to, with where each ended in its SDK session (so the fork can itself
   * be forked or retried). Returns those SDK sessions: the fork's agent needs their transcripts.
   */
  async copyConversation(from: string, to: string, endPosition: number): Promise<string[]> {
    return this.db.transaction().execute(async (trx) => {
      const messages = await trx
        .selectFrom('messages')
        .selectAll()
        .where('chat_id', '=', from)
        .where('position', '<=', endPosition)
        .where('superseded', '=', 0)
        .orderBy('position')
        .execute();
      const supersededQueries = new Set(
        (
          await trx
            .selectFrom('messages')
            .select('query_id')
            .where('chat_id', '=', from)
            .where('superseded', '=', 1)
            .where('query_id', 'is not', null)
            .execute()
        ).map((r) => r.query_id!),
      );
      const toolUses = (
        await trx
          .selectFrom('tool_uses')
          .selectAll()
          .where('chat_id', '=', from)
          .where('position', '<=', endPosition)
          .orderBy('position')
          .execute()
      ).filter((t) => t.superseded === 0 && (t.query_id === null || !supersededQueries.has(t.query_id)));

      const queryIds = new Set<string>();
      for (const row of [...messages, ...toolUses]) if (row.query_id) queryIds.add(row.query_id);
      const newMessageId = new Map(messages.map((m) => [m.id, randomUUID()]));
      const newQueryId = new Map([...queryIds].map((id) => [id, randomUUID()]));
      const sessions = new Set<string>();

      if (queryIds.size > 0) {
        const queries = await trx.selectFrom('queries').selectAll().where('id', 'in', [...queryIds]).execute();
        for (const q of queries) {
          if (q.sdk_session_id && q.sdk_tail_uuid) sessions.add(q.sdk_session_id);
          await trx
            .insertInto('queries')
            .values({
              ...q,
              id: newQueryId.get(q.id)!,
              chat_id: to,
              user_message_id: q.user_message_id ? (newMessageId.get(q.user_message_id) ?? null) : null,
            })
            .execute();
        }
      }
      const mapQuery = (id: string | null) => (id ? (newQueryId.get(id) ?? null) : null);
      for (const m of messages) {
        const copy: MessageRow = { ...m, id: newMessageId.get(m.id)!, chat_id: to, query_id: mapQuery(m.query_id) };
        await trx.insertInto('messages').values(copy).execute();
        const images = await trx.selectFrom('message_images').selectAll().where('message_id', '=', m.id).execute();
        for (const img of images) {
          await trx.insertInto('message_images').values({ ...img, id: randomUUID(), message_id: copy.id }).execute();
        }
      }
      for (const t of toolUses) {
        await trx
          .insertInto('tool_uses')
          .values({ ...t, id: randomUUID(), chat_id: to, query_id: mapQuery(t.query_id) })
          .execute();
      }
      const last = Math.max(0, ...messages.map((m) => m.position), ...toolUses.map((t) => t.position));
      await trx.updateTable('chats').set({ last_position: last }).where('id', '=', to).execute();
      return [...sessions];
    });
  }
}
