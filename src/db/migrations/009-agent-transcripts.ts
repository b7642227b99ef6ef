import type { Kysely } from 'kysely';
import { serialIdType } from './portable.js';

// Migrations are history: never edit one that has landed; add the next file instead.
// The agents' session transcripts in the database (SESSION_STORE=database): one row per transcript line the agent
// SDK mirrors through its sessionStore, so any node can resume a chat's agent session (agent/database-session-store.ts).
// A chat's rows go with the chat. `subpath` is '' for a session's main transcript, else the SDK's subkey of a
// subagent's transcript; `id` orders the lines; `uuid` (most lines have one) makes a repeated append a no-op.
// Schema builder only: the same migration runs on SQLite and Postgres.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('agent_transcript_entries')
    .addColumn('id', serialIdType(db), (c) => c.primaryKey())
    .addColumn('chat_id', 'text', (c) => c.notNull().references('chats.id').onDelete('cascade'))
    .addColumn('session_id', 'text', (c) => c.notNull())
    .addColumn('subpath', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('uuid', 'text')
    .addColumn('entry', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute();
  // Lines without a uuid (NULL) never conflict: both databases treat NULLs as distinct here.
  await db.schema
    .createIndex('agent_transcript_entries_line')
    .unique()
    .on('agent_transcript_entries')
    .columns(['chat_id', 'session_id', 'subpath', 'uuid'])
    .execute();
  await db.schema
    .createIndex('agent_transcript_entries_order')
    .on('agent_transcript_entries')
    .columns(['chat_id', 'session_id', 'subpath', 'id'])
    .execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('agent_transcript_entries').execute();
}
