import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventOf } from '../../src/protocol/ws.js';
import { createChat, startAgentServer, type AgentTestServer } from '../helpers/agent-server.js';
import { TestClient } from '../helpers/ws-client.js';
import { isConversationTurn } from '../../fake-model/script.js';
import type { MessagesRequest } from '../../fake-model/conversation.js';
import { conversationOf, fakeRequestsFor, getMessages, modelRequestsAnswering, nextError, onePixelPng, until } from './support.js';

/** The conversation-turn requests of a chat (not side requests such as a model probe). */
const conversationRequests = (server: AgentTestServer, chatId: string) =>
  fakeRequestsFor(server, chatId).filter((r) => isConversationTurn(r.body as MessagesRequest));

/** Sends `text` and waits for its answer. */
async function ask(client: TestClient, chatId: string, text: string, images?: { base64: string; media_type: string }[]) {
  const end = await client.waitForEnd(await client.chat(chatId, text, images), 60_000);
  expect(end.type).toBe('result');
}

/** Sends `retry`, waits for the new answer's end; returns its answer_retried event. */
async function retry(client: TestClient, chatId: string): Promise<EventOf<'answer_retried'>> {
  const from = client.events.length;
  client.send({ type: 'retry', chat_id: chatId });
  const started = (await client.waitFor((e) => e.type === 'answer_retried' && e.chat_id === chatId, { from })) as EventOf<'answer_retried'>;
  expect(await client.waitForEnd(started.query_id, 60_000)).toMatchObject({ type: 'result' });
  return started;
}

/** The conversation the model got the `n`-th time (1-based) it answered `text` in the chat. */
async function contextOfAnswer(server: AgentTestServer, chatId: string, text: string, n: number) {
  await until(() => modelRequestsAnswering(server, chatId, text).length >= n, `answer ${n} to ${text}`);
  return conversationOf(modelRequestsAnswering(server, chatId, text)[n - 1]!.body);
}

const turn = (text: string) => [
  { role: 'user', text },
  { role: 'assistant', text: `Echo: ${text}` },
];

describe('retry', () => {
  let server: AgentTestServer;
  beforeAll(async () => {
    server = await startAgentServer();
  });
  afterAll(async () => {
    await server?.close();
  });

  it('answers the last message again: the old answer is kept as superseded and the model no longer sees it', async () => {
    const chatId = await createChat(server.url);
    const client = await TestClient.connect(server.wsUrl);
    await ask(client, chatId, 'one');
    await ask(client, chatId, 'two');
    const before = await getMessages(server, chatId);
    const question = before.find((m) => m.content === 'two')!;
    const oldAnswer = before.at(-1)!;

    const retried = await retry(client, chatId);
    expect(retried).toMatchObject({ message_id: question.id, superseded_message_ids: [oldAnswer.id] });
    // No second user_message: the question is the stored one.
    expect(client.queryEvents(retried.query_id).filter((e) => e.type === 'user_message')).toEqual([]);
    expect(await contextOfAnswer(server, chatId, 'two', 2)).toEqual([...turn('one'), { role: 'user', text: 'two' }]);

    const after = await getMessages(server, chatId);
    expect(after.map((m) => [m.content, m.superseded ?? false])).toEqual([
      ['one', false],
      ['Echo: one', false],
      ['two', false],
      ['Echo: two', true],
      ['Echo: two', false],
    ]);
    expect(after[3]!.id).toBe(oldAnswer.id);
    // The history snapshot marks it too.
    const fresh = await TestClient.connect(server.wsUrl);
    fresh.send({ type: 'subscribe', chat_id: chatId });
    const history = (await fresh.waitFor((e) => e.type === 'history')) as EventOf<'history'>;
    expect(history.messages.find((m) => m.id === oldAnswer.id)?.superseded).toBe(true);
    await fresh.close();

    // The conversation goes on with the new answer only.
    await ask(client, chatId, 'three');
    expect(await contextOfAnswer(server, chatId, 'three', 1)).toEqual([...turn('one'), ...turn('two'), { role: 'user', text: 'three' }]);
    await client.close();
  }, 240_000);

  it('supersedes the tool calls of the replaced answer too', async () => {
    const chatId = await createChat(server.url);
    const client = await TestClient.connect(server.wsUrl);
    await ask(client, chatId, '/bash echo ran');
    await retry(client, chatId);
    const fresh = await TestClient.connect(server.wsUrl);
    fresh.send({ type: 'subscribe', chat_id: chatId });
    const tools = (await fresh.waitFor((e) => e.type === 'tool_history')) as EventOf<'tool_history'>;
    expect(tools.tool_uses.map((t) => [t.tool_name, t.result_content, t.superseded ?? false])).toEqual([
      ['Bash', 'ran', true],
      ['Bash', 'ran', false],
    ]);
    const first = await (await fetch(`${server.url}/api/chats/${chatId}/tool-uses/${tools.tool_uses[0]!.id}`)).json();
    expect(first).toMatchObject({ superseded: true });
    await fresh.close();
    await client.close();
  }, 240_000);

  it("retries a chat's first message (with its images) in a fresh context, and stops a running answer first", async () => {
    const chatId = await createChat(server.url);
    const client = await TestClient.connect(server.wsUrl);
    const png = { base64: onePixelPng().toString('base64'), media_type: 'image/png' };
    await ask(client, chatId, '/images', [png]);
    await retry(client, chatId);
    expect(await contextOfAnswer(server, chatId, '/images', 2)).toEqual([{ role: 'user', text: '[image]\n/images' }]);
    expect((await getMessages(server, chatId)).at(-1)).toMatchObject({
      content: `Saw 1 image(s): image/png ${onePixelPng().length} bytes`,
      status: 'complete',
    });

    const running = await client.chat(chatId, '/slow 40 50');
    await client.waitFor((e) => e.type === 'text_delta' && e.query_id === running);
    const retried = await retry(client, chatId);
    expect(await client.waitForEnd(running)).toMatchObject({ type: 'cancelled' });
    expect(client.events.findIndex((e) => e.type === 'cancelled' && e.query_id === running)).toBeLessThan(
      client.events.indexOf(retried),
    );
    // The stopped answer is superseded; the model's context has the first exchange and the question, no chunk of it.
    const context = await contextOfAnswer(server, chatId, '/slow 40 50', 2);
    expect(context.at(-1)).toEqual({ role: 'user', text: '/slow 40 50' });
    expect(JSON.stringify(context)).not.toContain('chunk');
    const messages = await getMessages(server, chatId);
    const slowAnswers = messages.filter((m) => m.content.startsWith('chunk1'));
    expect(slowAnswers.map((m) => [m.status, m.superseded ?? false])).toEqual([
      ['interrupted', true],
      ['complete', false],
    ]);
    await client.close();
  }, 240_000);

  it('in an imported chat, the question carries the imported conversation again, without the superseded answer', async () => {
    const chatId = await createChat(server.url);
    const client = await TestClient.connect(server.wsUrl);
    await ask(client, chatId, 'one');
    await ask(client, chatId, 'two');
    const exported = await (await fetch(`${server.url}/api/chats/${chatId}/export?format=json`)).json();
    const res = await fetch(`${server.url}/api/chats/import`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(exported),
    });
    expect(res.status).toBe(201);
    const importedId = ((await res.json()) as { id: string }).id;
    // The first message after the import carries the imported conversation; its answer starts the agent's session.
    await ask(client, importedId, 'three');

    // Retrying it starts before that session: the imported conversation has to reach the model again.
    const retried = await retry(client, importedId);
    expect(retried.superseded_message_ids).toHaveLength(1);
    await until(() => conversationRequests(server, importedId).length >= 2, 'the retried answer');
    const sent = conversationOf(conversationRequests(server, importedId).at(-1)!.body);
    expect(sent).toHaveLength(1);
    expect(sent[0]!.text).toContain('[user] one');
    expect(sent[0]!.text).toContain('[assistant] Echo: two');
    expect(sent[0]!.text).not.toContain('Echo: three');
    expect(sent[0]!.text.endsWith('three')).toBe(true);
    await client.close();
  }, 240_000);

  it('answers the question a fork ends with, from the context before it; a chat without messages has nothing to retry', async () => {
    const chatId = await createChat(server.url);
    const client = await TestClient.connect(server.wsUrl);
    await ask(client, chatId, 'alpha');
    await ask(client, chatId, 'beta');
    const beta = (await getMessages(server, chatId)).find((m) => m.content === 'beta')!;
    const res = await fetch(`${server.url}/api/chats/${chatId}/fork`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ message_id: beta.id }),
    });
    const forkId = ((await res.json()) as { id: string }).id;
    const retried = await retry(client, forkId);
    expect(retried.superseded_message_ids).toEqual([]);
    expect(await contextOfAnswer(server, forkId, 'beta', 1)).toEqual([...turn('alpha'), { role: 'user', text: 'beta' }]);
    expect((await getMessages(server, forkId)).map((m) => m.content)).toEqual(['alpha', 'Echo: alpha', 'beta', 'Echo: beta']);

    const empty = await createChat(server.url);
    const from = client.events.length;
    client.send({ type: 'retry', chat_id: empty });
    expect(await nextError(client, from, empty)).toMatchObject({ code: 'nothing_to_retry' });
    await client.close();
  }, 240_000);
});
