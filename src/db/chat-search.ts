import { sql, type Expression, type RawBuilder, type SqlBool } from 'kysely';
import { dialectOf, type Db } from './database.js';

/** The trigram indexes (migrations 006, 011) answer texts of at least this many characters; shorter ones are scanned. */
const TRIGRAM = 3;

/**
 * "The chat's title or one of its messages contains `text`", case-insensitive (`pattern` is the escaped `%text%` of
 * chats.repository's likePattern, matched against lower(title) and lower(content)), for a query on `chats`.
 *
 * On SQLite the FTS5 trigram indexes (chat_title_search, migration 011; message_search, 006) find the candidates and
 * the same LIKE re-checks each of them, so the answer is exactly the scan's, only faster. An index is asked with a
 * MATCH phrase (a quoted phrase of trigrams is a substring match) rather than its LIKE support, which SQLite drops as
 * soon as an ESCAPE clause is present, and an ESCAPE is needed to keep `%` and `_` literal. The two lists of hits
 * are joined with OR on `chats.id`, which SQLite answers by looking each hit up (a multi-index OR) instead of
 * reading every chat. Answers still streaming are not in the index (see 006): they are found once they end.
 *
 * On Postgres the LIKEs themselves use the pg_trgm indexes, the messages' through one uncorrelated subquery (run once,
 * its chat ids hashed): a correlated EXISTS read each chat's messages, 1 s over a million of them.
 * Benchmarked in `npm run bench`, phase 8.
 */
export function chatContaining(db: Db, text: string, pattern: string): Expression<SqlBool> {
  const messageMatches = sql<SqlBool>`lower(m.content) like ${pattern} escape '\\'`;
  if (dialectOf(db) === 'sqlite' && [...text].length >= TRIGRAM) {
    const phrase = `"${text.replace(/"/g, '""')}"`;
    return sql<SqlBool>`(chats.id in (
        select c.id from chat_title_search t join chats c on c.rowid = t.rowid
        where chat_title_search match ${phrase} and lower(c.title) like ${pattern} escape '\\')
      or chats.id in (
        select m.chat_id from message_search s join messages m on m.rowid = s.rowid
        where message_search match ${phrase} and ${messageMatches}))`;
  }
  return sql<SqlBool>`(lower(chats.title) like ${pattern} escape '\\'
    or chats.id in (select m.chat_id from messages m where ${messageMatches}))`;
}

/**
 * `chats.user_id` as a search's owner filter reads it. On SQLite it is written `+chats.user_id`, which keeps the
 * planner from walking the owner's index (every chat of local mode) instead of looking up the few hits.
 */
export function searchOwnerColumn(db: Db): RawBuilder<string | null> {
  return dialectOf(db) === 'sqlite' ? sql<string | null>`+chats.user_id` : sql<string | null>`chats.user_id`;
}
