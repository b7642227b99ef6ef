// End-to-end: a chat message with the client's own id (`client_id`) is answered once, however often the client
// sends it: the resend after a reconnect that the protocol asks for (no user_message seen) can never answer a
// message twice, also when the first copy still waits behind a running answer of its chat. Both stores (the id is
// unique per chat in the queries table).
import { afterEach, expect, it } from 'vitest';
import type { ServerEvent } from '../../src/protocol/ws.js';
import { createChat, startAgentServer, type AgentTestServer } from '../helpers/agent-server.js';
import { describeEachStore } from '../helpers/stores.js';
import { TestClient } from '../helpers/ws-client.js';
import { getMessages, sleep, subscribe } from './support.js';

const echoesOf = (client: TestClient, chatId: string, content: string) =>
  client.events.filter((e): e is Extract<ServerEvent, { type: 'user_message' }> => e.type === 'user_message' && e.chat_id === chatId && e.content === content);

describeEachStore('messages with a client id', (store) => {
  let server: AgentTestServer | undefined;
  let client: TestClient | undefined;
  afterEach(async () => {
    await client?.close();
    await server?.close();
    server = undefined;
  });

  it('is echoed with its id and answered once, however often it is sent; ids are per chat', { timeout: 120_000 }, async () => {
    server = await startAgentServer({ AGENT_PREWARM: 'false' }, { store });
    const chatId = await createChat(server.url);
    client = await TestClient.connect(server.wsUrl);
    await subscribe(client, chatId);

    client.send({ type: 'chat', chat_id: chatId, content: 'hello', client_id: 'msg-1' });
    const echo = await client.waitFor((e) => e.type === 'user_message' && e.chat_id === chatId, { timeoutMs: 60_000 });
    expect(echo).toMatchObject({ content: 'hello', client_id: 'msg-1' });
    await client.waitForEnd((echo as { query_id: string }).query_id, 60_000);

    // Sent again (as after a reconnect that showed no echo): nothing new; the next message is answered normally.
    client.send({ type: 'chat', chat_id: chatId, content: 'hello', client_id: 'msg-1' });
    const next = await client.chat(chatId, 'second');
    await client.waitForEnd(next, 60_000);
    expect(echoesOf(client, chatId, 'hello')).toHaveLength(1);

    // The first copy still waits behind a running answer when the second arrives: still answered once.
    const slow = await client.chat(chatId, '/slow 40 50');
    client.send({ type: 'chat', chat_id: chatId, content: 'while busy', client_id: 'msg-2' });
    client.send({ type: 'chat', chat_id: chatId, content: 'while busy', client_id: 'msg-2' });
    const busy = await client.waitFor((e) => e.type === 'user_message' && e.content === 'while busy', { timeoutMs: 60_000 });
    await client.waitForEnd(slow, 60_000);
    await client.waitForEnd((busy as { query_id: string }).query_id, 60_000);
    await sleep(500);
    expect(echoesOf(client, chatId, 'while busy')).toHaveLength(1);

    // Another chat has ids of its own.
    const other = await createChat(server.url);
    await subscribe(client, other);
    client.send({ type: 'chat', chat_id: other, content: 'hello there', client_id: 'msg-1' });
    const otherEcho = await client.waitFor((e) => e.type === 'user_message' && e.chat_id === other, { timeoutMs: 60_000 });
    expect(otherEcho).toMatchObject({ client_id: 'msg-1' });

    // A repeated id is no error either: the client just hears nothing new.
    expect(client.events.filter((e) => e.type === 'error')).toEqual([]);
    const users = (await getMessages(server, chatId)).filter((m) => m.role === 'user').map((m) => m.content);
    expect(users).toEqual(['hello', 'second', '/slow 40 50', 'while busy']);
  });

  it('refuses an empty or overlong client id as a bad frame, the socket stays open', { timeout: 60_000 }, async () => {
    server = await startAgentServer({ AGENT_PREWARM: 'false' }, { store });
    const chatId = await createChat(server.url);
    client = await TestClient.connect(server.wsUrl);
    for (const clientId of ['', 'x'.repeat(101)]) {
      const from = client.events.length;
      client.send({ type: 'chat', chat_id: chatId, content: 'hi', client_id: clientId });
      const error = await client.waitFor((e) => e.type === 'error', { from });
      expect(error).toMatchObject({ code: 'bad_frame' });
      expect((error as { error: string }).error).toMatch(/client_id/);
    }
    expect(client.socket.readyState).toBe(client.socket.OPEN);
    expect(await getMessages(server, chatId)).toEqual([]);
  });
});
