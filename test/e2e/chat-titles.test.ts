import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Chat } from '../../src/protocol/chat.js';
import type { EventOf, ServerEvent } from '../../src/protocol/ws.js';
import { createChat, startAgentServer, type AgentTestServer } from '../helpers/agent-server.js';
import { TestClient } from '../helpers/ws-client.js';
import { getJson, sleep, until } from './support.js';

const updatesOf = (client: TestClient, chatId: string) =>
  client.events.filter((e): e is EventOf<'chat_updated'> => e.type === 'chat_updated' && e.chat_id === chatId);

async function createUntitled(url: string): Promise<Chat> {
  const res = await fetch(`${url}/api/chats`, { method: 'POST' });
  expect(res.status).toBe(201);
  return (await res.json()) as Chat;
}

describe('chat titles', () => {
  let server: AgentTestServer;
  beforeAll(async () => {
    server = await startAgentServer();
  });
  afterAll(async () => {
    await server?.close();
  });

  it('names an untitled chat from its first (Chinese) message at once, and tells every socket of the owner', async () => {
    const watcher = await TestClient.connect(server.wsUrl); // follows no chat: it only watches the list
    const chat = await createUntitled(server.url);
    expect(chat).toMatchObject({ title: 'New Chat', title_source: 'default' });
    await watcher.waitFor((e) => e.type === 'chat_updated' && e.chat_id === chat.id && e.change === 'created');

    const client = await TestClient.connect(server.wsUrl);
    const queryId = await client.chat(chat.id, '## 请帮我写一首关于**秋天**的诗\n要有落叶和月亮');
    const named = (await watcher.waitFor(
      (e) => e.type === 'chat_updated' && e.chat_id === chat.id && e.chat?.title_source === 'message',
    )) as EventOf<'chat_updated'>;
    expect(named.chat).toMatchObject({ title: '请帮我写一首关于秋天的诗', title_source: 'message' });
    expect((await getJson<Chat>(`${server.url}/api/chats/${chat.id}`)).body.title).toBe('请帮我写一首关于秋天的诗');
    await client.waitForEnd(queryId);

    // The second message changes the chat's activity, never its title.
    const before = updatesOf(watcher, chat.id).length;
    const second = await client.chat(chat.id, 'another topic entirely');
    await client.waitForEnd(second);
    await until(() => updatesOf(watcher, chat.id).length > before, 'the activity update');
    expect(updatesOf(watcher, chat.id).at(-1)!.chat).toMatchObject({ title: '请帮我写一首关于秋天的诗' });

    // Delete: the list drops it.
    expect((await fetch(`${server.url}/api/chats/${chat.id}`, { method: 'DELETE' })).status).toBe(200);
    expect(await watcher.waitFor((e) => e.type === 'chat_updated' && e.change === 'deleted')).toMatchObject({
      chat_id: chat.id,
      chat: null,
    });
    await Promise.all([client.close(), watcher.close()]);
  }, 120_000);

  it("never replaces a user's title", async () => {
    const chatId = await createChat(server.url, 'My own title');
    const client = await TestClient.connect(server.wsUrl);
    await client.waitForEnd(await client.chat(chatId, 'hello there'));
    expect((await getJson<Chat>(`${server.url}/api/chats/${chatId}`)).body).toMatchObject({
      title: 'My own title',
      title_source: 'user',
    });
    await client.close();
  }, 120_000);
});

describe('TITLE_MODEL', () => {
  let server: AgentTestServer;
  beforeAll(async () => {
    server = await startAgentServer({ TITLE_MODEL: 'claude-title-fake' });
  });
  afterAll(async () => {
    await server?.close();
  });

  const titleRequests = () => server.fake.requests.filter((r) => r.body?.model === 'claude-title-fake');

  it('asks the model for a title after the first answer, which is not delayed by it', async () => {
    const chat = await createUntitled(server.url);
    const client = await TestClient.connect(server.wsUrl);
    const queryId = await client.chat(chat.id, 'plan a trip to Kyoto');
    const end = await client.waitForEnd(queryId);
    expect(end).toMatchObject({ type: 'result', success: true });
    const fromModel = (await client.waitFor(
      (e: ServerEvent) => e.type === 'chat_updated' && e.chat_id === chat.id && e.chat?.title_source === 'model',
    )) as EventOf<'chat_updated'>;
    // The fake model answers the structured-output request with a schema sample: {"title": "Fake title"}.
    expect(fromModel.chat).toMatchObject({ title: 'Fake title' });
    expect(client.events.indexOf(fromModel)).toBeGreaterThan(client.events.indexOf(end));
    const [request] = titleRequests();
    expect(request?.body).toMatchObject({ output_config: { format: { type: 'json_schema' } } });
    expect(request?.body.stream, 'one non-streaming call').toBeUndefined();
    expect(JSON.stringify(request?.body.messages)).toContain('plan a trip to Kyoto');
    expect(request?.headers['x-api-key']).toBe('test-key');

    // Asked once: later answers keep the model's title.
    await client.waitForEnd(await client.chat(chat.id, 'and Osaka?'));
    // The title is asked for after the answer's result went out: a wrongful second request would come after it.
    await sleep(500);
    expect(titleRequests()).toHaveLength(1);
    await client.close();
  }, 120_000);

  it('never asks for a chat whose title a user set, even after the first message named it', async () => {
    const chat = await createUntitled(server.url);
    const client = await TestClient.connect(server.wsUrl);
    const queryId = await client.chat(chat.id, '/slow 5 100');
    const renamed = await fetch(`${server.url}/api/chats/${chat.id}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ title: 'Chosen by me' }),
    });
    expect(renamed.status).toBe(200);
    await client.waitForEnd(queryId);
    await sleep(500); // as above: a wrongful request would follow the result
    const count = titleRequests().filter((r) => JSON.stringify(r.body).includes('/slow 5 100')).length;
    expect(count).toBe(0);
    expect((await getJson<Chat>(`${server.url}/api/chats/${chat.id}`)).body).toMatchObject({
      title: 'Chosen by me',
      title_source: 'user',
    });
    await client.close();
  }, 120_000);
});
