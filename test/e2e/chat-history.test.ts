// End-to-end: stored history, the model's context across restarts, clear_history (real agent, fake model).
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Chat } from '../../src/protocol/chat.js';
import type { EventOf } from '../../src/protocol/ws.js';
import { startFakeModel, type FakeModel } from '../../fake-model/server.js';
import { createChat, startAgentServer, type AgentTestServer } from '../helpers/agent-server.js';
import { TestClient } from '../helpers/ws-client.js';
import { expectOneTerminalLast, freshSubscribe, getJson, getMessages } from './support.js';

async function getChat(server: { url: string }, chatId: string): Promise<Chat> {
  const { status, body } = await getJson<Chat>(`${server.url}/api/chats/${chatId}`);
  expect(status).toBe(200);
  return body;
}

/** Sends a message on a fresh socket and waits for its result; returns the client and the query id. */
async function ask(server: { wsUrl: string }, chatId: string, content: string) {
  const client = await TestClient.connect(server.wsUrl);
  const queryId = await client.chat(chatId, content);
  const end = await client.waitForEnd(queryId);
  return { client, queryId, end };
}

describe('history and context with the real agent', () => {
  let fake: FakeModel;
  let server: AgentTestServer;
  beforeAll(async () => {
    fake = await startFakeModel();
    server = await startAgentServer({}, { fake });
  });
  afterAll(async () => {
    await server?.close();
    await fake?.close();
  });

  it('a new socket gets the history (user + assistant, with statuses) and the tool history', async () => {
    const chatId = await createChat(server.url);
    const first = await ask(server, chatId, '/bash echo from-history');
    expect(first.end).toMatchObject({ type: 'result', success: true });
    const toolUse = first.client.queryEvents(first.queryId).find((e) => e.type === 'tool_use') as EventOf<'tool_use'>;
    const second = await ask(server, chatId, 'plain words');
    expect(second.end).toMatchObject({ type: 'result', success: true });
    await Promise.all([first.client.close(), second.client.close()]);

    const { client, history, toolHistory, processingState } = await freshSubscribe(server, chatId);
    expect(history.chat_id).toBe(chatId);
    expect(history.messages.map((m) => [m.role, m.content, m.status])).toEqual([
      ['user', '/bash echo from-history', 'complete'],
      ['assistant', 'Tool result: from-history', 'complete'],
      ['user', 'plain words', 'complete'],
      ['assistant', 'Echo: plain words', 'complete'],
    ]);
    for (const m of history.messages) {
      expect(m).toMatchObject({ chat_id: chatId, id: expect.any(String), images: null });
      expect(Number.isNaN(Date.parse(m.timestamp))).toBe(false);
    }
    expect(toolHistory.tool_uses).toEqual([
      {
        id: toolUse.tool_id,
        tool_name: 'Bash',
        tool_input: expect.objectContaining({ command: 'echo from-history' }),
        result_content: 'from-history',
        is_error: false,
        timestamp: expect.any(String),
      },
    ]);
    expect(processingState).toMatchObject({ is_processing: false, query_id: null, streaming_state: null });
    // The REST API answers the same messages.
    expect(await getMessages(server, chatId)).toEqual(history.messages);
    await client.close();
  });

  it('clear_history: history_cleared, no stored messages, and the model forgot the conversation too', async () => {
    const chatId = await createChat(server.url);
    const { client } = await ask(server, chatId, 'remember-me');
    const tool = await client.chat(chatId, '/bash echo tool-before-clear');
    await client.waitForEnd(tool);

    const from = client.events.length;
    client.send({ type: 'clear_history', chat_id: chatId });
    expect(await client.waitFor((e) => e.type === 'history_cleared', { from })).toMatchObject({ chat_id: chatId });
    expect(await getMessages(server, chatId)).toEqual([]);
    expect((await getChat(server, chatId)).sdk_session_id).toBeNull();

    const recall = await client.chat(chatId, '/recall');
    expect(await client.waitForEnd(recall)).toMatchObject({ type: 'result', success: true });
    expect(client.streamedText(recall)).toBe('Earlier: (nothing)');

    const fresh = await freshSubscribe(server, chatId);
    expect(fresh.history.messages.map((m) => m.content)).toEqual(['/recall', 'Earlier: (nothing)']);
    expect(fresh.toolHistory.tool_uses).toEqual([]);
    await Promise.all([client.close(), fresh.client.close()]);
  });

  it('clear_history mid-stream: the query ends cancelled first, then history_cleared, and nothing is left', async () => {
    const chatId = await createChat(server.url);
    const client = await TestClient.connect(server.wsUrl);
    const queryId = await client.chat(chatId, '/slow 50 40');
    await client.waitFor((e) => e.type === 'text_delta' && e.query_id === queryId);
    client.send({ type: 'clear_history', chat_id: chatId });
    const cleared = await client.waitFor((e) => e.type === 'history_cleared');
    expect(expectOneTerminalLast(client, queryId)).toMatchObject({ type: 'cancelled' });
    const cancelledAt = client.events.findIndex((e) => e.type === 'cancelled' && e.query_id === queryId);
    expect(cancelledAt).toBeLessThan(client.events.indexOf(cleared));
    expect(await getMessages(server, chatId)).toEqual([]);

    const next = await client.chat(chatId, '/recall');
    expect(await client.waitForEnd(next)).toMatchObject({ type: 'result', success: true });
    expect(client.streamedText(next)).toBe('Earlier: (nothing)');
    await client.close();
  });

  it('the model keeps its context across a restart of the service (the SDK session is resumed)', async () => {
    const chatId = await createChat(server.url);
    const first = await ask(server, chatId, 'alpha');
    expect(first.end).toMatchObject({ type: 'result', success: true });
    await first.client.close();
    const sessionId = (await getChat(server, chatId)).sdk_session_id;
    expect(sessionId).not.toBeNull();

    server = await server.restart();
    const { client, queryId, end } = await ask(server, chatId, '/recall');
    expect(end).toMatchObject({ type: 'result', success: true });
    expect(client.streamedText(queryId)).toBe('Earlier: alpha');
    expect(client.events.some((e) => e.type === 'notice')).toBe(false);
    expect((await getChat(server, chatId)).sdk_session_id).not.toBeNull();
    // The history survived too.
    expect((await getMessages(server, chatId)).map((m) => m.content)).toEqual([
      'alpha',
      'Echo: alpha',
      '/recall',
      'Earlier: alpha',
    ]);
    await client.close();
  });

  it('a lost transcript: the next message still answers, after a session_restarted notice', async () => {
    const chatId = await createChat(server.url);
    const first = await ask(server, chatId, 'beta');
    expect(first.end).toMatchObject({ type: 'result', success: true });
    await first.client.close();
    const oldSession = (await getChat(server, chatId)).sdk_session_id;
    expect(oldSession).not.toBeNull();

    // Stop the service, lose the CLI's transcripts, start again on the same data.
    const dir = server.dir;
    await server.close();
    fs.rmSync(path.join(server.config.AGENT_HOME_DIR, 'chats', chatId, '.claude', 'projects'), { recursive: true, force: true });
    server = await startAgentServer({}, { fake, dir });

    const { client, queryId, end } = await ask(server, chatId, '/recall');
    expect(end).toMatchObject({ type: 'result', success: true });
    const notice = client.events.find((e) => e.type === 'notice') as EventOf<'notice'> | undefined;
    expect(notice).toMatchObject({ chat_id: chatId, code: 'session_restarted', message: expect.any(String) });
    expect(client.events.indexOf(notice!)).toBeLessThan(client.events.indexOf(end));
    // A new session: the model does not know "beta" any more, and the chat points at the new session.
    expect(client.streamedText(queryId)).toBe('Earlier: (nothing)');
    const newSession = (await getChat(server, chatId)).sdk_session_id;
    expect(newSession).not.toBeNull();
    expect(newSession).not.toBe(oldSession);
    await client.close();
  });
});
