import { randomUUID } from 'node:crypto';
import type { Db } from '../db/database.js';
import type { ToolUseRow } from '../db/schema.js';
import type { ToolUseRecord } from '../protocol/chat.js';
import { ChatsRepository } from './chats.repository.js';

const parseInput = (json: string): Record<string, unknown> => {
  try {
    const value: unknown = JSON.parse(json);
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : { value };
  } catch {
    return { raw: json };
  }
};

const toRecord = (row: ToolUseRow): ToolUseRecord => ({
  id: row.tool_use_id,
  tool_name: row.tool_name,
  tool_input: parseInput(row.tool_input),
  result_content: row.result_content,
  is_error: row.is_error === 1,
  timestamp: row.created_at,
});

/** The agent's tool calls and their results, in the chat's order. */
export class ToolUsesRepository {
  constructor(
    private readonly db: Db,
    private readonly now: () => Date,
  ) {}

  async recordCall(call: {
    chatId: string;
    queryId: string | null;
    toolUseId: string;
    toolName: string;
    input: unknown;
  }): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      const position = await new ChatsRepository(trx, this.now).nextPosition(call.chatId);
      if (position === undefined) return;
      await trx
        .insertInto('tool_uses')
        .values({
          id: randomUUID(),
          chat_id: call.chatId,
          query_id: call.queryId,
          position,
          tool_use_id: call.toolUseId,
          tool_name: call.toolName,
          tool_input: JSON.stringify(call.input ?? {}),
          created_at: this.now().toISOString(),
        })
        .execute();
    });
  }

  async recordResult(result: { chatId: string; toolUseId: string; content: string; isError: boolean }): Promise<void> {
    await this.db
      .updateTable('tool_uses')
      .set({ result_content: result.content, is_error: result.isError ? 1 : 0, completed_at: this.now().toISOString() })
      .where('chat_id', '=', result.chatId)
      .where('tool_use_id', '=', result.toolUseId)
      .execute();
  }

  async list(chatId: string): Promise<ToolUseRecord[]> {
    const rows = await this.db
      .selectFrom('tool_uses')
      .selectAll()
      .where('chat_id', '=', chatId)
      .orderBy('position')
      .execute();
    return rows.map(toRecord);
  }

  /**
   * Tool calls of a query that never got a result (the query was stopped, or the service died): marked as failed
   * so history does not show them as still running. Without `queryId`, every open call (start-up recovery).
   */
  async interruptOpen(queryId?: string): Promise<number> {
    let update = this.db
      .updateTable('tool_uses')
      .set({ result_content: INTERRUPTED_TOOL_RESULT, is_error: 1, completed_at: this.now().toISOString() })
      .where('completed_at', 'is', null);
    if (queryId !== undefined) update = update.where('query_id', '=', queryId);
    const result = await update.executeTakeFirst();
    return Number(result.numUpdatedRows);
  }
}

export const INTERRUPTED_TOOL_RESULT = 'Interrupted: the answer was stopped before this tool finished.';
