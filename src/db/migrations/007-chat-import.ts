import type { Kysely } from 'kysely';

// Migrations are history: never edit one that has landed; add the next file instead.
// Imported chats (POST /api/chats/import): usage rows carried in by an import are kept for the chat's export but
// were not spent here, so budgets and usage reports leave them out; and an imported chat holds, until its first
// message reaches the agent, the transcript that message carries to the model (docs/export-format.md).
// Schema builder only: the same migration runs on SQLite and Postgres.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('usage')
    .addColumn('imported', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema.alterTable('chats').addColumn('import_context', 'text').execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('chats').dropColumn('import_context').execute();
  await db.schema.alterTable('usage').dropColumn('imported').execute();
}
