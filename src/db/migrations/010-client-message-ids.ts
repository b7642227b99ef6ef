import type { Kysely } from 'kysely';

// Migrations are history: never edit one that has landed; add the next file instead.
// A chat message may carry an id of the client's (`client_id`): the query it started records it, unique per chat, so
// a message the client sends again after a reconnect (it saw no `user_message` yet) is recognised and not answered
// twice. NULL for messages without one.
// Schema builder only: the same migration runs on SQLite and Postgres (both let NULLs repeat in a unique index).
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('queries').addColumn('client_id', 'text').execute();
  await db.schema.createIndex('queries_chat_client_id').unique().on('queries').columns(['chat_id', 'client_id']).execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('queries_chat_client_id').execute();
  await db.schema.alterTable('queries').dropColumn('client_id').execute();
}
