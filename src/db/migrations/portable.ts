import { type Kysely, PostgresAdapter, sql } from 'kysely';

// Column types whose SQLite spelling does not exist (blob) or means less (real: 4 bytes) on Postgres. Migrations
// are history: what these return for a dialect never changes; a new need gets a new helper.

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const onPostgres = (db: Kysely<any>) => db.getExecutor().adapter instanceof PostgresAdapter;

/** Bytes (images): `blob` on SQLite, `bytea` on Postgres; read back as Buffer on both. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const bytesType = (db: Kysely<any>) => (onPostgres(db) ? sql`bytea` : sql`blob`);

/** An 8-byte float: SQLite's `real` is one, Postgres's is 4 bytes (`double precision` is 8). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const float8Type = (db: Kysely<any>) => (onPostgres(db) ? 'double precision' : 'real');

/**
 * An integer key the database assigns in insertion order (with `primaryKey()`): SQLite's `integer primary key` is the
 * rowid, Postgres's `bigserial` a sequence (read back as a string by `pg`).
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const serialIdType = (db: Kysely<any>) => (onPostgres(db) ? 'bigserial' : 'integer');
