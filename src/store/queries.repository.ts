import { randomUUID } from 'node:crypto';
import type { Db } from '../db/database.js';
import type { QueryStatus } from '../db/schema.js';

export interface QueryOutcome {
  status: Exclude<QueryStatus, 'running'>;
  costUsd?: number | null;
  durationMs?: number | null;
  error?: string | null;
}

/** One row per user message sent to the agent: how it ended, what it cost, how long it took. */
export class QueriesRepository {
  constructor(
    private readonly db: Db,
    private readonly now: () => Date,
  ) {}

  async start(chatId: string): Promise<string> {
    const id = randomUUID();
    await this.db
      .insertInto('queries')
      .values({ id, chat_id: chatId, status: 'running', started_at: this.now().toISOString() })
      .execute();
    return id;
  }

  async finish(id: string, outcome: QueryOutcome): Promise<void> {
    await this.db
      .updateTable('queries')
      .set({
        status: outcome.status,
        cost_usd: outcome.costUsd ?? null,
        duration_ms: outcome.durationMs ?? null,
        error: outcome.error ?? null,
        ended_at: this.now().toISOString(),
      })
      .where('id', '=', id)
      .execute();
  }

  /** Cost of a query known only after it ended (a stopped query's turn reports its cost when it drains). */
  async recordCost(id: string, costUsd: number, durationMs: number): Promise<void> {
    await this.db.updateTable('queries').set({ cost_usd: costUsd, duration_ms: durationMs }).where('id', '=', id).execute();
  }

  async get(id: string) {
    return this.db.selectFrom('queries').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /** Queries left running by a process that died: they can never finish, so they are marked as errors. */
  async failAbandoned(reason: string): Promise<number> {
    const result = await this.db
      .updateTable('queries')
      .set({ status: 'error', error: reason, ended_at: this.now().toISOString() })
      .where('status', '=', 'running')
      .executeTakeFirst();
    return Number(result.numUpdatedRows);
  }
}
