import { type Kysely, PostgresAdapter, sql } from 'kysely';

/**
 * An index for the substring search of message text (GET /api/chats/search), so a search over a million messages
 * reads the index instead of every row. Both indexes work on trigrams: they serve `LIKE '%text%'` for any language
 * (CJK included, where words are not separated by spaces), for search texts of three or more characters; shorter
 * ones still work, by a scan.
 *
 * SQLite: an FTS5 table with the trigram tokenizer over `messages.content` (external content: the text is not
 * stored twice), kept by triggers. Answers still streaming are left out and indexed when they end: a checkpoint
 * rewrites a streaming answer every second, and re-indexing it each time would cost the stream. The FTS rows are
 * keyed by the messages' rowid, which only a manual VACUUM could renumber; the search re-checks every hit against
 * the message itself, and `INSERT INTO message_search(message_search) VALUES ('rebuild')` would repair the index.
 *
 * Postgres: pg_trgm's GIN index on lower(content), which the same `lower(content) LIKE` query uses as it is. Creating
 * the extension needs the right to; without it the index is skipped (search still works, by a scan) with a notice.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  if (db.getExecutor().adapter instanceof PostgresAdapter) {
    const created = await sql`CREATE EXTENSION IF NOT EXISTS pg_trgm`.execute(db).then(
      () => true,
      () => false,
    );
    if (created) {
      await sql`CREATE INDEX messages_content_trigram ON messages USING gin (lower(content) gin_trgm_ops)`.execute(db);
      await sql`CREATE INDEX chats_title_trigram ON chats USING gin (lower(title) gin_trgm_ops)`.execute(db);
    }
    return;
  }
  await sql`CREATE VIRTUAL TABLE message_search USING fts5(content, content='messages', content_rowid='rowid', tokenize='trigram')`.execute(db);
  await sql`
    CREATE TRIGGER message_search_insert AFTER INSERT ON messages WHEN new.status <> 'streaming' BEGIN
      INSERT INTO message_search (rowid, content) VALUES (new.rowid, new.content);
    END`.execute(db);
  await sql`
    CREATE TRIGGER message_search_delete AFTER DELETE ON messages WHEN old.status <> 'streaming' BEGIN
      INSERT INTO message_search (message_search, rowid, content) VALUES ('delete', old.rowid, old.content);
    END`.execute(db);
  await sql`
    CREATE TRIGGER message_search_update AFTER UPDATE OF content, status ON messages BEGIN
      INSERT INTO message_search (message_search, rowid, content)
        SELECT 'delete', old.rowid, old.content WHERE old.status <> 'streaming';
      INSERT INTO message_search (rowid, content) SELECT new.rowid, new.content WHERE new.status <> 'streaming';
    END`.execute(db);
  await sql`INSERT INTO message_search (rowid, content) SELECT rowid, content FROM messages WHERE status <> 'streaming'`.execute(db);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  if (db.getExecutor().adapter instanceof PostgresAdapter) {
    await sql`DROP INDEX IF EXISTS messages_content_trigram`.execute(db);
    await sql`DROP INDEX IF EXISTS chats_title_trigram`.execute(db);
    return;
  }
  for (const trigger of ['message_search_insert', 'message_search_delete', 'message_search_update']) {
    await sql`DROP TRIGGER IF EXISTS ${sql.raw(trigger)}`.execute(db);
  }
  await sql`DROP TABLE IF EXISTS message_search`.execute(db);
}
