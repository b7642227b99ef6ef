import type { Database as SQLiteDatabase, Statement } from 'better-sqlite3';
import type { SqliteDatabase } from 'kysely';

/** Distinct SQL texts kept prepared; the service issues a few dozen shapes, so this is never reached in practice. */
const MAX_STATEMENTS = 500;

/**
 * Kysely's SQLite driver prepares every query anew. Preparing (parsing and planning the SQL) costs more than
 * running the small statements of a chat service, and it is synchronous: on the streaming path (checkpoints,
 * message rows) it is event-loop time every other chat waits for. Statements are reusable in better-sqlite3 once
 * a run/all/get has returned, which is always the case here (the driver awaits nothing in between), so one
 * prepared statement per SQL text is kept, least recently used dropped first.
 */
export function withStatementCache(sqlite: SQLiteDatabase, max = MAX_STATEMENTS): SqliteDatabase {
  const cache = new Map<string, Statement>();
  return {
    close: () => {
      cache.clear();
      sqlite.close();
    },
    prepare: (sql: string) => {
      let statement = cache.get(sql);
      if (statement) {
        // Re-inserted: Map order is the LRU order.
        cache.delete(sql);
      } else {
        statement = sqlite.prepare(sql);
        if (cache.size >= max) cache.delete(cache.keys().next().value!);
      }
      cache.set(sql, statement);
      return statement;
    },
  };
}
