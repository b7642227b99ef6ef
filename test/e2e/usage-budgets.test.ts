import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Chat } from '../../src/protocol/chat.js';
import type { UsageReport } from '../../src/protocol/rest.js';
import type { EventOf } from '../../src/protocol/ws.js';
import { createChat, startAgentServer, type AgentTestServer } from '../helpers/agent-server.js';
import { TestClient } from '../helpers/ws-client.js';
import { getJson, getMessages, nextError } from './support.js';

describe('usage', () => {
  let server: AgentTestServer;
  beforeAll(async () => {
    server = await startAgentServer();
  });
  afterAll(async () => {
    await server?.close();
  });

  it("stores each answer's own tokens and cost, totals them per chat, and reports the caller's usage", async () => {
    const chatId = await createChat(server.url);
    const other = await createChat(server.url);
    const client = await TestClient.connect(server.wsUrl);
    const costs: number[] = [];
    for (const [chat, text] of [[chatId, 'first question'], [chatId, 'second question'], [other, 'elsewhere']] as const) {
      const end = (await client.waitForEnd(await client.chat(chat, text))) as EventOf<'result'>;
      expect(end.type).toBe('result');
      costs.push(end.cost);
    }
    expect(costs.every((c) => c > 0)).toBe(true);

    const { body: chat } = await getJson<Chat>(`${server.url}/api/chats/${chatId}`);
    // Per-turn figures: the SDK's running total would make the sum larger than the two answers' own costs.
    expect(chat.usage!.queries).toBe(2);
    expect(chat.usage!.cost_usd).toBeCloseTo(costs[0]! + costs[1]!, 10);
    expect(chat.usage!.input_tokens).toBeGreaterThan(0);
    expect(chat.usage!.output_tokens).toBeGreaterThan(0);

    const byChat = (await getJson<UsageReport>(`${server.url}/api/usage?group_by=chat`)).body;
    expect(byChat.groups.find((g) => g.key === chatId)).toMatchObject({ queries: 2 });
    expect(byChat.groups.find((g) => g.key === other)).toMatchObject({ queries: 1 });
    expect(byChat.total.cost_usd).toBeCloseTo(costs.reduce((a, b) => a + b, 0), 10);

    const today = new Date().toISOString().slice(0, 10);
    const byDay = (await getJson<UsageReport>(`${server.url}/api/usage?group_by=day&from=${today}`)).body;
    expect(byDay.groups).toEqual([expect.objectContaining({ key: today, queries: 3 })]);
    const future = (await getJson<UsageReport>(`${server.url}/api/usage?from=2999-01-01`)).body;
    expect(future.groups).toEqual([]);
    expect((await fetch(`${server.url}/api/usage?from=yesterday`)).status).toBe(422);

    // Deleting a chat keeps what it spent in the caller's usage (a budget cannot be reset that way).
    await fetch(`${server.url}/api/chats/${other}`, { method: 'DELETE' });
    expect((await getJson<UsageReport>(`${server.url}/api/usage`)).body.total.queries).toBe(3);
    await client.close();
  }, 120_000);
});

describe('budgets', () => {
  let perMessage: AgentTestServer;
  let perDay: AgentTestServer;
  beforeAll(async () => {
    // Far below what one model call of the fake costs: the first call already exceeds it.
    [perMessage, perDay] = await Promise.all([
      startAgentServer({ MAX_COST_PER_MESSAGE_USD: '0.000001' }),
      startAgentServer({ MAX_COST_PER_USER_PER_DAY_USD: '0.000001' }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([perMessage?.close(), perDay?.close()]);
  });

  it('ends an answer that exceeds MAX_COST_PER_MESSAGE_USD mid-way with budget_exceeded, losing nothing', async () => {
    const chatId = await createChat(perMessage.url);
    const client = await TestClient.connect(perMessage.wsUrl);
    const queryId = await client.chat(chatId, '/bash echo spent');
    const end = await client.waitForEnd(queryId);
    expect(end).toMatchObject({ type: 'error', code: 'budget_exceeded' });
    expect((end as EventOf<'error'>).error).toContain('MAX_COST_PER_MESSAGE_USD');
    // Mid-answer: the model's first call (the tool call) happened, the follow-up call did not.
    expect(client.queryEvents(queryId).some((e) => e.type === 'tool_use')).toBe(true);
    const messages = await getMessages(perMessage, chatId);
    expect(messages[0]).toMatchObject({ role: 'user', content: '/bash echo spent', status: 'complete' });
    expect(messages.at(-1)).toMatchObject({ role: 'assistant', status: 'error' });
    expect(messages.at(-1)!.content).toContain('spending limit');
    const { body: chat } = await getJson<Chat>(`${perMessage.url}/api/chats/${chatId}`);
    expect(chat.usage!.cost_usd).toBeGreaterThan(0);

    // Each message has its own budget: the next one runs (and is held to its own limit) too.
    const next = await client.chat(chatId, 'hello again');
    expect(await client.waitForEnd(next)).toMatchObject({ type: expect.stringMatching(/^(result|error)$/) });
    await client.close();
  }, 120_000);

  it('refuses a message once the day budget is spent, before storing anything', async () => {
    const chatId = await createChat(perDay.url);
    const client = await TestClient.connect(perDay.wsUrl);
    const first = await client.chat(chatId, '/bash echo today');
    expect(await client.waitForEnd(first)).toMatchObject({ type: 'error', code: 'budget_exceeded' });

    const from = client.events.length;
    client.send({ type: 'chat', chat_id: chatId, content: 'one more' });
    const refused = await nextError(client, from, chatId);
    expect(refused).toMatchObject({ code: 'budget_exceeded' });
    expect(refused.query_id).toBeUndefined();
    expect(refused.error).toContain('MAX_COST_PER_USER_PER_DAY_USD');
    expect((await getMessages(perDay, chatId)).some((m) => m.content === 'one more')).toBe(false);
    await client.close();
  }, 120_000);
});
