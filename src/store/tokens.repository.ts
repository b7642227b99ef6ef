import { randomUUID } from 'node:crypto';
import type { Db } from '../db/database.js';
import type { ApiTokenRow } from '../db/schema.js';

/** A token as listings show it: never the token itself, which exists only in the answer that created it. */
export interface ApiToken {
  id: string;
  user_id: string;
  user_name: string;
  name: string;
  prefix: string;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
}

/** What verifying a token needs: the token's row and its user's name. */
export interface ActiveToken {
  id: string;
  user_id: string;
  user_name: string;
  last_used_at: string | null;
}

type Joined = ApiTokenRow & { user_name: string };

const toToken = (row: Joined): ApiToken => ({
  id: row.id,
  user_id: row.user_id,
  user_name: row.user_name,
  name: row.name,
  prefix: row.prefix,
  created_at: row.created_at,
  last_used_at: row.last_used_at,
  revoked_at: row.revoked_at,
});

/** API tokens, stored as hashes: all SQL about the api_tokens table lives here. */
export class TokensRepository {
  constructor(
    private readonly db: Db,
    private readonly now: () => Date,
  ) {}

  /** Stores a token by its hash; the caller made the token and shows it to its owner once. */
  async add(token: { userId: string; name: string; hash: string; prefix: string }): Promise<{ id: string; created_at: string }> {
    const row = {
      id: randomUUID(),
      user_id: token.userId,
      name: token.name,
      token_hash: token.hash,
      prefix: token.prefix,
      created_at: this.now().toISOString(),
      last_used_at: null,
      revoked_at: null,
    };
    await this.db.insertInto('api_tokens').values(row).execute();
    return { id: row.id, created_at: row.created_at };
  }

  /** The unrevoked token with this hash, or undefined. */
  async findActive(hash: string): Promise<ActiveToken | undefined> {
    return this.db
      .selectFrom('api_tokens')
      .innerJoin('users', 'users.id', 'api_tokens.user_id')
      .select(['api_tokens.id', 'api_tokens.user_id', 'users.name as user_name', 'api_tokens.last_used_at'])
      .where('api_tokens.token_hash', '=', hash)
      .where('api_tokens.revoked_at', 'is', null)
      .executeTakeFirst();
  }

  /** Whether the token still exists and is not revoked (re-checked by long-lived WebSockets). */
  async isActive(id: string): Promise<boolean> {
    const row = await this.db
      .selectFrom('api_tokens')
      .select('id')
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return row !== undefined;
  }

  async markUsed(id: string, at: Date): Promise<void> {
    await this.db.updateTable('api_tokens').set({ last_used_at: at.toISOString() }).where('id', '=', id).execute();
  }

  /** Every token (or one user's), oldest first; revoked ones included. */
  async list(userId?: string): Promise<ApiToken[]> {
    const rows = await this.db
      .selectFrom('api_tokens')
      .innerJoin('users', 'users.id', 'api_tokens.user_id')
      .selectAll('api_tokens')
      .select('users.name as user_name')
      .$if(userId !== undefined, (qb) => qb.where('api_tokens.user_id', '=', userId!))
      .orderBy('api_tokens.created_at')
      .orderBy('api_tokens.id')
      .execute();
    return rows.map(toToken);
  }

  /** Tokens whose id equals `idOrPrefix` or whose prefix starts with it (a listing's way to name one). */
  async find(idOrPrefix: string): Promise<ApiToken[]> {
    const rows = await this.db
      .selectFrom('api_tokens')
      .innerJoin('users', 'users.id', 'api_tokens.user_id')
      .selectAll('api_tokens')
      .select('users.name as user_name')
      .where((eb) => eb.or([eb('api_tokens.id', '=', idOrPrefix), eb('api_tokens.prefix', '=', idOrPrefix)]))
      .orderBy('api_tokens.created_at')
      .execute();
    return rows.map(toToken);
  }

  /** Revokes the token (idempotent: an already revoked token keeps its first revocation time). */
  async revoke(id: string): Promise<void> {
    await this.db
      .updateTable('api_tokens')
      .set({ revoked_at: this.now().toISOString() })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .execute();
  }
}
