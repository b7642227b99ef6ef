import { randomUUID } from 'node:crypto';
import type { ExpressionBuilder } from 'kysely';
import type { NodeRun } from '../cluster/node-identity.js';
import { CompiledStatement } from '../db/compiled-statement.js';
import type { Db } from '../db/database.js';
import type { Database, QueryStatus } from '../db/schema.js';

/**
 * Whose unfinished work a recovery repairs (crash-recovery.ts):
 * - `all`: one node alone on its database: every unfinished row is its own;
 * - `node`: a node of a cluster starting: its earlier runs' rows (its name runs once at a time, so they are dead) and
 *   rows from before migration 008, which record no node (no node of a cluster writes those);
 * - `run`: one run of a node that the cluster found dead, exactly its rows.
 */
export type WorkScope = { kind: 'all' } | { kind: 'node'; nodeId: string } | { kind: 'run'; run: NodeRun };

/** The ids of the queries in `scope` (any status), as a subquery; undefined for `all`. */
export function queriesIn(db: Db, scope: WorkScope) {
  if (scope.kind === 'all') return undefined;
  return db.selectFrom('queries').select('queries.id').where((eb) => ranBy(eb, scope));
}

function ranBy(eb: ExpressionBuilder<Database, 'queries'>, scope: Exclude<WorkScope, { kind: 'all' }>) {
  return scope.kind === 'node'
    ? eb.or([eb('queries.node_id', '=', scope.nodeId), eb('queries.node_id', 'is', null)])
    : eb.and([eb('queries.node_id', '=', scope.run.nodeId), eb('queries.node_run', '=', scope.run.runId)]);
}

/** The statements every answer runs: its query's start, tail and end (CompiledStatement says why). */
const startQuery = new CompiledStatement(
  (
    db: Db,
    id: string,
    chatId: string,
    startedAt: string,
    userMessageId: string | null,
    clientId: string | null,
    nodeId: string | null,
    nodeRun: string | null,
  ) =>
    db.insertInto('queries').values({
      id,
      chat_id: chatId,
      status: 'running',
      started_at: startedAt,
      user_message_id: userMessageId,
      client_id: clientId,
      node_id: nodeId,
      node_run: nodeRun,
    }),
);
const finishQuery = new CompiledStatement(
  (db: Db, id: string, status: QueryStatus, costUsd: number | null, durationMs: number | null, error: string | null, endedAt: string) =>
    db.updateTable('queries').set({ status, cost_usd: costUsd, duration_ms: durationMs, error, ended_at: endedAt }).where('id', '=', id),
);
const setQueryTail = new CompiledStatement((db: Db, id: string, sessionId: string, tailUuid: string) =>
  db.updateTable('queries').set({ sdk_session_id: sessionId, sdk_tail_uuid: tailUuid }).where('id', '=', id),
);

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
    /** The node run that starts queries through this repository (recorded on each); none outside the service. */
    private readonly node?: NodeRun,
  ) {}

  /** The query a chat message with this client id started, if one did. */
  async byClientId(chatId: string, clientId: string): Promise<string | undefined> {
    const row = await this.db
      .selectFrom('queries')
      .select('id')
      .where('chat_id', '=', chatId)
      .where('client_id', '=', clientId)
      .executeTakeFirst();
    return row?.id;
  }

  /** A new running query; `userMessageId` when the user message it answers is already stored (a retry). */
  async start(chatId: string, userMessageId?: string, clientId?: string): Promise<string> {
    const id = randomUUID();
    await startQuery.execute(
      this.db,
      id,
      chatId,
      this.now().toISOString(),
      userMessageId ?? null,
      clientId ?? null,
      this.node?.nodeId ?? null,
      this.node?.runId ?? null,
    );
    return id;
  }

  /** Where the answer ended in the SDK session: the point a fork or a retry of a later message resumes at. */
  async setSdkTail(id: string, sessionId: string, tailUuid: string): Promise<void> {
    await setQueryTail.execute(this.db, id, sessionId, tailUuid);
  }

  /**
   * The model's context as of the chat's conversation up to `position`: the SDK session and entry where the latest
   * answer at or before it ended (superseded answers are not part of the conversation). Undefined: no answer
   * there left a point to resume at, so the context is empty (a new session).
   */
  async contextAt(chatId: string, position: number): Promise<{ sessionId: string; tailUuid: string } | undefined> {
    const row = await this.db
      .selectFrom('messages')
      .innerJoin('queries', 'queries.id', 'messages.query_id')
      .select(['queries.sdk_session_id', 'queries.sdk_tail_uuid'])
      .where('messages.chat_id', '=', chatId)
      .where('messages.role', '=', 'assistant')
      .where('messages.superseded', '=', 0)
      .where('messages.position', '<=', position)
      .where('queries.sdk_tail_uuid', 'is not', null)
      .where('queries.sdk_session_id', 'is not', null)
      .orderBy('messages.position', 'desc')
      .limit(1)
      .executeTakeFirst();
    return row?.sdk_session_id && row.sdk_tail_uuid ? { sessionId: row.sdk_session_id, tailUuid: row.sdk_tail_uuid } : undefined;
  }

  async finish(id: string, outcome: QueryOutcome): Promise<void> {
    const { status, costUsd, durationMs, error } = outcome;
    await finishQuery.execute(this.db, id, status, costUsd ?? null, durationMs ?? null, error ?? null, this.now().toISOString());
  }

  /** Cost of a query known only after it ended (a stopped query's turn reports its cost when it drains). */
  async recordCost(id: string, costUsd: number, durationMs: number): Promise<void> {
    await this.db.updateTable('queries').set({ cost_usd: costUsd, duration_ms: durationMs }).where('id', '=', id).execute();
  }

  async get(id: string) {
    return this.db.selectFrom('queries').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /** A query whose node was lost: an error, unless it ended meanwhile. True if it was still running. */
  async failIfRunning(id: string, reason: string): Promise<boolean> {
    const result = await this.db
      .updateTable('queries')
      .set({ status: 'error', error: reason, ended_at: this.now().toISOString() })
      .where('id', '=', id)
      .where('status', '=', 'running')
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  /** Queries of `scope` left running by a process that died: they can never finish, so they are marked as errors. */
  async failAbandoned(reason: string, scope: WorkScope = { kind: 'all' }): Promise<number> {
    let update = this.db
      .updateTable('queries')
      .set({ status: 'error', error: reason, ended_at: this.now().toISOString() })
      .where('status', '=', 'running');
    if (scope.kind !== 'all') update = update.where((eb) => ranBy(eb, scope));
    const result = await update.executeTakeFirst();
    return Number(result.numUpdatedRows);
  }
}
