// End-to-end: tool use with a REAL Bash run by the REAL agent CLI (the model is the scripted fake).
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventOf } from '../../src/protocol/ws.js';
import { createChat, startAgentServer, type AgentTestServer } from '../helpers/agent-server.js';
import { TestClient } from '../helpers/ws-client.js';
import { expectOneTerminalLast, freshSubscribe, getMessages } from './support.js';

describe('tools over /ws/chat with the real agent', () => {
  let server: AgentTestServer;
  beforeAll(async () => {
    server = await startAgentServer();
  });
  afterAll(async () => {
    await server?.close();
  });

  it('runs Bash: tool_use, tool_result, the streamed answer about it, one result; tool_history keeps it', async () => {
    const chatId = await createChat(server.url);
    const client = await TestClient.connect(server.wsUrl);
    const command = 'echo tool-$((6*7))';
    const queryId = await client.chat(chatId, `/bash ${command}`);
    const end = await client.waitForEnd(queryId);
    expect(end).toMatchObject({ type: 'result', success: true, chat_id: chatId, query_id: queryId });
    expectOneTerminalLast(client, queryId);

    const events = client.queryEvents(queryId);
    const types = events.map((e) => e.type);
    const toolUse = events.find((e) => e.type === 'tool_use') as EventOf<'tool_use'>;
    const toolResult = events.find((e) => e.type === 'tool_result') as EventOf<'tool_result'>;
    expect(toolUse).toMatchObject({ chat_id: chatId, tool_name: 'Bash', tool_input: { command } });
    expect(toolUse.tool_id).toMatch(/.+/);
    expect(toolResult).toMatchObject({ chat_id: chatId, tool_id: toolUse.tool_id, content: 'tool-42', is_error: false });
    // user_message → tool_use → tool_result → the answer streamed about the output → result
    expect(types.indexOf('user_message')).toBe(0);
    expect(types.indexOf('tool_use')).toBeLessThan(types.indexOf('tool_result'));
    expect(types.indexOf('tool_result')).toBeLessThan(types.indexOf('stream_start'));
    expect(types.slice(-2)).toEqual(['stream_end', 'result']);
    expect(client.streamedText(queryId)).toBe('Tool result: tool-42');

    // A client connecting later sees the call in tool_history, with its output, and the answer in history.
    const fresh = await freshSubscribe(server, chatId);
    expect(fresh.toolHistory.tool_uses).toEqual([
      {
        id: toolUse.tool_id,
        tool_name: 'Bash',
        tool_input: expect.objectContaining({ command }),
        result_content: 'tool-42',
        is_error: false,
        timestamp: expect.any(String),
      },
    ]);
    expect(fresh.history.messages.map((m) => [m.role, m.content, m.status])).toEqual([
      ['user', `/bash ${command}`, 'complete'],
      ['assistant', 'Tool result: tool-42', 'complete'],
    ]);
    await Promise.all([client.close(), fresh.client.close()]);
  });

  it("runs the command in the chat's own workspace, where its files stay", async () => {
    const chatId = await createChat(server.url);
    const client = await TestClient.connect(server.wsUrl);
    const workspace = path.join(server.config.WORKSPACE_DIR, chatId);

    const pwd = await client.chat(chatId, '/bash pwd');
    expect(await client.waitForEnd(pwd)).toMatchObject({ type: 'result', success: true });
    const result = client.queryEvents(pwd).find((e) => e.type === 'tool_result') as EventOf<'tool_result'>;
    expect(result.is_error).toBe(false);
    expect(fs.realpathSync(result.content.trim())).toBe(fs.realpathSync(workspace));
    expect(result.content).toContain(chatId);

    const write = await client.chat(chatId, '/bash echo made-by-the-agent > note.txt && ls');
    expect(await client.waitForEnd(write)).toMatchObject({ type: 'result', success: true });
    expect(fs.readFileSync(path.join(workspace, 'note.txt'), 'utf8')).toBe('made-by-the-agent\n');
    await client.close();
  });

  it('reports a failing command as a tool_result with is_error, and the query still ends with a result', async () => {
    const chatId = await createChat(server.url);
    const client = await TestClient.connect(server.wsUrl);
    const queryId = await client.chat(chatId, '/bash echo oops >&2; exit 3');
    expect(await client.waitForEnd(queryId)).toMatchObject({ type: 'result', success: true });
    expectOneTerminalLast(client, queryId);
    const result = client.queryEvents(queryId).find((e) => e.type === 'tool_result') as EventOf<'tool_result'>;
    expect(result.is_error).toBe(true);
    expect(result.content).toContain('oops');

    const fresh = await freshSubscribe(server, chatId);
    expect(fresh.toolHistory.tool_uses).toHaveLength(1);
    expect(fresh.toolHistory.tool_uses[0]).toMatchObject({ tool_name: 'Bash', is_error: true });
    expect(fresh.toolHistory.tool_uses[0]!.result_content).toContain('oops');
    expect((await getMessages(server, chatId)).map((m) => m.role)).toEqual(['user', 'assistant']);
    await Promise.all([client.close(), fresh.client.close()]);
  });
});
