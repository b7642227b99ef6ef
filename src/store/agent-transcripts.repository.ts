import { sql } from 'kysely';
import { inTransaction, type Db } from '../db/database.js';

/**
 * One line of an agent session's transcript: JSON the agent SDK defines (a `type`, mostly a `uuid`, the rest opaque).
 * Stored and returned as it came: the only promise is that it reads back deep-equal.
 */
export interface TranscriptEntry {
  type: string;
  uuid?: string;
  [key: string]: unknown;
}

/** A chat's session transcript: the main one (no `subpath`) or a subagent's (the SDK's subkey, e.g. `subagents/agent-x`). */
export interface TranscriptKey {
  chatId: string;
  sessionId: string;
  subpath?: string;
}

/** Rows per INSERT: far below both databases' bound parameter limits (5 columns each). */
const ROWS_PER_INSERT = 500;

/**
 * The agents' session transcripts kept in the database (SESSION_STORE=database), one row per line, in the order
 * they were appended. They belong to their chat: deleted with it (foreign key) and by a history clear.
 */
export class AgentTranscriptsRepository {
  constructor(
    private readonly db: Db,
    private readonly now: () => Date,
  ) {}

  /**
   * Appends lines after the transcript's last. A line whose `uuid` the transcript already holds is skipped, so an
   * append retried after a lost reply stores nothing twice; lines without a uuid are always appended.
   */
  async append(key: TranscriptKey, entries: readonly TranscriptEntry[]): Promise<void> {
    if (entries.length === 0) return;
    const createdAt = this.now().toISOString();
    const rows = entries.map((entry) => ({
      chat_id: key.chatId,
      session_id: key.sessionId,
      subpath: key.subpath ?? '',
      uuid: typeof entry.uuid === 'string' ? entry.uuid : null,
      entry: JSON.stringify(entry),
      created_at: createdAt,
    }));
    const insert = async (db: Db) => {
      for (let i = 0; i < rows.length; i += ROWS_PER_INSERT) {
        await db
          .insertInto('agent_transcript_entries')
          .values(rows.slice(i, i + ROWS_PER_INSERT))
          .onConflict((oc) => oc.doNothing())
          .execute();
      }
    };
    // One statement needs no transaction of its own; a larger append is stored whole or not at all.
    await (rows.length <= ROWS_PER_INSERT ? insert(this.db) : inTransaction(this.db, insert));
  }

  /** The transcript's lines in order; null when it has none. */
  async load(key: TranscriptKey): Promise<TranscriptEntry[] | null> {
    const rows = await this.db
      .selectFrom('agent_transcript_entries')
      .select('entry')
      .where('chat_id', '=', key.chatId)
      .where('session_id', '=', key.sessionId)
      .where('subpath', '=', key.subpath ?? '')
      .orderBy('id')
      .execute();
    return rows.length === 0 ? null : rows.map((row) => JSON.parse(row.entry) as TranscriptEntry);
  }

  /** Whether the chat holds the session's main transcript. */
  async has(chatId: string, sessionId: string): Promise<boolean> {
    const row = await this.db
      .selectFrom('agent_transcript_entries')
      .select('id')
      .where('chat_id', '=', chatId)
      .where('session_id', '=', sessionId)
      .where('subpath', '=', '')
      .limit(1)
      .executeTakeFirst();
    return row !== undefined;
  }

  /** The subagent transcripts (subpaths) the chat holds for the session. */
  async subpaths(chatId: string, sessionId: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom('agent_transcript_entries')
      .select('subpath')
      .distinct()
      .where('chat_id', '=', chatId)
      .where('session_id', '=', sessionId)
      .where('subpath', '<>', '')
      .orderBy('subpath')
      .execute();
    return rows.map((row) => row.subpath);
  }

  /** Removes a transcript; the main one takes the session's subagent transcripts with it. */
  async remove(key: TranscriptKey): Promise<void> {
    let query = this.db
      .deleteFrom('agent_transcript_entries')
      .where('chat_id', '=', key.chatId)
      .where('session_id', '=', key.sessionId);
    if (key.subpath !== undefined) query = query.where('subpath', '=', key.subpath);
    await query.execute();
  }

  /**
   * Copies a session's transcripts (main and subagents, in order) from one chat to another, which can then resume it
   * (a fork). Lines the target already has are skipped. False when the source chat holds no such session.
   */
  async copySession(fromChatId: string, toChatId: string, sessionId: string): Promise<boolean> {
    if (!(await this.has(fromChatId, sessionId))) return false;
    await this.db
      .insertInto('agent_transcript_entries')
      .columns(['chat_id', 'session_id', 'subpath', 'uuid', 'entry', 'created_at'])
      .expression((eb) =>
        eb
          .selectFrom('agent_transcript_entries')
          // A typed literal: Postgres cannot infer the type of a bare parameter in a select list.
          .select([sql<string>`cast(${toChatId} as text)`.as('chat_id'), 'session_id', 'subpath', 'uuid', 'entry', 'created_at'])
          .where('chat_id', '=', fromChatId)
          .where('session_id', '=', sessionId)
          .orderBy('id'),
      )
      .onConflict((oc) => oc.doNothing())
      .execute();
    return true;
  }
}
