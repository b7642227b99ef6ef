import type { Kysely } from 'kysely';

// Migrations are history: never edit one that has landed; add the next file instead.
// Several nodes share one database: each query records the node that runs it (its NODE_ID, and the id of that run of
// the node), so start-up recovery repairs only what its own node left unfinished, and the node-loss clean-up only
// what the lost run left. The streaming messages and open tool calls of a query are found through it. Rows from
// before this migration have neither (NULL).
// Schema builder only: the same migration runs on SQLite and Postgres.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('queries').addColumn('node_id', 'text').execute();
  await db.schema.alterTable('queries').addColumn('node_run', 'text').execute();
  await db.schema.createIndex('queries_node_run').on('queries').columns(['node_id', 'node_run']).execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('queries_node_run').execute();
  await db.schema.alterTable('queries').dropColumn('node_run').execute();
  await db.schema.alterTable('queries').dropColumn('node_id').execute();
}
