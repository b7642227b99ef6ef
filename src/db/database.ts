import { Kysely, Migrator, PostgresAdapter } from 'kysely';
import type { DatabaseTarget } from '../config/config.js';
import { sqliteDialect } from './dialects/sqlite.js';
import { migrationProvider } from './migrations/index.js';
import type { Database } from './schema.js';

export type Db = Kysely<Database>;

/** Runs `work` in a transaction: the caller's, when `db` is one already (so repositories compose), else a new one. */
export function inTransaction<T>(db: Db, work: (trx: Db) => Promise<T>): Promise<T> {
  return db.isTransaction ? work(db) : db.transaction().execute(work);
}

export type DialectName = DatabaseTarget['kind'];

/**
 * Opens the store and brings its schema up to date. The only place that picks a dialect (dialects/): repositories
 * and migrations are written once for all of them.
 */
export async function openDatabase(
  target: DatabaseTarget,
  options: { onConnectionError?: (err: Error) => void } = {},
): Promise<Db> {
  // Postgres's driver is loaded only where it is used: it would cost every SQLite service ~15 MB at rest.
  const dialect =
    target.kind === 'sqlite'
      ? sqliteDialect(target.file)
      : (await import('./dialects/postgres.js')).postgresDialect(target.url, options.onConnectionError ?? (() => undefined));
  const db = new Kysely<Database>({ dialect });
  try {
    await migrateToLatest(db);
  } catch (err) {
    await db.destroy();
    throw err;
  }
  return db;
}

/** Which dialect a handle (or transaction) speaks, for the few statements that must differ (db/ only). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function dialectOf(db: Kysely<any>): DialectName {
  return db.getExecutor().adapter instanceof PostgresAdapter ? 'postgres' : 'sqlite';
}

/**
 * Runs the migrations not yet applied. On Postgres, Kysely's migrator holds an advisory lock and runs them in a
 * transaction, so several processes starting at once apply each migration exactly once.
 */
export async function migrateToLatest(db: Kysely<Database>): Promise<void> {
  // Numbers are reserved per feature (003/004, 005, 006 ...) and land in any order; each migration stands alone, so a
  // database that already has a later one still gets an earlier one that landed after it.
  const migrator = new Migrator({ db, provider: migrationProvider, allowUnorderedMigrations: true });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === 'Error');
  if (error || failed) {
    const what = failed ? `migration ${failed.migrationName} failed` : 'migration failed';
    throw new Error(`${what}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
}
