import type { Kysely } from 'kysely';
import { bytesType, float8Type } from './portable.js';

// Migrations are history: never edit one that has landed; add the next file instead. (Its two SQLite-only column
// types were later spelled through portable.ts so it also runs on Postgres; on SQLite it creates the same schema.)
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('chats')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('title', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addColumn('sdk_session_id', 'text')
    .addColumn('last_position', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema.createIndex('chats_updated_at').on('chats').column('updated_at').execute();

  await db.schema
    .createTable('queries')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('chat_id', 'text', (c) => c.notNull().references('chats.id').onDelete('cascade'))
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('cost_usd', float8Type(db))
    .addColumn('duration_ms', 'integer')
    .addColumn('error', 'text')
    .addColumn('started_at', 'text', (c) => c.notNull())
    .addColumn('ended_at', 'text')
    .execute();
  await db.schema.createIndex('queries_chat').on('queries').columns(['chat_id', 'started_at']).execute();

  await db.schema
    .createTable('messages')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('chat_id', 'text', (c) => c.notNull().references('chats.id').onDelete('cascade'))
    .addColumn('position', 'integer', (c) => c.notNull())
    .addColumn('role', 'text', (c) => c.notNull())
    .addColumn('content', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull().defaultTo('complete'))
    .addColumn('query_id', 'text', (c) => c.references('queries.id').onDelete('set null'))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addUniqueConstraint('messages_chat_position', ['chat_id', 'position'])
    .execute();

  await db.schema
    .createTable('message_images')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('message_id', 'text', (c) => c.notNull().references('messages.id').onDelete('cascade'))
    .addColumn('ordinal', 'integer', (c) => c.notNull())
    .addColumn('media_type', 'text', (c) => c.notNull())
    .addColumn('data', bytesType(db), (c) => c.notNull())
    .execute();
  await db.schema.createIndex('message_images_message').on('message_images').column('message_id').execute();

  await db.schema
    .createTable('tool_uses')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('chat_id', 'text', (c) => c.notNull().references('chats.id').onDelete('cascade'))
    .addColumn('query_id', 'text', (c) => c.references('queries.id').onDelete('set null'))
    .addColumn('position', 'integer', (c) => c.notNull())
    .addColumn('tool_use_id', 'text', (c) => c.notNull())
    .addColumn('tool_name', 'text', (c) => c.notNull())
    .addColumn('tool_input', 'text', (c) => c.notNull())
    .addColumn('result_content', 'text')
    .addColumn('is_error', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('completed_at', 'text')
    .addUniqueConstraint('tool_uses_chat_position', ['chat_id', 'position'])
    .execute();
  await db.schema.createIndex('tool_uses_chat_tool_use').on('tool_uses').columns(['chat_id', 'tool_use_id']).execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['tool_uses', 'message_images', 'messages', 'queries', 'chats']) {
    await db.schema.dropTable(table).execute();
  }
}
