import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Chat } from '../../src/protocol/chat.js';
import { createChat, startAgentServer, type AgentTestServer } from '../helpers/agent-server.js';
import { TestClient } from '../helpers/ws-client.js';
import { conversationOf, getJson, getMessages, modelRequestAnswering, until } from './support.js';

async function fork(server: AgentTestServer, chatId: string, body: unknown): Promise<{ status: number; body: Chat & { detail?: string } }> {
  const res = await fetch(`${server.url}/api/chats/${chatId}/fork`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Chat & { detail?: string } };
}

/** Sends `text`, waits for its answer, and returns the conversation the model was sent for it. */
async function ask(server: AgentTestServer, client: TestClient, chatId: string, text: string) {
  const end = await client.waitForEnd(await client.chat(chatId, text), 60_000);
  expect(end.type).toBe('result');
  await until(() => modelRequestAnswering(server, chatId, text) !== undefined, `the model request answering ${text}`);
  return conversationOf(modelRequestAnswering(server, chatId, text)!.body);
}

const turn = (text: string) => [
  { role: 'user', text },
  { role: 'assistant', text: `Echo: ${text}` },
];

describe('fork', () => {
  let server: AgentTestServer;
  beforeAll(async () => {
    server = await startAgentServer();
  });
  afterAll(async () => {
    await server?.close();
  });

  it("continues a new chat from exactly the forked answer: the model gets the conversation up to it, nothing after", async () => {
    const chatId = await createChat(server.url, 'Original');
    const client = await TestClient.connect(server.wsUrl);
    for (const text of ['one', 'two', 'three']) await ask(server, client, chatId, text);
    const original = await getMessages(server, chatId);
    const answerTwo = original.find((m) => m.role === 'assistant' && m.content === 'Echo: two')!;
    expect(answerTwo).toBeDefined();

    const forked = await fork(server, chatId, { message_id: answerTwo.id });
    expect(forked.status).toBe(201);
    expect(forked.body).toMatchObject({ title: 'Original', forked_from: chatId });
    expect(forked.body.id).not.toBe(chatId);
    const copied = await getMessages(server, forked.body.id);
    expect(copied.map((m) => [m.role, m.content])).toEqual([
      ['user', 'one'],
      ['assistant', 'Echo: one'],
      ['user', 'two'],
      ['assistant', 'Echo: two'],
    ]);
    expect(copied.every((m) => m.chat_id === forked.body.id && !original.some((o) => o.id === m.id))).toBe(true);

    expect(await ask(server, client, forked.body.id, 'four')).toEqual([...turn('one'), ...turn('two'), { role: 'user', text: 'four' }]);
    // The original goes on with its own context.
    expect(await ask(server, client, chatId, 'five')).toEqual([
      ...turn('one'),
      ...turn('two'),
      ...turn('three'),
      { role: 'user', text: 'five' },
    ]);

    // A fork of the fork resumes the fork's own session (its transcript travels with it).
    const answerFour = (await getMessages(server, forked.body.id)).find((m) => m.content === 'Echo: four')!;
    const again = await fork(server, forked.body.id, { message_id: answerFour.id });
    expect(again.status).toBe(201);
    expect(await ask(server, client, again.body.id, 'six')).toEqual([
      ...turn('one'),
      ...turn('two'),
      ...turn('four'),
      { role: 'user', text: 'six' },
    ]);
    await client.close();
  }, 240_000);

  it("at a question, holds it unanswered with the model's context ending at the answer before it", async () => {
    const chatId = await createChat(server.url);
    const client = await TestClient.connect(server.wsUrl);
    for (const text of ['alpha', 'beta']) await ask(server, client, chatId, text);
    const beta = (await getMessages(server, chatId)).find((m) => m.role === 'user' && m.content === 'beta')!;

    const forked = await fork(server, chatId, { message_id: beta.id });
    expect(forked.status).toBe(201);
    expect((await getMessages(server, forked.body.id)).map((m) => m.content)).toEqual(['alpha', 'Echo: alpha', 'beta']);
    expect(await ask(server, client, forked.body.id, 'gamma')).toEqual([...turn('alpha'), { role: 'user', text: 'gamma' }]);

    // The first question of a chat: an empty context.
    const alpha = (await getMessages(server, chatId)).find((m) => m.content === 'alpha')!;
    const fromStart = await fork(server, chatId, { message_id: alpha.id });
    expect(fromStart.body.sdk_session_id).toBeNull();
    expect(await ask(server, client, fromStart.body.id, 'delta')).toEqual([{ role: 'user', text: 'delta' }]);
    await client.close();
  }, 240_000);

  it('refuses unknown messages and bad bodies', async () => {
    const chatId = await createChat(server.url);
    const other = await createChat(server.url);
    const client = await TestClient.connect(server.wsUrl);
    await ask(server, client, other, 'elsewhere');
    const otherMessage = (await getMessages(server, other))[0]!;
    // A message of another chat is not a message of this one.
    expect((await fork(server, chatId, { message_id: otherMessage.id })).status).toBe(404);
    expect((await fork(server, chatId, { message_id: 'nope' })).body.detail).toContain('nope');
    expect((await fork(server, '3f1d2c4b-0000-4000-8000-000000000000', { message_id: otherMessage.id })).status).toBe(404);
    expect((await fork(server, chatId, {})).status).toBe(422);
    const { body: list } = await getJson<Chat[]>(`${server.url}/api/chats`);
    expect(list.filter((c) => c.forked_from === chatId)).toEqual([]);
    await client.close();
  }, 120_000);
});
