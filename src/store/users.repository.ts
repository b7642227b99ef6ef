import { randomUUID } from 'node:crypto';
import type { Db } from '../db/database.js';
import type { UserRow } from '../db/schema.js';

export interface User {
  id: string;
  name: string;
  created_at: string;
}

/** A user with what `users list` shows about them. */
export interface UserSummary extends User {
  active_tokens: number;
  chats: number;
}

const toUser = (row: UserRow): User => ({ id: row.id, name: row.name, created_at: row.created_at });

/** Users: all SQL about the users table lives here. */
export class UsersRepository {
  constructor(
    private readonly db: Db,
    private readonly now: () => Date,
  ) {}

  async create(name: string): Promise<User> {
    const row = { id: randomUUID(), name, created_at: this.now().toISOString() };
    await this.db.insertInto('users').values(row).execute();
    return row;
  }

  async byName(name: string): Promise<User | undefined> {
    const row = await this.db.selectFrom('users').selectAll().where('name', '=', name).executeTakeFirst();
    return row && toUser(row);
  }

  async byId(id: string): Promise<User | undefined> {
    const row = await this.db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toUser(row);
  }

  async count(): Promise<number> {
    const row = await this.db
      .selectFrom('users')
      .select((eb) => eb.fn.countAll<number | bigint>().as('n'))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  /** Oldest first, with their active token and chat counts. */
  async list(): Promise<UserSummary[]> {
    const rows = await this.db
      .selectFrom('users')
      .selectAll('users')
      .select((eb) => [
        eb
          .selectFrom('api_tokens')
          .select((e) => e.fn.countAll<number | bigint>().as('n'))
          .whereRef('api_tokens.user_id', '=', 'users.id')
          .where('api_tokens.revoked_at', 'is', null)
          .as('active_tokens'),
        eb
          .selectFrom('chats')
          .select((e) => e.fn.countAll<number | bigint>().as('n'))
          .whereRef('chats.user_id', '=', 'users.id')
          .as('chats'),
      ])
      .orderBy('users.created_at')
      .orderBy('users.name')
      .execute();
    return rows.map((r) => ({ ...toUser(r), active_tokens: Number(r.active_tokens ?? 0), chats: Number(r.chats ?? 0) }));
  }

  /** Deletes the user; their tokens and chats (with everything in them) go too (ON DELETE CASCADE). */
  async remove(id: string): Promise<boolean> {
    const result = await this.db.deleteFrom('users').where('id', '=', id).executeTakeFirst();
    return result.numDeletedRows > 0n;
  }
}
