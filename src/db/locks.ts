import { sql } from 'kysely';
import { dialectOf, type Db } from './database.js';

/**
 * Holds a lock named `key` until the surrounding transaction ends, so read-modify-write sequences on the same key
 * (count then insert, for a quota) run one after the other, on every process sharing the database.
 * - Postgres: a transaction-scoped advisory lock (`pg_advisory_xact_lock`), which also covers keys that have no
 *   row to lock with `SELECT ... FOR UPDATE` (chats without an owner, say).
 * - SQLite: nothing to do. Kysely runs one transaction at a time on the process's single connection, and a
 *   second process's conflicting write fails with SQLITE_BUSY rather than interleave.
 * `db` must be a transaction: outside one the lock would be released at once.
 */
export async function lockUntilCommit(db: Db, key: string): Promise<void> {
  if (!db.isTransaction) throw new Error('lockUntilCommit needs a transaction');
  if (dialectOf(db) === 'postgres') {
    await sql`select pg_advisory_xact_lock(hashtextextended(${key}, 0))`.execute(db);
  }
}
