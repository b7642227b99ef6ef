import type { Kysely } from 'kysely';

// Migrations are history: never edit one that has landed; add the next file instead.
// A retried answer is superseded whole: its tool calls too, not only its text (messages.superseded, 003), so
// tool_history and the tool-use routes can mark them and a fork leaves them behind.
// Schema builder only: the same migration runs on SQLite and Postgres.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('tool_uses')
    .addColumn('superseded', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('tool_uses').dropColumn('superseded').execute();
}
