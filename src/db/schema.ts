import type { ColumnType, Selectable } from 'kysely';

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
}

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

export interface Database {
  chats: ChatsTable;
  messages: MessagesTable;
  message_images: MessageImagesTable;
  tool_uses: ToolUsesTable;
  queries: QueriesTable;
  users: UsersTable;
  api_tokens: ApiTokensTable;
  settings: SettingsTable;
}

export type ChatRow = Selectable<ChatsTable>;
export type MessageRow = Selectable<MessagesTable>;
export type MessageImageRow = Selectable<MessageImagesTable>;
export type ToolUseRow = Selectable<ToolUsesTable>;
export type UserRow = Selectable<UsersTable>;
export type ApiTokenRow = Selectable<ApiTokensTable>;
