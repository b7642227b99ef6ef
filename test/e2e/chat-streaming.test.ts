import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachStore } from '../helpers/stores.js';
import { createChat, startAgentServer, type AgentTestServer } from '../helpers/agent-server.js';
import { TestClient } from '../helpers/ws-client.js';

describeEachStore('a chat over /ws/chat with the real agent', (store) => {
  let server: AgentTestServer;
  beforeAll(async () => {
    server = await startAgentServer({}, { store });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('streams an answer: user_message, stream_start, deltas, stream_end, then one result with its cost', async () => {
    const chatId = await createChat(server.url);
    const client = await TestClient.connect(server.wsUrl);
    const queryId = await client.chat(chatId, 'hello world');
    const end = await client.waitForEnd(queryId);

    expect(end).toMatchObject({ type: 'result', success: true, chat_id: chatId });
    expect((end as { cost: number }).cost).toBeGreaterThan(0);
    const types = client.queryEvents(queryId).map((e) => e.type);
    expect(types[0]).toBe('user_message');
    expect(types.slice(1, 2)).toEqual(['stream_start']);
    expect(types.filter((t) => t === 'text_delta').length).toBeGreaterThanOrEqual(2);
    expect(types.slice(-2)).toEqual(['stream_end', 'result']);
    expect(client.streamedText(queryId)).toBe('Echo: hello world');
    const seqs = client.events.filter((e) => 'seq' in e && e.chat_id === chatId).map((e) => (e as { seq: number }).seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));

    const messages = (await (await fetch(`${server.url}/api/chats/${chatId}/messages`)).json()) as { role: string; content: string; status: string }[];
    expect(messages.map((m) => [m.role, m.content, m.status])).toEqual([
      ['user', 'hello world', 'complete'],
      ['assistant', 'Echo: hello world', 'complete'],
    ]);
    await client.close();
  });
});
