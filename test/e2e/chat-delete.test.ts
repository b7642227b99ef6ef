// End-to-end: deleting a chat over REST while its agent works (real agent, fake model).
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createChat, startAgentServer, type AgentTestServer } from '../helpers/agent-server.js';
import { TestClient } from '../helpers/ws-client.js';
import { expectOneTerminalLast, fakeRequestsFor, getJson, nextError, processesWithCwd, sleep, subscribe, until } from './support.js';

describe('DELETE /api/chats/:id with the real agent', () => {
  let server: AgentTestServer;
  beforeAll(async () => {
    server = await startAgentServer();
  });
  afterAll(async () => {
    await server?.close();
  });

  const del = async (chatId: string) => {
    const res = await fetch(`${server.url}/api/chats/${chatId}`, { method: 'DELETE' });
    return { status: res.status, body: (await res.json()) as unknown };
  };

  /** After a delete: the chat is gone everywhere, its agent and tools are gone, the model hears nothing more of it. */
  async function expectGone(client: TestClient, chatId: string): Promise<void> {
    expect((await getJson(`${server.url}/api/chats/${chatId}`)).status).toBe(404);
    expect((await getJson(`${server.url}/api/chats/${chatId}/messages`)).status).toBe(404);
    const workspace = path.join(server.config.WORKSPACE_DIR, chatId);
    expect(fs.existsSync(workspace)).toBe(false);
    // No process (the agent CLI, a Bash command it started) is left working in the chat's folder.
    await until(() => processesWithCwd(workspace).length === 0, `no process runs in ${workspace}`);
    const requests = fakeRequestsFor(server, chatId).length;
    await sleep(500);
    expect(fakeRequestsFor(server, chatId).length).toBe(requests);

    // The socket stays open; the chat is unknown now.
    for (const frame of [
      { type: 'subscribe', chat_id: chatId },
      { type: 'chat', chat_id: chatId, content: 'still there?' },
    ]) {
      const from = client.events.length;
      client.send(frame);
      expect(await nextError(client, from)).toMatchObject({ code: 'not_found', chat_id: chatId });
    }
  }

  it('mid-stream: the socket gets cancelled, the delete succeeds, and nothing of the chat is left', async () => {
    const chatId = await createChat(server.url);
    const client = await TestClient.connect(server.wsUrl);
    const queryId = await client.chat(chatId, '/slow 50 40');
    let seen = 0;
    await client.waitFor((e) => e.type === 'text_delta' && e.query_id === queryId && ++seen >= 3);
    expect(processesWithCwd(path.join(server.config.WORKSPACE_DIR, chatId)).length).toBeGreaterThan(0);

    expect(await del(chatId)).toEqual({ status: 200, body: { success: true } });
    expect(await client.waitForEnd(queryId)).toMatchObject({ type: 'cancelled', chat_id: chatId });
    await expectGone(client, chatId);
    expectOneTerminalLast(client, queryId);

    // Another chat on the same socket still works.
    const other = await createChat(server.url);
    const next = await client.chat(other, 'after the delete');
    expect(await client.waitForEnd(next)).toMatchObject({ type: 'result', success: true });
    await client.close();
  });

  it('during a running tool: the command is ended with the agent', async () => {
    const chatId = await createChat(server.url);
    const client = await TestClient.connect(server.wsUrl);
    const queryId = await client.chat(chatId, '/bash echo started; sleep 30; echo slept');
    await client.waitFor((e) => e.type === 'tool_use' && e.query_id === queryId);
    const workspace = path.join(server.config.WORKSPACE_DIR, chatId);
    // The CLI and the shell running the command both work in the chat's folder.
    await until(() => processesWithCwd(workspace).length >= 2, 'the command runs');

    expect(await del(chatId)).toEqual({ status: 200, body: { success: true } });
    expect(await client.waitForEnd(queryId)).toMatchObject({ type: 'cancelled' });
    await expectGone(client, chatId);
    expectOneTerminalLast(client, queryId);
    await client.close();
  });

  it('an idle chat with a live agent and two sockets on it: the agent is ended, no event goes out', async () => {
    const chatId = await createChat(server.url);
    const client = await TestClient.connect(server.wsUrl);
    const queryId = await client.chat(chatId, 'hello');
    await client.waitForEnd(queryId);
    const watcher = await TestClient.connect(server.wsUrl);
    await subscribe(watcher, chatId);

    const from = client.events.length;
    expect(await del(chatId)).toEqual({ status: 200, body: { success: true } });
    await expectGone(client, chatId);
    // Nothing was running: no cancelled (or any other event of the chat's stream) went out. chat_updated is the chat
    // list's notice of the deletion to every socket of the owner, not part of the stream.
    expect(client.events.slice(from).filter((e) => e.type !== 'error' && e.type !== 'chat_updated')).toEqual([]);
    expect(await del(chatId)).toMatchObject({ status: 404 });
    await Promise.all([client.close(), watcher.close()]);
  });
});
