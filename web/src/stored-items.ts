import type { ChatMessage, HistoryMessage, ImageRef as WireImageRef, StoredImage, ToolUseRecord } from '../../src/protocol/chat.js';
import type { ChatView, ImageRef, Item } from './chat-view.js';

/**
 * Items of what the service stored (a `history` snapshot, `tool_history`, REST pages of older messages): messages
 * with their answers' end lines, tool calls placed among them by time, superseded answers left out.
 */

/** By reference (this page declares `image_urls`: a long chat of images opens with a small snapshot), or inline. */
function imageSrc(img: StoredImage | WireImageRef): ImageRef {
  return 'url' in img ? { src: img.url, stored: true } : { src: `data:${img.mimeType};base64,${img.base64}` };
}

export function messageItem(m: ChatMessage | HistoryMessage): Item {
  return m.role === 'user'
    ? { kind: 'user', key: m.id, content: m.content, images: (m.images ?? []).map(imageSrc), timestamp: m.timestamp }
    : { kind: 'assistant', key: m.id, content: m.content, status: m.status, queryId: m.query_id ?? null, timestamp: m.timestamp };
}

/**
 * A stored message, followed by its answer's end line (cost, duration, or how it ended) when it is the answer's
 * last message: the same line a live `result`, `cancelled` or `error` adds, with the same key.
 */
export function messageItems(m: ChatMessage | HistoryMessage): Item[] {
  const item = messageItem(m);
  const end = m.answer_end;
  if (!end || !m.query_id) return [item];
  const outcome = end.status === 'complete' ? 'result' : end.status === 'cancelled' ? 'cancelled' : 'error';
  return [
    item,
    {
      kind: 'end',
      key: `end:${m.query_id}`,
      queryId: m.query_id,
      outcome,
      success: end.status === 'complete',
      cost: end.cost,
      duration: end.duration,
      error: end.error,
    },
  ];
}

export function toolItem(r: ToolUseRecord): Item {
  return {
    kind: 'tool',
    key: `tool:${r.id}`,
    toolId: r.id,
    name: r.tool_name,
    input: r.tool_input,
    result: r.result_content,
    isError: r.is_error,
    running: false,
    timestamp: r.timestamp,
  };
}

/** Stored messages and stored tool uses, in time order (a tool use sits between the texts around it). */
export function mergeByTime(messages: ChatMessage[], tools: ToolUseRecord[]): Item[] {
  const out: Item[] = [];
  let t = 0;
  const sortedTools = [...tools].sort((a, b) => a.timestamp.localeCompare(b.timestamp));
  for (const m of messages) {
    while (t < sortedTools.length && sortedTools[t]!.timestamp < m.timestamp) out.push(toolItem(sortedTools[t++]!));
    out.push(...messageItems(m));
  }
  while (t < sortedTools.length) out.push(toolItem(sortedTools[t++]!));
  return out;
}

/** Older messages paged in over REST go in front, with the stored tool uses of their time span. */
export function prependOlder(view: ChatView, page: ChatMessage[], hasMore: boolean): ChatView {
  if (page.length === 0) return { ...view, hasMore };
  const oldestMessageId = page[0]!.id;
  const messages = page.filter(shown);
  if (messages.length === 0) return { ...view, hasMore, oldestMessageId };
  const firstShown = view.items.find((i) => i.kind === 'user' || i.kind === 'assistant');
  const from = hasMore ? page[0]!.timestamp : '';
  const to = firstShown ? itemTime(firstShown) : '\uffff';
  const tools = view.toolRecords.filter((u) => u.timestamp >= from && u.timestamp < to);
  const shownToolIds = new Set(view.items.flatMap((i) => (i.kind === 'tool' ? [i.toolId] : [])));
  const older = mergeByTime(messages, tools.filter((u) => !shownToolIds.has(u.id)));
  return { ...view, items: [...older, ...view.items], hasMore, oldestMessageId };
}

/** Answers replaced by a `retry` (and their tool calls) are kept by the service, not shown. */
export function shown(m: { superseded?: boolean | undefined }): boolean {
  return m.superseded !== true;
}

export function itemTime(i: Item): string {
  return 'timestamp' in i ? i.timestamp : '';
}

export function mergeItems(messages: Item[], tools: Item[]): Item[] {
  const out: Item[] = [];
  let t = 0;
  for (const m of messages) {
    while (t < tools.length && itemTime(tools[t]!) < itemTime(m)) out.push(tools[t++]!);
    out.push(m);
  }
  while (t < tools.length) out.push(tools[t++]!);
  return out;
}
