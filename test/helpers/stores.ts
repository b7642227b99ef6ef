// The stores every store-dependent test runs on: SQLite (a file in a temp folder) and PostgreSQL (a database of its
// own, created for the test and dropped after it). Postgres tests skip, saying so once, where none is reachable.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { afterEach, beforeEach, describe, inject } from 'vitest';
import type { DatabaseTarget } from '../../src/config/config.js';
import { openDatabase, type Db } from '../../src/db/database.js';
import { Store } from '../../src/store/store.js';

export type StoreKind = DatabaseTarget['kind'];
export const STORE_KINDS: readonly StoreKind[] = ['sqlite', 'postgres'];

/**
 * Inside vitest the global setup provides these; the stress, soak and bench scripts import the same helpers outside
 * vitest, where only SQLite is used unless TEST_DATABASE_URL names a Postgres.
 */
function provided<T>(read: () => T, outside: () => T): T {
  try {
    return read();
  } catch {
    return outside();
  }
}
const postgresAdminUrl: string | null = provided(() => inject('postgresUrl'), () => process.env.TEST_DATABASE_URL ?? null);
const runId: string = provided(() => inject('testRunId'), () => `script${process.pid}`);

export const storeAvailable = (kind: StoreKind): boolean => kind === 'sqlite' || postgresAdminUrl !== null;

/** One describe block per store (`on sqlite`, `on postgres`); the Postgres one is skipped without a Postgres. */
export function describeEachStore(name: string, body: (kind: StoreKind) => void): void {
  for (const kind of STORE_KINDS) describe.skipIf(!storeAvailable(kind))(`${name} (on ${kind})`, () => body(kind));
}

/**
 * For a describe block: before each test a new database of `kind`, migrated, and a Store over it; after it, both
 * closed and the database dropped. Read `db` and `store` inside the tests: they are new for each one.
 */
export function storeForEachTest(kind: StoreKind): { readonly db: Db; readonly store: Store } {
  let database: TestDatabase;
  let db: Db;
  let store: Store;
  beforeEach(async () => {
    database = await createTestDatabase(kind);
    db = await openDatabase(database.target);
    store = new Store(db);
  });
  afterEach(async () => {
    await db.destroy();
    await database.drop();
  });
  return {
    get db() {
      return db;
    },
    get store() {
      return store;
    },
  };
}

export interface TestDatabase {
  kind: StoreKind;
  /** The DATABASE_URL of this database. */
  url: string;
  target: DatabaseTarget;
  /** Removes the database (and, for SQLite, its folder). Every connection to it must be closed first. */
  drop(): Promise<void>;
}

import { makeTempDir } from './temp-dirs.js';
export { makeTempDir };

async function withAdmin<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  if (postgresAdminUrl === null) throw new Error('no Postgres reachable (see the skip message at the start of the run)');
  const client = new pg.Client({ connectionString: postgresAdminUrl });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/**
 * A new, empty database of `kind`. SQLite: `chat.db` in `dir` (a new temp folder by default, removed by drop()).
 * Postgres: a database with a unique name on the test server, dropped by drop() (any connection still open to it
 * is ended; a run's leftovers are dropped by the global teardown).
 */
export async function createTestDatabase(kind: StoreKind, dir?: string): Promise<TestDatabase> {
  if (kind === 'sqlite') {
    const folder = dir ?? makeTempDir('agent-chat-db-');
    const file = path.join(folder, 'chat.db');
    return {
      kind,
      url: `sqlite:${file}`,
      target: { kind, file },
      drop: async () => {
        if (dir === undefined) fs.rmSync(folder, { recursive: true, force: true });
        else for (const suffix of ['', '-wal', '-shm']) fs.rmSync(file + suffix, { force: true });
      },
    };
  }
  const name = `agent_chat_test_${runId}_${randomBytes(6).toString('hex')}`;
  await withAdmin((client) => client.query(`create database "${name}"`));
  const url = new URL(postgresAdminUrl!);
  url.pathname = `/${name}`;
  return {
    kind,
    url: url.toString(),
    target: { kind, url: url.toString() },
    drop: () => withAdmin((client) => client.query(`drop database if exists "${name}" with (force)`)).then(() => undefined),
  };
}

/** How many transcript lines the store holds for a chat (agent_transcript_entries). */
export async function transcriptRows(db: Db, chatId: string): Promise<number> {
  const row = await db
    .selectFrom('agent_transcript_entries')
    .select((eb) => eb.fn.countAll<number | bigint>().as('n'))
    .where('chat_id', '=', chatId)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}
