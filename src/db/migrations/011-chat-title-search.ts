import { type Kysely, PostgresAdapter, sql } from 'kysely';

// Migrations are history: never edit one that has landed; add the next file instead.
/**
 * The chat titles' side of the search (GET /api/chats/search) gets the index the message text got in 006, so a search
 * reads what matches instead of every chat's title: on SQLite an FTS5 trigram table over `chats.title` (external
 * content, kept by triggers on inserts, deletes and title changes, never on the `updated_at` bumps of every message),
 * with the same caveats as message_search (rowids, re-checked hits). Postgres has had its pg_trgm index on
 * lower(title) since 006: nothing to do there.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  if (db.getExecutor().adapter instanceof PostgresAdapter) return;
  await sql`CREATE VIRTUAL TABLE chat_title_search USING fts5(title, content='chats', content_rowid='rowid', tokenize='trigram')`.execute(db);
  await sql`
    CREATE TRIGGER chat_title_search_insert AFTER INSERT ON chats BEGIN
      INSERT INTO chat_title_search (rowid, title) VALUES (new.rowid, new.title);
    END`.execute(db);
  await sql`
    CREATE TRIGGER chat_title_search_delete AFTER DELETE ON chats BEGIN
      INSERT INTO chat_title_search (chat_title_search, rowid, title) VALUES ('delete', old.rowid, old.title);
    END`.execute(db);
  await sql`
    CREATE TRIGGER chat_title_search_update AFTER UPDATE OF title ON chats BEGIN
      INSERT INTO chat_title_search (chat_title_search, rowid, title) VALUES ('delete', old.rowid, old.title);
      INSERT INTO chat_title_search (rowid, title) VALUES (new.rowid, new.title);
    END`.execute(db);
  await sql`INSERT INTO chat_title_search (chat_title_search) VALUES ('rebuild')`.execute(db);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  if (db.getExecutor().adapter instanceof PostgresAdapter) return;
  for (const trigger of ['chat_title_search_insert', 'chat_title_search_delete', 'chat_title_search_update']) {
    await sql`DROP TRIGGER IF EXISTS ${sql.raw(trigger)}`.execute(db);
  }
  await sql`DROP TABLE IF EXISTS chat_title_search`.execute(db);
}
