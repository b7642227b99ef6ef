import { randomUUID } from 'node:crypto';
import type { Db } from '../db/database.js';
import type { ToolUseRow } from '../db/schema.js';
import type { ToolUseRecord } from '../protocol/chat.js';
import { sql } from 'kysely';
import { toolUsePath, truncationMarker } from '../chats/tool-output.js';
import { ChatsRepository } from './chats.repository.js';
import { queriesIn, type WorkScope } from './queries.repository.js';

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
  ...(row.superseded === 1 ? { superseded: true } : {}),
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

  /** One tool use with its whole result, or undefined when the chat has none with that id. */
  async get(chatId: string, toolUseId: string): Promise<ToolUseRecord | undefined> {
    const row = await this.db
      .selectFrom('tool_uses')
      .selectAll()
      .where('chat_id', '=', chatId)
      .where('tool_use_id', '=', toolUseId)
      .executeTakeFirst();
    return row && toRecord(row);
  }

  /**
   * The newest tool uses for a subscriber's `tool_history`, oldest first: at most `limit`, about `maxBytes` of JSON
   * at most (the newest one always), each result cut to `maxResultChars` in SQL so a huge output is never read
   * whole. `hasMore`: older ones were left out.
   */
  async latest(
    chatId: string,
    { limit, maxBytes, maxResultChars }: { limit: number; maxBytes: number; maxResultChars: number },
  ): Promise<{ toolUses: ToolUseRecord[]; hasMore: boolean }> {
    const rows = await this.db
      .selectFrom('tool_uses')
      .select([
        'id',
        'chat_id',
        'query_id',
        'position',
        'tool_use_id',
        'tool_name',
        'tool_input',
        'is_error',
        'created_at',
        'completed_at',
        'superseded',
        // substr and length count characters on SQLite and PostgreSQL alike.
        sql<string | null>`substr(result_content, 1, ${maxResultChars})`.as('result_content'),
        sql<number | null>`length(result_content)`.as('result_chars'),
      ])
      .where('chat_id', '=', chatId)
      .orderBy('position', 'desc')
      .limit(limit + 1)
      .execute();
    const toolUses: ToolUseRecord[] = [];
    let bytes = 0;
    let hasMore = rows.length > limit;
    for (const row of rows.slice(0, limit)) {
      const record = toRecord({ ...row, result_content: row.result_content } as ToolUseRow);
      const total = Number(row.result_chars ?? 0);
      if (record.result_content !== null && total > maxResultChars) {
        record.result_content += truncationMarker(maxResultChars, total, toolUsePath(chatId, record.id));
        record.result_truncated = true;
      }
      const size = Buffer.byteLength(JSON.stringify(record));
      if (toolUses.length > 0 && bytes + size > maxBytes) {
        hasMore = true;
        break;
      }
      bytes += size;
      toolUses.push(record);
    }
    return { toolUses: toolUses.reverse(), hasMore };
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

  /** interruptOpen for the queries of `scope` (crash recovery: see WorkScope). */
  async interruptOpenOf(scope: WorkScope): Promise<number> {
    const queries = queriesIn(this.db, scope);
    if (!queries) return this.interruptOpen();
    const result = await this.db
      .updateTable('tool_uses')
      .set({ result_content: INTERRUPTED_TOOL_RESULT, is_error: 1, completed_at: this.now().toISOString() })
      .where('completed_at', 'is', null)
      .where('query_id', 'in', queries)
      .executeTakeFirst();
    return Number(result.numUpdatedRows);
  }
}

export const INTERRUPTED_TOOL_RESULT = 'Interrupted: the answer was stopped before this tool finished.';
