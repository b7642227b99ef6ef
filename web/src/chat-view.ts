import type { ChatMessage, RememberRule, ToolUseRecord } from '../../src/protocol/chat.js';
import type { EventOf, ServerEvent } from '../../src/protocol/ws.js';
import { itemTime, mergeItems, messageItems, shown, toolItem } from './stored-items.js';

/**
 * What the page shows of one chat, and how each server event changes it. Items are immutable: an event that
 * changes an item replaces it (and the array), so unchanged messages are skipped by the renderer.
 */
export type MessageStatus = ChatMessage['status'];

/**
 * An image of a user message: `src` is shown as it is (a `data:` URL of the bytes), or, with `stored`, it is the
 * service's image route, fetched with the API's credentials (an `<img src>` could not send the token).
 */
export interface ImageRef {
  src: string;
  stored?: true;
}

export type Item =
  | { kind: 'user'; key: string; content: string; images: ImageRef[]; timestamp: string }
  | { kind: 'assistant'; key: string; content: string; status: MessageStatus; queryId: string | null; timestamp: string }
  | {
      kind: 'tool';
      key: string;
      toolId: string;
      name: string;
      input: Record<string, unknown>;
      result: string | null;
      isError: boolean;
      running: boolean;
      timestamp: string;
    }
  | {
      kind: 'end';
      key: string;
      queryId: string;
      outcome: 'result' | 'cancelled' | 'error';
      success: boolean;
      cost: number | null;
      duration: number | null;
      error: string | null;
    }
  | { kind: 'notice'; key: string; text: string; code: string };

export interface PermissionPrompt {
  requestId: string;
  queryId: string;
  toolName: string;
  input: Record<string, unknown>;
  expiresAt: number;
  /** What "Allow for this chat" would allow from then on (absent from a server older than the field). */
  rememberRule?: RememberRule;
}

export interface ChatView {
  chatId: string;
  items: Item[];
  /** Got the snapshot (`history`) since the page subscribed. */
  loaded: boolean;
  hasMore: boolean;
  /** Id of the oldest message shown: the cursor for paging back. */
  oldestMessageId: string | null;
  /** Highest `seq` seen: sent back as `last_seq` on reconnect, and events at or below it are duplicates. */
  lastSeq: number | null;
  processing: boolean;
  queryId: string | null;
  prompts: PermissionPrompt[];
  /** Tool uses of the snapshot, kept to place them among older messages paged in later. */
  toolRecords: ToolUseRecord[];
}

export function emptyView(chatId: string): ChatView {
  return {
    chatId,
    items: [],
    loaded: false,
    hasMore: false,
    oldestMessageId: null,
    lastSeq: null,
    processing: false,
    queryId: null,
    prompts: [],
    toolRecords: [],
  };
}

/**
 * Events that happen once (not the snapshot ones): seen again after a replay, they are dropped. A snapshot's events
 * all carry the snapshot's `seq`, the open permission questions included (a subscriber joining while one is open
 * gets it after `processing_state`); a question seen twice is kept once, by its request id.
 */
const SNAPSHOT_TYPES = new Set(['history', 'tool_history', 'processing_state', 'permission_request']);

/** Images the user attached to a message this page sent, shown until the stored copy comes back in history. */
export interface SentImages {
  take(content: string): ImageRef[];
}

/** Applies one event of this chat to its view; returns a new view object when something changed. */
export function applyEvent(view: ChatView, e: ServerEvent, sent?: SentImages): ChatView {
  const seq = 'seq' in e && typeof e.seq === 'number' ? e.seq : null;
  if (seq !== null && view.lastSeq !== null && seq <= view.lastSeq && !SNAPSHOT_TYPES.has(e.type)) return view;
  const v: ChatView = { ...view, lastSeq: seq !== null ? Math.max(seq, view.lastSeq ?? seq) : view.lastSeq };

  switch (e.type) {
    case 'history': {
      v.items = e.messages.filter(shown).flatMap(messageItems);
      // The snapshot lists the questions open now; those answered meanwhile (e.g. while the socket was down) go.
      v.prompts = [];
      v.loaded = true;
      v.hasMore = e.has_more ?? false;
      v.oldestMessageId = e.messages[0]?.id ?? null;
      v.toolRecords = [];
      return v;
    }
    case 'tool_history': {
      v.toolRecords = e.tool_uses.filter(shown);
      // Messages with their answers' end lines (an end line stays right after the message it follows).
      const messages = v.items.filter((i) => i.kind === 'user' || i.kind === 'assistant' || i.kind === 'end');
      const tools = v.toolRecords.filter((u) => !v.hasMore || !messages[0] || u.timestamp >= itemTime(messages[0]));
      v.items = mergeItems(messages, tools.map(toolItem));
      return v;
    }
    case 'processing_state': {
      v.processing = e.is_processing;
      v.queryId = e.query_id;
      if (!e.is_processing) v.prompts = [];
      if (e.is_processing && e.query_id && e.streaming_state) {
        v.items = [
          ...v.items,
          {
            kind: 'assistant',
            key: `live:${e.query_id}:${v.items.length}`,
            content: e.streaming_state.text,
            status: 'streaming',
            queryId: e.query_id,
            timestamp: new Date().toISOString(),
          },
        ];
      }
      return v;
    }
    case 'user_message': {
      v.processing = true;
      v.queryId = e.query_id;
      v.items = [
        ...v.items,
        { kind: 'user', key: e.message_id, content: e.content, images: sent?.take(e.content) ?? [], timestamp: new Date().toISOString() },
      ];
      return v;
    }
    case 'answer_retried': {
      // The replaced answer goes from view (the service keeps it, superseded, and leaves it out of history): every
      // answer item after the question answered again (a retry answers the chat's last question), and the stored
      // messages it names wherever they are.
      const replaced = new Set(e.superseded_message_ids);
      const question = v.items.findIndex((it) => it.kind === 'user' && it.key === e.message_id);
      v.items = v.items.filter(
        (it, i) => !replaced.has(it.key) && !(question >= 0 && i > question && it.kind !== 'user' && it.kind !== 'notice'),
      );
      v.processing = true;
      v.queryId = e.query_id;
      return v;
    }
    case 'stream_start': {
      v.processing = true;
      v.queryId = e.query_id;
      v.items = [
        ...v.items,
        { kind: 'assistant', key: `live:${e.query_id}:${v.items.length}`, content: '', status: 'streaming', queryId: e.query_id, timestamp: new Date().toISOString() },
      ];
      return v;
    }
    case 'text_delta': {
      const i = lastIndex(v.items, (it) => it.kind === 'assistant' && it.status === 'streaming' && it.queryId === e.query_id);
      if (i < 0) {
        v.items = [
          ...v.items,
          { kind: 'assistant', key: `live:${e.query_id}:${v.items.length}`, content: e.delta, status: 'streaming', queryId: e.query_id, timestamp: new Date().toISOString() },
        ];
      } else {
        const it = v.items[i] as Extract<Item, { kind: 'assistant' }>;
        v.items = replaceAt(v.items, i, { ...it, content: it.content + e.delta });
      }
      return v;
    }
    case 'stream_end':
      v.items = settleStreaming(v.items, e.query_id, 'complete');
      return v;
    case 'assistant_message':
      v.items = [
        ...v.items,
        { kind: 'assistant', key: `msg:${e.query_id}:${v.items.length}`, content: e.content, status: 'complete', queryId: e.query_id, timestamp: new Date().toISOString() },
      ];
      return v;
    case 'tool_use': {
      const existing = v.items.findIndex((it) => it.kind === 'tool' && it.toolId === e.tool_id);
      const item: Item = {
        kind: 'tool',
        key: `tool:${e.tool_id}`,
        toolId: e.tool_id,
        name: e.tool_name,
        input: e.tool_input,
        result: null,
        isError: false,
        running: true,
        timestamp: new Date().toISOString(),
      };
      v.items = existing >= 0 ? replaceAt(v.items, existing, item) : [...v.items, item];
      return v;
    }
    case 'tool_result': {
      const i = v.items.findIndex((it) => it.kind === 'tool' && it.toolId === e.tool_id);
      if (i >= 0) {
        const it = v.items[i] as Extract<Item, { kind: 'tool' }>;
        v.items = replaceAt(v.items, i, { ...it, result: e.content, isError: e.is_error, running: false });
      }
      return v;
    }
    case 'result':
    case 'cancelled':
    case 'error': {
      const queryId = e.query_id;
      if (e.type === 'error' && !queryId) {
        v.items = [...v.items, { kind: 'notice', key: `err:${v.items.length}:${seq ?? Date.now()}`, text: e.error, code: e.code }];
        return v;
      }
      if (!queryId) return view;
      const status: MessageStatus = e.type === 'result' ? 'complete' : e.type === 'cancelled' ? 'interrupted' : 'error';
      v.items = settleStreaming(v.items, queryId, status).map((it) =>
        it.kind === 'tool' && it.running ? { ...it, running: false } : it,
      );
      // A stop right after a block ended (stream_end, then cancelled) still cut that answer short.
      const last = v.items.at(-1);
      if (e.type !== 'result' && last?.kind === 'assistant' && last.queryId === queryId && last.status === 'complete') {
        v.items[v.items.length - 1] = { ...last, status };
      }
      v.items.push({
        kind: 'end',
        key: `end:${queryId}`,
        queryId,
        outcome: e.type,
        success: e.type === 'result' ? e.success : false,
        cost: e.type === 'result' ? e.cost : null,
        duration: e.type === 'result' ? e.duration : null,
        error: e.type === 'error' ? e.error : null,
      });
      if (v.queryId === queryId) {
        v.processing = false;
        v.queryId = null;
      }
      v.prompts = v.prompts.filter((p) => p.queryId !== queryId);
      return v;
    }
    case 'permission_request': {
      if (v.prompts.some((p) => p.requestId === e.request_id)) return v;
      v.prompts = [
        ...v.prompts,
        {
          requestId: e.request_id,
          queryId: e.query_id,
          toolName: e.tool_name,
          input: e.tool_input,
          expiresAt: Date.parse(e.expires_at),
          ...(e.remember_rule ? { rememberRule: e.remember_rule } : {}),
        },
      ];
      return v;
    }
    case 'permission_resolved':
      v.prompts = v.prompts.filter((p) => p.requestId !== e.request_id);
      return v;
    case 'history_cleared':
      v.items = [];
      v.hasMore = false;
      v.oldestMessageId = null;
      return v;
    case 'notice':
      v.items = [...v.items, { kind: 'notice', key: `notice:${e.seq}`, text: e.message, code: e.code }];
      return v;
    default:
      return v;
  }
}

function settleStreaming(items: Item[], queryId: string, status: MessageStatus): Item[] {
  return items.map((it) => (it.kind === 'assistant' && it.status === 'streaming' && it.queryId === queryId ? { ...it, status } : it));
}

function lastIndex<T>(arr: T[], pred: (x: T) => boolean): number {
  for (let i = arr.length - 1; i >= 0; i--) if (pred(arr[i]!)) return i;
  return -1;
}

function replaceAt<T>(arr: T[], i: number, x: T): T[] {
  const copy = arr.slice();
  copy[i] = x;
  return copy;
}

export type ChatEvent = Exclude<ServerEvent, EventOf<'connected'>>;
