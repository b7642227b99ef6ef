import fs from 'node:fs';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import { SqliteDialect } from 'kysely';
import { withStatementCache } from '../statement-cache.js';

/**
 * The embedded store: one file, one process. WAL mode (readers never block the writer, and a crash loses no
 * committed message) with foreign keys on, which SQLite leaves off by default: deleting a chat cascades to its
 * messages, images, tool uses and queries only with them on.
 */
export function sqliteDialect(file: string): SqliteDialect {
  if (file !== ':memory:') fs.mkdirSync(path.dirname(file), { recursive: true });
  const sqlite = new SQLite(file);
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('foreign_keys = ON');
  // NORMAL is durable in WAL mode against process crashes (only an OS crash may lose the last transactions).
  sqlite.pragma('synchronous = NORMAL');
  sqlite.pragma('busy_timeout = 5000');
  return new SqliteDialect({ database: withStatementCache(sqlite) });
}
