import { sql, type Expression, type SqlBool } from 'kysely';
import { dialectOf, type Db } from './database.js';

/** The trigram index (migration 006) answers texts of at least this many characters; shorter ones are scanned. */
const TRIGRAM = 3;

/**
 * "Chat `chatIdColumn` has a message whose text contains `text`", case-insensitive like the rest of the search
 * (`pattern` is the escaped `%text%` of chats.repository's likePattern, matched against lower(content)).
 *
 * On SQLite the FTS5 trigram index (message_search) finds the candidate messages and the same LIKE re-checks each
 * of them, so the answer is exactly the scan's, only faster. The index is asked with a MATCH phrase (a quoted
 * phrase of trigrams is a substring match) rather than its LIKE support, which SQLite drops as soon as an ESCAPE
 * clause is present, and an ESCAPE is needed to keep `%` and `_` literal. On Postgres the LIKE itself uses the
 * pg_trgm index. Answers still streaming are not in the SQLite index (see the migration): they are found once
 * they end.
 */
export function chatHasMessageContaining(db: Db, chatIdColumn: string, text: string, pattern: string): Expression<SqlBool> {
  const matches = sql<SqlBool>`lower(m.content) like ${pattern} escape '\\'`;
  if (dialectOf(db) === 'sqlite' && [...text].length >= TRIGRAM) {
    const phrase = `"${text.replace(/"/g, '""')}"`;
    return sql<SqlBool>`${sql.ref(chatIdColumn)} in (
      select m.chat_id from message_search s join messages m on m.rowid = s.rowid
      where message_search match ${phrase} and ${matches})`;
  }
  return sql<SqlBool>`exists (select 1 from messages m where m.chat_id = ${sql.ref(chatIdColumn)} and ${matches})`;
}
