// End-to-end: the model API failing the way real outages do, through the real service, SDK and CLI against the
// fake model's fault scripts: a 529/429 storm with retry-after, a stream that stalls mid-answer past
// AGENT_API_TIMEOUT_MS, malformed SSE, a connection cut mid-stream. Every query ends exactly once, with a readable
// error within the documented time (README "Reliability"), what streamed before the fault is stored, and the chat
// answers again once the fault is over.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventOf } from '../../src/protocol/ws.js';
import { createChat, startAgentServer, type AgentTestServer } from '../helpers/agent-server.js';
import { TestClient } from '../helpers/ws-client.js';
import { expectOneTerminalLast, getMessages, subscribe } from './support.js';

const API_TIMEOUT_MS = 2_000;
/** The service's stall limit: AGENT_API_TIMEOUT_MS plus its 5 s grace (src/app.ts). */
const STALL_LIMIT_MS = API_TIMEOUT_MS + 5_000;

describe('model faults in storms', () => {
  let server: AgentTestServer;
  let client: TestClient;
  beforeAll(async () => {
    server = await startAgentServer({ AGENT_MAX_RETRIES: '1', AGENT_API_TIMEOUT_MS: String(API_TIMEOUT_MS) });
    client = await TestClient.connect(server.wsUrl);
  });
  afterAll(async () => {
    await client?.close();
    await server?.close();
  });

  const ask = async (chatId: string, content: string) => {
    const started = Date.now();
    const q = await client.chat(chatId, content);
    const end = await client.waitForEnd(q, 60_000);
    return { q, end, ms: Date.now() - started };
  };

  it('a stream that stalls mid-answer ends with one readable error after the stall limit; the partial text is kept; the chat answers again', { timeout: 90_000 }, async () => {
    const chatId = await createChat(server.url);
    await subscribe(client, chatId);
    const { q, end, ms } = await ask(chatId, '/stall 2');
    expect(end.type).toBe('error');
    expect((end as EventOf<'error'>).error).toMatch(/stopped answering/);
    expectOneTerminalLast(client, q);
    expect(ms).toBeGreaterThanOrEqual(STALL_LIMIT_MS - 500);
    expect(ms).toBeLessThan(STALL_LIMIT_MS + 20_000);
    expect(client.streamedText(q)).toBe('part1 part2 ');
    const stored = (await getMessages(server, chatId)).map((m) => [m.role, m.content, m.status]);
    expect(stored).toEqual([
      ['user', '/stall 2', 'complete'],
      ['assistant', 'part1 part2 ', 'interrupted'],
      ['assistant', expect.stringMatching(/stopped answering/), 'error'],
    ]);
    const again = await ask(chatId, 'still there');
    expect(again.end.type).toBe('result');
    expect(client.streamedText(again.q)).toContain('Echo: still there');
  });

  it('a 529 storm with retry-after over several chats: each query ends once with a readable error; after the storm they answer', { timeout: 120_000 }, async () => {
    const chats = await Promise.all([1, 2, 3].map(() => createChat(server.url)));
    // Agents up first (a cold start under load can outlast a short storm).
    for (const chatId of chats) expect((await ask(chatId, 'before the storm')).end.type).toBe('result');
    server.fake.storm({ forMs: 6_000, status: 529, retryAfterS: 1 });
    const results = await Promise.all(chats.map((chatId, i) => ask(chatId, `storm ${i}`)));
    for (const { q, end, ms } of results) {
      expectOneTerminalLast(client, q);
      expect(end.type).toBe('error');
      expect((end as EventOf<'error'>).error).toMatch(/529|overloaded/i);
      // One try and one retry (retry-after 1 s): well within (AGENT_MAX_RETRIES + 1) × AGENT_API_TIMEOUT_MS + waits.
      expect(ms).toBeLessThan(30_000);
    }
    await new Promise((r) => setTimeout(r, 6_000));
    for (const chatId of chats) {
      const { end } = await ask(chatId, 'after the storm');
      expect(end.type).toBe('result');
    }
  });

  it('429 with retry-after: the CLI waits as told, then the query ends with one readable error', { timeout: 90_000 }, async () => {
    const chatId = await createChat(server.url);
    const { q, end, ms } = await ask(chatId, '/overloaded 429 2');
    expectOneTerminalLast(client, q);
    expect(end.type).toBe('error');
    expect((end as EventOf<'error'>).error).toMatch(/429/);
    expect(ms).toBeGreaterThanOrEqual(2_000);
    expect(ms).toBeLessThan(30_000);
  });

  for (const [directive, why] of [
    ['/malformed 2', /malformed|invalid|JSON|parse/i],
    ['/disconnect 2', /ECONNRESET|Connection|socket|terminated/i],
  ] as const) {
    it(`${directive}: one readable error, nothing left streaming, the chat is not wedged`, { timeout: 90_000 }, async () => {
      const chatId = await createChat(server.url);
      const { q, end, ms } = await ask(chatId, directive);
      expectOneTerminalLast(client, q);
      expect(end.type).toBe('error');
      expect((end as EventOf<'error'>).error).toMatch(why);
      expect(ms).toBeLessThan(30_000);
      const stored = await getMessages(server, chatId);
      expect(stored.filter((m) => m.status === 'streaming')).toEqual([]);
      // The next message reaches the model and ends once (the CLI merges it into the failed turn, and the fake
      // then replays the directive: see chat-errors.test.ts).
      const again = await ask(chatId, 'and now');
      expectOneTerminalLast(client, again.q);
    });
  }
});
