import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { CompiledStatement } from '../db/compiled-statement.js';
import type { Db } from '../db/database.js';

export interface UsageToRecord {
  chatId: string;
  queryId: string | null;
  model: string | null;
  inputTokens: number;
  outputTokens: number;
  cacheReadInputTokens: number;
  cacheCreationInputTokens: number;
  costUsd: number;
}

export interface UsageTotals {
  input_tokens: number;
  output_tokens: number;
  cost_usd: number;
  queries: number;
}

const totals = (row: { input?: unknown; output?: unknown; cost?: unknown; n?: unknown } | undefined): UsageTotals => ({
  input_tokens: Number(row?.input ?? 0),
  output_tokens: Number(row?.output ?? 0),
  cost_usd: Number(row?.cost ?? 0),
  queries: Number(row?.n ?? 0),
});

/** One row per answered turn (CompiledStatement says why it is compiled once); the owner read inside the insert. */
const insertUsage = new CompiledStatement(
  (
    db: Db,
    id: string,
    queryId: string | null,
    chatId: string,
    model: string | null,
    inputTokens: number,
    outputTokens: number,
    cacheReadInputTokens: number,
    cacheCreationInputTokens: number,
    costUsd: number,
    createdAt: string,
  ) =>
    db.insertInto('usage').values((eb) => ({
      id,
      query_id: queryId,
      chat_id: chatId,
      user_id: eb.selectFrom('chats').select('user_id').where('id', '=', chatId),
      model,
      input_tokens: inputTokens,
      output_tokens: outputTokens,
      cache_read_input_tokens: cacheReadInputTokens,
      cache_creation_input_tokens: cacheCreationInputTokens,
      cost_usd: costUsd,
      created_at: createdAt,
    })),
);

/**
 * The usage ledger: one row per answered turn, with its own tokens and cost. The owner is copied from the chat
 * when the row is written, so the ledger (and budgets) outlive deleted chats. Rows an import carried in
 * (`imported`) were spent elsewhere: they travel with the chat's export but count in no total, report or budget.
 */
export class UsageRepository {
  constructor(
    private readonly db: Db,
    private readonly now: () => Date,
  ) {}

  async record(usage: UsageToRecord): Promise<void> {
    // The owner is read inside the insert (one statement per answered turn, not two); no chat row: null.
    await insertUsage.execute(
      this.db,
      randomUUID(),
      usage.queryId,
      usage.chatId,
      usage.model,
      usage.inputTokens,
      usage.outputTokens,
      usage.cacheReadInputTokens,
      usage.cacheCreationInputTokens,
      usage.costUsd,
      this.now().toISOString(),
    );
  }

  /** What `userId` (null: local mode) spent since `from` (ISO-8601), in USD. */
  async spentSince(userId: string | null, from: string): Promise<number> {
    const row = await this.db
      .selectFrom('usage')
      .select((eb) => eb.fn.sum<number | string | null>('cost_usd').as('cost'))
      .where((eb) => (userId === null ? eb('user_id', 'is', null) : eb('user_id', '=', userId)))
      .where('created_at', '>=', from)
      .where('imported', '=', 0)
      .executeTakeFirst();
    return Number(row?.cost ?? 0);
  }

  async chatTotals(chatId: string): Promise<UsageTotals> {
    const row = await this.db
      .selectFrom('usage')
      .select((eb) => [
        eb.fn.sum<number>('input_tokens').as('input'),
        eb.fn.sum<number>('output_tokens').as('output'),
        eb.fn.sum<number>('cost_usd').as('cost'),
        eb.fn.count<number>('query_id').distinct().as('n'),
      ])
      .where('chat_id', '=', chatId)
      .where('imported', '=', 0)
      .executeTakeFirst();
    return totals(row);
  }

  /**
   * The caller's usage between `from` (inclusive) and `to` (exclusive), grouped by chat or by UTC day (the first 10
   * characters of the ISO timestamp: the same on every store).
   */
  async summary(
    userId: string | null,
    range: { from?: string; to?: string },
    groupBy: 'chat' | 'day',
  ): Promise<({ key: string } & UsageTotals)[]> {
    const key = groupBy === 'chat' ? sql<string>`chat_id` : sql<string>`substr(created_at, 1, 10)`;
    const rows = await this.db
      .selectFrom('usage')
      .select((eb) => [
        key.as('key'),
        eb.fn.sum<number>('input_tokens').as('input'),
        eb.fn.sum<number>('output_tokens').as('output'),
        eb.fn.sum<number>('cost_usd').as('cost'),
        eb.fn.count<number>('query_id').distinct().as('n'),
      ])
      .where((eb) => (userId === null ? eb('user_id', 'is', null) : eb('user_id', '=', userId)))
      .where('imported', '=', 0)
      .$if(range.from !== undefined, (qb) => qb.where('created_at', '>=', range.from!))
      .$if(range.to !== undefined, (qb) => qb.where('created_at', '<', range.to!))
      .groupBy(key)
      .orderBy(key)
      .execute();
    return rows.map((row) => ({ key: String(row.key), ...totals(row) }));
  }
}
