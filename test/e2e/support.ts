// Shared helpers of the end-to-end chat tests (real service, real SDK + CLI, scripted fake model).
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import type { ChatMessage, ToolUseRecord } from '../../src/protocol/chat.js';
import { TERMINAL_EVENT_TYPES, type EventOf, type ServerEvent } from '../../src/protocol/ws.js';
import { blocksOf, lastUserMessage, userTurns, type ContentBlock, type MessagesRequest } from '../../fake-model/conversation.js';
import { isConversationTurn } from '../../fake-model/script.js';
import type { AgentTestServer } from '../helpers/agent-server.js';
import { TestClient } from '../helpers/ws-client.js';

export type StoredMessage = ChatMessage;

export const TERMINAL = TERMINAL_EVENT_TYPES;

export function isTerminal(e: ServerEvent): boolean {
  return (TERMINAL as readonly string[]).includes(e.type);
}

/** Terminal events (result / cancelled / error) of one query. */
export function terminalsOf(client: TestClient, queryId: string): ServerEvent[] {
  return client.queryEvents(queryId).filter(isTerminal);
}

/** Asserts that a query got exactly one terminal event and nothing of it after that event. */
export function expectOneTerminalLast(client: TestClient, queryId: string): ServerEvent {
  const events = client.queryEvents(queryId);
  const terminals = events.filter(isTerminal);
  expect(terminals, `terminal events of ${queryId}`).toHaveLength(1);
  expect(events.at(-1), 'the terminal event is the last event of its query').toBe(terminals[0]);
  return terminals[0]!;
}

/** Text deltas of one query, in arrival order. */
export function deltasOf(client: TestClient, queryId: string): string[] {
  return client
    .queryEvents(queryId)
    .filter((e): e is EventOf<'text_delta'> => e.type === 'text_delta')
    .map((e) => e.delta);
}

export async function getJson<T>(url: string): Promise<{ status: number; body: T }> {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as T };
}

export async function getMessages(server: { url: string }, chatId: string): Promise<StoredMessage[]> {
  const { status, body } = await getJson<StoredMessage[]>(`${server.url}/api/chats/${chatId}/messages`);
  expect(status).toBe(200);
  return body;
}

export interface Snapshot {
  client: TestClient;
  history: EventOf<'history'>;
  toolHistory: EventOf<'tool_history'>;
  processingState: EventOf<'processing_state'>;
}

/** Subscribes `client` to a chat and returns the three snapshot events the subscribe answers with. */
export async function subscribe(client: TestClient, chatId: string): Promise<Omit<Snapshot, 'client'>> {
  const from = client.events.length;
  client.send({ type: 'subscribe', chat_id: chatId });
  const processingState = (await client.waitFor((e) => e.type === 'processing_state' && e.chat_id === chatId, {
    from,
  })) as EventOf<'processing_state'>;
  const after = client.events.slice(from);
  const history = after.find((e) => e.type === 'history' && e.chat_id === chatId) as EventOf<'history'>;
  const toolHistory = after.find((e) => e.type === 'tool_history' && e.chat_id === chatId) as EventOf<'tool_history'>;
  expect(history).toBeDefined();
  expect(toolHistory).toBeDefined();
  return { history, toolHistory, processingState };
}

/** A new socket subscribed to a chat: what a client that (re)connects sees first. */
export async function freshSubscribe(server: { wsUrl: string }, chatId: string): Promise<Snapshot> {
  const client = await TestClient.connect(server.wsUrl);
  return { client, ...(await subscribe(client, chatId)) };
}

/** Waits for an error event after `from` (optionally of a chat), e.g. the answer to a bad frame. */
export async function nextError(client: TestClient, from: number, chatId?: string): Promise<EventOf<'error'>> {
  return (await client.waitFor((e) => e.type === 'error' && (chatId === undefined || e.chat_id === chatId), {
    from,
  })) as EventOf<'error'>;
}

/** Requests the fake model got for one chat (its workspace path, which contains the chat id, is in every turn). */
export function fakeRequestsFor(server: AgentTestServer, chatId: string) {
  return server.fake.requests.filter((r) => r.path === '/v1/messages' && JSON.stringify(r.body ?? '').includes(chatId));
}

/** PIDs of processes whose working directory is `dir` (or was: a removed folder reads as "<dir> (deleted)"). */
export function processesWithCwd(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let cwd: string;
    try {
      cwd = fs.readlinkSync(path.join('/proc', entry, 'cwd'));
    } catch {
      continue; // gone, or not ours to read
    }
    if (cwd === dir || cwd === `${dir} (deleted)` || cwd.startsWith(`${dir}/`)) pids.push(Number(entry));
  }
  return pids;
}

/** Polls a condition (never a timed assertion: fails only when the test's own deadline passes). */
export async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(50);
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The smallest valid PNG: 1x1 pixel. */
export function onePixelPng(): Buffer {
  return Buffer.from(
    'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==',
    'base64',
  );
}

export type { ToolUseRecord };

/** Runs `/bash COMMAND` in a chat on a fresh socket; resolves with the tool's result once the query ended. */
export async function runBash(server: AgentTestServer, chatId: string, command: string): Promise<EventOf<'tool_result'>> {
  const client = await TestClient.connect(server.wsUrl);
  const queryId = await client.chat(chatId, `/bash ${command}`);
  const result = (await client.waitFor((e) => e.type === 'tool_result' && e.query_id === queryId)) as EventOf<'tool_result'>;
  await client.waitForEnd(queryId);
  await client.close();
  return result;
}

/**
 * The conversation a model request carries, as the model reads it: each user message's typed text (CLI reminders
 * left out; tool results as `[tool_result]`) and each assistant message's text. What a fork or a retry leaves in
 * the model's context is checked against this.
 */
export function conversationOf(body: unknown): { role: string; text: string }[] {
  const request = body as MessagesRequest;
  return (request.messages ?? [])
    .filter((m) => m.role === 'user' || m.role === 'assistant')
    .map((m) => {
      if (m.role === 'assistant') {
        const text = blocksOf(m)
          .map((b) => (b.type === 'text' ? String(b.text) : `[${b.type}]`))
          .join('');
        return { role: 'assistant', text };
      }
      const typed = userTurns(m)
        .map((turn) => typedText(turn))
        .filter((t) => t.length > 0);
      const results = blocksOf(m).filter((b) => b.type === 'tool_result').map(() => '[tool_result]');
      return { role: 'user', text: [...results, ...typed].join('\n') };
    })
    .filter((m) => m.text.length > 0);
}

/**
 * What the user sent in one turn: text blocks and `[image]` for images, without the note the CLI adds after an
 * image (`[Image: source: <path>]`).
 */
function typedText(turn: ContentBlock[]): string {
  return turn
    .filter((b) => !(b.type === 'text' && String(b.text).startsWith('[Image: source:')))
    .map((b) => (b.type === 'text' ? String(b.text) : `[${b.type}]`))
    .join('\n')
    .trim();
}

/** The conversation-turn request (not a side request) of a chat that answers the user text `text`. */
export function modelRequestAnswering(server: AgentTestServer, chatId: string, text: string) {
  return modelRequestsAnswering(server, chatId, text)[0];
}

/** Every conversation-turn request of a chat that answered the user text `text` (a retry asks again), in order. */
export function modelRequestsAnswering(server: AgentTestServer, chatId: string, text: string) {
  return fakeRequestsFor(server, chatId).filter((r) => {
    const body = r.body as MessagesRequest;
    const turn = userTurns(lastUserMessage(body)).at(-1) ?? [];
    return isConversationTurn(body) && typedText(turn.filter((b) => b.type === 'text')) === text;
  });
}

/** A chat export with what must differ between two copies of one conversation removed: ids and dates. */
export function withoutIdsAndDates(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutIdsAndDates);
  if (value === null || typeof value !== 'object') return value;
  const dropped = new Set(['id', 'query_id', 'exported_at', 'created_at', 'updated_at', 'started_at', 'ended_at', 'completed_at']);
  return Object.fromEntries(
    Object.entries(value)
      .filter(([key]) => !dropped.has(key))
      .map(([key, v]) => [key, withoutIdsAndDates(v)]),
  );
}
