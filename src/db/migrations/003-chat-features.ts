import type { Kysely } from 'kysely';

// Migrations are history: never edit one that has landed; add the next file instead.
// What chat products add around answering: where a chat's title came from (a user's title is never replaced),
// per-chat agent settings, forks and retries (the SDK's message ids of each answer, a pending resume point,
// superseded answers), and a usage ledger that outlives deleted chats (budgets count what was spent).
// Schema builder only, no dialect-specific SQL: the same migration runs on SQLite and Postgres.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('chats')
    .addColumn('title_source', 'text', (c) => c.notNull().defaultTo('default'))
    .execute();
  await db.schema.alterTable('chats').addColumn('settings', 'text').execute();
  await db.schema.alterTable('chats').addColumn('resume_at', 'text').execute();
  await db.schema.alterTable('chats').addColumn('forked_from', 'text').execute();
  // Existing chats: a title other than the default was chosen by someone, so it is kept as the user's.
  await db.updateTable('chats').set({ title_source: 'user' }).where('title', '!=', 'New Chat').execute();

  await db.schema
    .alterTable('messages')
    .addColumn('superseded', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();

  await db.schema.alterTable('queries').addColumn('user_message_id', 'text').execute();
  await db.schema.alterTable('queries').addColumn('sdk_session_id', 'text').execute();
  await db.schema.alterTable('queries').addColumn('sdk_tail_uuid', 'text').execute();

  await db.schema
    .createTable('usage')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('query_id', 'text')
    .addColumn('chat_id', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text')
    .addColumn('model', 'text')
    .addColumn('input_tokens', 'integer', (c) => c.notNull())
    .addColumn('output_tokens', 'integer', (c) => c.notNull())
    .addColumn('cache_read_input_tokens', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('cache_creation_input_tokens', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('cost_usd', 'double precision', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('usage_user_created').on('usage').columns(['user_id', 'created_at']).execute();
  await db.schema.createIndex('usage_chat').on('usage').column('chat_id').execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('usage').execute();
  for (const column of ['sdk_tail_uuid', 'sdk_session_id', 'user_message_id']) {
    await db.schema.alterTable('queries').dropColumn(column).execute();
  }
  await db.schema.alterTable('messages').dropColumn('superseded').execute();
  for (const column of ['forked_from', 'resume_at', 'settings', 'title_source']) {
    await db.schema.alterTable('chats').dropColumn(column).execute();
  }
}
