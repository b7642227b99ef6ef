import type { Kysely } from 'kysely';

// Migrations are history: never edit one that has landed; add the next file instead.
// A chat's remembered approvals ("Allow for this chat"): each row allows the tool calls that one rule matches
// (agent/permission-rules.ts), checked by the service before it asks. They live as long as their chat.
// Schema builder only: the same migration runs on SQLite and Postgres.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('permission_rules')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('chat_id', 'text', (c) => c.notNull().references('chats.id').onDelete('cascade'))
    .addColumn('tool_name', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('pattern', 'text', (c) => c.notNull())
    .addColumn('description', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addUniqueConstraint('permission_rules_chat_rule', ['chat_id', 'tool_name', 'kind', 'pattern'])
    .execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('permission_rules').execute();
}
