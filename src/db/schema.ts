import type { ColumnType, Generated, Selectable } from 'kysely';

/**
 * Table types of the store. Times are ISO-8601 strings; booleans are 0/1 integers (portable to Postgres via the
 * repositories, which convert at the edge). `position` orders messages and tool uses of a chat without relying on
 * timestamps: it comes from `chats.last_position`, incremented atomically.
 */
export interface ChatsTable {
  id: string;
  title: string;
  created_at: string;
  updated_at: string;
  sdk_session_id: string | null;
  last_position: ColumnType<number, number | undefined, number>;
  /** The owning user; NULL for chats of local mode (no users) or AUTH_DISABLED. Deleting the user deletes them. */
  user_id: ColumnType<string | null, string | null | undefined, string | null>;
  /** Where the title came from: `default` (New Chat), `message` (the first message), `model`, `user` (never replaced). */
  title_source: ColumnType<TitleSource, TitleSource | undefined, TitleSource>;
  /** The chat's own agent settings (JSON of ChatSettings), within what the operator allows; NULL: none. */
  settings: ColumnType<string | null, string | null | undefined, string | null>;
  /** SDK message uuid to resume `sdk_session_id` at (forking it) on the agent's next start: a fork or a retry. */
  resume_at: ColumnType<string | null, string | null | undefined, string | null>;
  /** The chat this one was forked from, if any (it may since have been deleted). */
  forked_from: ColumnType<string | null, string | null | undefined, string | null>;
  /**
   * Set while an imported chat's transcript is due to reach the model (holding it as of the import, fork or retry
   * that set it, for inspection): the next message to reach the agent carries the conversation stored before it, rebuilt then
   * (chats/import-context.ts), and clears it; the agent's session holds it from there on. NULL otherwise.
   */
  import_context: ColumnType<string | null, string | null | undefined, string | null>;
}

export type TitleSource = 'default' | 'message' | 'model' | 'user';

/** `streaming`: an answer block still being written (checkpointed as it streams, so a crash keeps it). */
export type MessageStatus = 'streaming' | 'complete' | 'interrupted' | 'error';

export interface MessagesTable {
  id: string;
  chat_id: string;
  position: number;
  role: 'user' | 'assistant';
  content: string;
  status: MessageStatus;
  query_id: string | null;
  created_at: string;
  /** 1: an answer replaced by a retry; kept, shown on request, never sent to the model again. */
  superseded: ColumnType<number, number | undefined, number>;
}

export interface MessageImagesTable {
  id: string;
  message_id: string;
  ordinal: number;
  media_type: string;
  data: Buffer;
}

export interface ToolUsesTable {
  id: string;
  chat_id: string;
  query_id: string | null;
  position: number;
  tool_use_id: string;
  tool_name: string;
  tool_input: string;
  result_content: string | null;
  is_error: ColumnType<number, number | undefined, number>;
  created_at: string;
  completed_at: string | null;
  /** 1: a call of an answer replaced by a retry (like MessagesTable.superseded). */
  superseded: ColumnType<number, number | undefined, number>;
}

export type QueryStatus = 'running' | 'complete' | 'cancelled' | 'error';

/** One user message and everything the agent did for it, with what it cost. */
export interface QueriesTable {
  id: string;
  chat_id: string;
  status: QueryStatus;
  cost_usd: number | null;
  duration_ms: number | null;
  error: string | null;
  started_at: string;
  ended_at: string | null;
  /** The user message this query answers (several queries answer one message after retries). */
  user_message_id: ColumnType<string | null, string | null | undefined, string | null>;
  /** The SDK session the answer was given in, and the uuid of its last entry there: where a fork or retry resumes. */
  sdk_session_id: ColumnType<string | null, string | null | undefined, string | null>;
  sdk_tail_uuid: ColumnType<string | null, string | null | undefined, string | null>;
  /** The node that runs (ran) the query, NODE_ID, and which run of it (a new id at every start); NULL before 008. */
  node_id: ColumnType<string | null, string | null | undefined, string | null>;
  node_run: ColumnType<string | null, string | null | undefined, string | null>;
  /** The client's id of the chat message that started the query (unique per chat; NULL without one). */
  client_id: ColumnType<string | null, string | null | undefined, string | null>;
}

/**
 * What each answer cost, per turn (never the SDK's running totals). Not tied to chats by a foreign key: deleting a
 * chat keeps what it spent, so the daily budget cannot be reset by deleting chats.
 */
export interface UsageTable {
  id: string;
  query_id: string | null;
  chat_id: string;
  user_id: string | null;
  model: string | null;
  input_tokens: number;
  output_tokens: number;
  cache_read_input_tokens: number;
  cache_creation_input_tokens: number;
  cost_usd: number;
  created_at: string;
  /** 1: carried in by an import (spent elsewhere): exported with the chat, left out of budgets and usage reports. */
  imported: ColumnType<number, number | undefined, number>;
}

/** Someone who may use the service once authentication is on; `name` is unique. */
export interface UsersTable {
  id: string;
  name: string;
  created_at: string;
}

/**
 * A user's API token. Only its SHA-256 (hex) is stored; `prefix` (its first 8 characters) identifies it in
 * listings. A revoked token keeps its row (revoked_at set) so listings show what was revoked and when.
 */
export interface ApiTokensTable {
  id: string;
  user_id: string;
  name: string;
  token_hash: string;
  prefix: string;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
}

/** Service-wide settings written by the CLI and read by the service (e.g. `auth_enabled`). */
export interface SettingsTable {
  key: string;
  value: string;
}

/** A chat's remembered approval (agent/permission-rules.ts); `kind` is one of PERMISSION_RULE_KINDS. */
export interface PermissionRulesTable {
  id: string;
  chat_id: string;
  tool_name: string;
  kind: string;
  pattern: string;
  description: string;
  created_at: string;
}

/**
 * One line of an agent session's transcript, as the agent SDK mirrors it (SESSION_STORE=database). `subpath` is ''
 * for the session's main transcript, else a subagent's; `entry` is the line's JSON, passed through untouched.
 */
export interface AgentTranscriptEntriesTable {
  id: Generated<number | string>;
  chat_id: string;
  session_id: string;
  subpath: ColumnType<string, string | undefined, string>;
  uuid: string | null;
  entry: string;
  created_at: string;
}

export interface Database {
  chats: ChatsTable;
  messages: MessagesTable;
  message_images: MessageImagesTable;
  tool_uses: ToolUsesTable;
  queries: QueriesTable;
  users: UsersTable;
  api_tokens: ApiTokensTable;
  settings: SettingsTable;
  usage: UsageTable;
  permission_rules: PermissionRulesTable;
  agent_transcript_entries: AgentTranscriptEntriesTable;
}

export type ChatRow = Selectable<ChatsTable>;
export type MessageRow = Selectable<MessagesTable>;
export type MessageImageRow = Selectable<MessageImagesTable>;
export type ToolUseRow = Selectable<ToolUsesTable>;
export type UserRow = Selectable<UsersTable>;
export type ApiTokenRow = Selectable<ApiTokensTable>;
