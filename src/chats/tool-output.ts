/**
 * Long tool outputs (a `cat` of a log, an MCP tool returning a document) are cut in the snapshots and live events
 * sent to clients, so one output cannot make a chat too big to open. The whole output stays stored and is served
 * by GET /api/chats/{id}/tool-uses/{tool_use_id}; the cut text says so at its end.
 */

export const toolUsePath = (chatId: string, toolUseId: string): string =>
  `/api/chats/${chatId}/tool-uses/${encodeURIComponent(toolUseId)}`;

export function truncationMarker(shownChars: number, totalChars: number, path: string): string {
  return `\n\n[output truncated: the first ${shownChars} of ${totalChars} characters; the whole output: GET ${path}]`;
}

/** `text` cut to `maxChars` with the marker appended, or unchanged when it fits. */
export function truncateToolOutput(
  text: string,
  maxChars: number,
  path: string,
): { text: string; truncated: boolean } {
  if (text.length <= maxChars) return { text, truncated: false };
  return { text: text.slice(0, maxChars) + truncationMarker(maxChars, text.length, path), truncated: true };
}
