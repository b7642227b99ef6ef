import { randomUUID } from 'node:crypto';
import { sql, type ExpressionBuilder } from 'kysely';
import { CompiledStatement } from '../db/compiled-statement.js';
import { inTransaction, type Db } from '../db/database.js';
import { lockUntilCommit } from '../db/locks.js';
import { chatContaining, searchOwnerColumn } from '../db/chat-search.js';
import type { ChatRow, Database, TitleSource } from '../db/schema.js';
import type { Chat, ChatSettings } from '../protocol/chat.js';

export const DEFAULT_CHAT_TITLE = 'New Chat';

const toChat = (row: ChatRow): Chat => ({
  id: row.id,
  title: row.title,
  created_at: row.created_at,
  updated_at: row.updated_at,
  sdk_session_id: row.sdk_session_id,
  title_source: row.title_source,
  settings: parseSettings(row.settings),
  forked_from: row.forked_from,
});

function parseSettings(json: string | null): ChatSettings {
  if (!json) return {};
  try {
    return JSON.parse(json) as ChatSettings;
  } catch {
    return {};
  }
}

/** What a new chat starts with besides its title and owner (a fork's or an import's origin). */
export interface NewChatExtras {
  settings?: ChatSettings;
  forkedFrom?: string;
  sdkSessionId?: string | null;
  resumeAt?: string | null;
}

/** `%` and `_` in a user's search text are literal, not wildcards. */
export const likePattern = (text: string) => `%${text.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

/**
 * Whose chats a call may see: a user's (`userId`: their id) or, with `userId: null`, the chats without an owner
 * (local mode). Methods that take it as optional see every chat when it is omitted: that is for the service's own
 * bookkeeping (the agent side, crash recovery), never for a request.
 */
export interface OwnerScope {
  userId: string | null;
}

const ownedBy =
  ({ userId }: OwnerScope) =>
  (eb: ExpressionBuilder<Database, 'chats'>) =>
    userId === null ? eb('chats.user_id', 'is', null) : eb('chats.user_id', '=', userId);

/**
 * The statements every answer runs (the access check of a `chat` frame, the list update, a message's position, the
 * check for an imported transcript), compiled once (CompiledStatement says why). The owner decides the shape
 * (`is null` against `= ?`), so each has one.
 */
const chatById = new CompiledStatement((db: Db, id: string) => db.selectFrom('chats').selectAll().where('id', '=', id));
const importContextOf = new CompiledStatement((db: Db, id: string) => db.selectFrom('chats').select('import_context').where('id', '=', id));
const chatOfNoOwner = new CompiledStatement((db: Db, id: string) =>
  db.selectFrom('chats').selectAll().where('id', '=', id).where('chats.user_id', 'is', null),
);
const chatOfOwner = new CompiledStatement((db: Db, id: string, userId: string) =>
  db.selectFrom('chats').selectAll().where('id', '=', id).where('chats.user_id', '=', userId),
);
const nextPosition = new CompiledStatement((db: Db, id: string) =>
  db
    .updateTable('chats')
    .set((eb) => ({ last_position: eb('last_position', '+', 1) }))
    .where('id', '=', id)
    .returning('last_position'),
);
const nextPositionTouching = new CompiledStatement((db: Db, id: string, at: string) =>
  db
    .updateTable('chats')
    .set((eb) => ({ last_position: eb('last_position', '+', 1), updated_at: at }))
    .where('id', '=', id)
    .returning('last_position'),
);

/** Chats: all SQL about the chats table lives here. */
export class ChatsRepository {
  constructor(
    private readonly db: Db,
    private readonly now: () => Date,
  ) {}

  /** A new chat of `owner` (none by default: a chat of local mode). */
  /**
   * A title given here is the user's (never replaced automatically); without one (or with the default title) the
   * chat is named from its first message.
   */
  async create(title?: string, owner: OwnerScope = { userId: null }, extras: NewChatExtras = {}): Promise<Chat> {
    const at = this.now().toISOString();
    const row = {
      id: randomUUID(),
      title: title ?? DEFAULT_CHAT_TITLE,
      // The seed's client may send the default title itself: that is no title either.
      title_source: (title === undefined || title === DEFAULT_CHAT_TITLE ? 'default' : 'user') as TitleSource,
      created_at: at,
      updated_at: at,
      sdk_session_id: extras.sdkSessionId ?? null,
      settings: extras.settings && Object.keys(extras.settings).length > 0 ? JSON.stringify(extras.settings) : null,
      forked_from: extras.forkedFrom ?? null,
      resume_at: extras.resumeAt ?? null,
    };
    await this.db
      .insertInto('chats')
      .values({ ...row, user_id: owner.userId })
      .execute();
    return toChat({ ...row, last_position: 0, user_id: owner.userId, import_context: null });
  }

  /**
   * Creates the chat unless `owner` already has `max` chats (then undefined). Count and insert share one
   * transaction holding the owner's quota lock, so concurrent creates (from any process on the same database)
   * take turns and cannot overshoot the limit.
   */
  async createWithinLimit(
    title: string | undefined,
    owner: OwnerScope,
    max: number,
    extras: NewChatExtras = {},
  ): Promise<Chat | undefined> {
    return this.db.transaction().execute(async (trx) => {
      await lockUntilCommit(trx, `chat-quota:${owner.userId ?? '(no owner)'}`);
      const chats = new ChatsRepository(trx, this.now);
      if ((await chats.count(owner)) >= max) return undefined;
      return chats.create(title, owner, extras);
    });
  }

  /** The chat and its owner (null: a chat of local mode), for the service's own bookkeeping. */
  async getWithOwner(id: string): Promise<{ chat: Chat; ownerId: string | null } | undefined> {
    const [row] = (await chatById.execute(this.db, id)).rows;
    return row && { chat: toChat(row), ownerId: row.user_id };
  }

  /**
   * Sets an automatic title, only while the current title came from one of `replaceable` (a user's title is never
   * in it). Returns the chat when the title changed.
   */
  async setAutoTitle(id: string, title: string, source: TitleSource, replaceable: TitleSource[]): Promise<Chat | undefined> {
    const row = await this.db
      .updateTable('chats')
      .set({ title, title_source: source })
      .where('id', '=', id)
      .where('title_source', 'in', replaceable)
      .returningAll()
      .executeTakeFirst();
    return row && toChat(row);
  }

  /**
   * Reads the chat's settings, applies `change` (which may throw: nothing is written) and stores the result, under
   * the chat's lock: concurrent changes, from any process on the same database, apply one after the other, so
   * none is lost. Undefined when the chat does not exist (for `owner`).
   */
  async changeSettings(
    id: string,
    owner: OwnerScope,
    change: (before: ChatSettings) => ChatSettings,
  ): Promise<{ chat: Chat; before: ChatSettings; after: ChatSettings } | undefined> {
    return inTransaction(this.db, async (trx) => {
      await lockUntilCommit(trx, `chat-settings:${id}`);
      const chats = new ChatsRepository(trx, this.now);
      const current = await chats.get(id, owner);
      if (!current) return undefined;
      const before = current.settings ?? {};
      const after = change(before);
      const chat = await chats.setSettings(id, after, owner);
      return chat && { chat, before, after };
    });
  }

  async setSettings(id: string, settings: ChatSettings, owner?: OwnerScope): Promise<Chat | undefined> {
    const json = Object.keys(settings).length > 0 ? JSON.stringify(settings) : null;
    const row = await this.db
      .updateTable('chats')
      .set({ settings: json, updated_at: this.now().toISOString() })
      .where('id', '=', id)
      .$if(owner !== undefined, (qb) => qb.where(ownedBy(owner!)))
      .returningAll()
      .executeTakeFirst();
    return row && toChat(row);
  }

  /** Where the next agent start resumes (a fork or retry point); see ChatsTable.resume_at. */
  async getResumePoint(id: string): Promise<{ sessionId: string | null; at: string | null } | undefined> {
    const row = await this.db.selectFrom('chats').select(['sdk_session_id', 'resume_at']).where('id', '=', id).executeTakeFirst();
    return row && { sessionId: row.sdk_session_id, at: row.resume_at };
  }

  async setResumePoint(id: string, sessionId: string | null, at: string | null): Promise<void> {
    await this.db.updateTable('chats').set({ sdk_session_id: sessionId, resume_at: at }).where('id', '=', id).execute();
  }

  /** The transcript an imported chat's first message carries to the model, if it is still due (see ChatsTable). */
  async importContext(id: string): Promise<string | undefined> {
    const [row] = (await importContextOf.execute(this.db, id)).rows;
    return row?.import_context ?? undefined;
  }

  async setImportContext(id: string, context: string | null): Promise<void> {
    await this.db.updateTable('chats').set({ import_context: context }).where('id', '=', id).execute();
  }

  async clearImportContext(id: string): Promise<void> {
    await this.setImportContext(id, null);
  }

  /** Ownerless chats (made in local mode) or the listed ones are given to `userId`; returns the ids assigned. */
  async assign(userId: string, ids: string[] | 'all-ownerless'): Promise<string[]> {
    const rows = await this.db
      .updateTable('chats')
      .set({ user_id: userId })
      .where('user_id', 'is', null)
      .$if(ids !== 'all-ownerless', (qb) => qb.where('id', 'in', ids as string[]))
      .returning('id')
      .execute();
    return rows.map((r) => r.id);
  }

  async count(owner: OwnerScope): Promise<number> {
    const row = await this.db
      .selectFrom('chats')
      .select((eb) => eb.fn.countAll<number | bigint>().as('n'))
      .where(ownedBy(owner))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  async get(id: string, owner?: OwnerScope): Promise<Chat | undefined> {
    const { rows } =
      owner === undefined
        ? await chatById.execute(this.db, id)
        : owner.userId === null
          ? await chatOfNoOwner.execute(this.db, id)
          : await chatOfOwner.execute(this.db, id, owner.userId);
    return rows[0] && toChat(rows[0]);
  }

  /** Newest activity first; id breaks ties so the order is total. */
  async list(owner?: OwnerScope): Promise<Chat[]> {
    const rows = await this.db
      .selectFrom('chats')
      .selectAll()
      .$if(owner !== undefined, (qb) => qb.where(ownedBy(owner!)))
      .orderBy('updated_at', 'desc')
      .orderBy('id')
      .execute();
    return rows.map(toChat);
  }

  /**
   * One page of the list (newest activity first): the first `limit` chats, or those after the chat `before` in that
   * order. Undefined when `before` is not a chat of this owner.
   */
  async page(
    owner: OwnerScope | undefined,
    { limit, before }: { limit: number; before?: string },
  ): Promise<{ chats: Chat[]; hasMore: boolean } | undefined> {
    let cursor: { updated_at: string; id: string } | undefined;
    if (before !== undefined) {
      cursor = await this.db
        .selectFrom('chats')
        .select(['updated_at', 'id'])
        .where('id', '=', before)
        .$if(owner !== undefined, (qb) => qb.where(ownedBy(owner!)))
        .executeTakeFirst();
      if (!cursor) return undefined;
    }
    const rows = await this.db
      .selectFrom('chats')
      .selectAll()
      .$if(owner !== undefined, (qb) => qb.where(ownedBy(owner!)))
      .$if(cursor !== undefined, (qb) =>
        qb.where((eb) =>
          eb.or([
            eb('updated_at', '<', cursor!.updated_at),
            eb.and([eb('updated_at', '=', cursor!.updated_at), eb('id', '>', cursor!.id)]),
          ]),
        ),
      )
      .orderBy('updated_at', 'desc')
      .orderBy('id')
      .limit(limit + 1)
      .execute();
    return { chats: rows.slice(0, limit).map(toChat), hasMore: rows.length > limit };
  }

  /** Ids of a user's chats (to remove their workspaces along with the user). */
  async idsOwnedBy(userId: string): Promise<string[]> {
    const rows = await this.db.selectFrom('chats').select('id').where('user_id', '=', userId).execute();
    return rows.map((r) => r.id);
  }

  async rename(id: string, title: string, owner?: OwnerScope): Promise<Chat | undefined> {
    const row = await this.db
      .updateTable('chats')
      .set({ title, title_source: 'user', updated_at: this.now().toISOString() })
      .where('id', '=', id)
      .$if(owner !== undefined, (qb) => qb.where(ownedBy(owner!)))
      .returningAll()
      .executeTakeFirst();
    return row && toChat(row);
  }

  /** The session the chat's agent now runs in: a pending resume point (fork, retry) has been used up. */
  async setSdkSessionId(id: string, sdkSessionId: string | null): Promise<void> {
    await this.db.updateTable('chats').set({ sdk_session_id: sdkSessionId, resume_at: null }).where('id', '=', id).execute();
  }

  /** Deletes the chat; its messages, images, tool uses and queries go with it (ON DELETE CASCADE). */
  async delete(id: string, owner?: OwnerScope): Promise<boolean> {
    const result = await this.db
      .deleteFrom('chats')
      .where('id', '=', id)
      .$if(owner !== undefined, (qb) => qb.where(ownedBy(owner!)))
      .executeTakeFirst();
    return result.numDeletedRows > 0n;
  }

  /** Chats whose title or any message text contains `text`, case-insensitively; newest first. */
  async search(text: string, owner?: OwnerScope): Promise<Chat[]> {
    const owned = searchOwnerColumn(this.db);
    const rows = await this.db
      .selectFrom('chats')
      .selectAll()
      .where(chatContaining(this.db, text, likePattern(text)))
      .$if(owner !== undefined, (qb) => qb.where(owner!.userId === null ? sql<boolean>`${owned} is null` : sql<boolean>`${owned} = ${owner!.userId}`))
      .orderBy('updated_at', 'desc')
      .orderBy('id')
      .execute();
    return rows.map(toChat);
  }

  /**
   * Reserves the next position in the chat's single order of messages and tool uses. Atomic in one statement
   * (UPDATE ... RETURNING works on SQLite and Postgres), so concurrent writers never share a position. `touch`
   * also marks activity (a new message), so the chat moves to the top of the list, in the same statement.
   */
  async nextPosition(chatId: string, { touch = false }: { touch?: boolean } = {}): Promise<number | undefined> {
    const { rows } = touch
      ? await nextPositionTouching.execute(this.db, chatId, this.now().toISOString())
      : await nextPosition.execute(this.db, chatId);
    return rows[0]?.last_position;
  }
}
