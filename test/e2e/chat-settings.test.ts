import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Chat } from '../../src/protocol/chat.js';
import { createChat, startAgentServer, type AgentTestServer } from '../helpers/agent-server.js';
import { TestClient } from '../helpers/ws-client.js';
import { getJson, modelRequestAnswering, until } from './support.js';

async function patch(server: AgentTestServer, chatId: string, body: unknown): Promise<{ status: number; body: Chat & { detail?: string } }> {
  const res = await fetch(`${server.url}/api/chats/${chatId}`, {
    method: 'PATCH',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Chat & { detail?: string } };
}

/** Sends `text` and waits for its answer; returns the model request that answered it. */
async function ask(server: AgentTestServer, client: TestClient, chatId: string, text: string) {
  const end = await client.waitForEnd(await client.chat(chatId, text), 60_000);
  expect(end.type).toBe('result');
  await until(() => modelRequestAnswering(server, chatId, text) !== undefined, `the model request answering ${text}`);
  return modelRequestAnswering(server, chatId, text)!.body as { model: string; system: unknown };
}

describe('per-chat settings', () => {
  let server: AgentTestServer;
  beforeAll(async () => {
    server = await startAgentServer({
      PERMISSION_MODE: 'acceptEdits',
      ALLOWED_TOOLS: 'Read,Glob,Grep',
      ALLOWED_MODELS: 'model-small,model-large',
      MODEL: 'model-service',
    });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('narrows what the operator allows, refuses anything wider with a 403, and keeps the title-only PATCH', async () => {
    const chatId = await createChat(server.url);
    const narrowed = await patch(server, chatId, {
      title: 'Narrow',
      settings: { model: 'model-small', permission_mode: 'plan', allowed_tools: ['Read'], system_prompt_append: 'Be brief.' },
    });
    expect(narrowed.status).toBe(200);
    expect(narrowed.body).toMatchObject({
      title: 'Narrow',
      settings: { model: 'model-small', permission_mode: 'plan', allowed_tools: ['Read'], system_prompt_append: 'Be brief.' },
    });
    // The same mode as the service's is not wider; neither is no tool at all.
    expect((await patch(server, chatId, { settings: { permission_mode: 'acceptEdits', allowed_tools: [] } })).status).toBe(200);

    for (const [settings, names] of [
      [{ permission_mode: 'bypassPermissions' }, 'PERMISSION_MODE'],
      [{ allowed_tools: ['Read', 'Bash'] }, 'Bash'],
      [{ model: 'model-huge' }, 'ALLOWED_MODELS'],
    ] as const) {
      const refused = await patch(server, chatId, { title: 'Not applied', settings });
      expect(refused.status, JSON.stringify(settings)).toBe(403);
      expect(refused.body.detail).toContain(names);
    }
    // Nothing of a refused PATCH was applied, the title beside it included.
    const { body: stored } = await getJson<Chat>(`${server.url}/api/chats/${chatId}`);
    expect(stored.title).toBe('Narrow');
    expect(stored.settings).toEqual({
      model: 'model-small',
      permission_mode: 'acceptEdits',
      allowed_tools: [],
      system_prompt_append: 'Be brief.',
    });

    // null gives a setting back to the service; the seed clients' {title} PATCH and PUT work as before.
    expect((await patch(server, chatId, { settings: { model: null, allowed_tools: null } })).body.settings).toEqual({
      permission_mode: 'acceptEdits',
      system_prompt_append: 'Be brief.',
    });
    expect((await patch(server, chatId, { title: 'Renamed' })).body).toMatchObject({ title: 'Renamed', title_source: 'user' });
    const put = await fetch(`${server.url}/api/chats/${chatId}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ title: 'Put' }),
    });
    expect(put.status).toBe(200);

    // Malformed settings are a 422 like any bad body.
    expect((await patch(server, chatId, {})).status).toBe(422);
    expect((await patch(server, chatId, { settings: { temperature: 2 } })).status).toBe(422);
    expect((await patch(server, chatId, { settings: { permission_mode: 'yolo' } })).status).toBe(422);

    const { body: list } = await getJson<Chat[]>(`${server.url}/api/chats`);
    expect(list.find((c) => c.id === chatId)?.settings).toEqual({ permission_mode: 'acceptEdits', system_prompt_append: 'Be brief.' });
  });

  it("runs the chat's model from its first message, and switches a live agent's model without restarting it", async () => {
    const chatId = await createChat(server.url);
    expect((await patch(server, chatId, { settings: { model: 'model-small' } })).status).toBe(200);
    const client = await TestClient.connect(server.wsUrl);
    expect((await ask(server, client, chatId, 'first question')).model).toBe('model-small');
    const pid = server.app.agents.peek(chatId)?.agentPid;
    expect(pid).toBeDefined();

    expect((await patch(server, chatId, { settings: { model: 'model-large' } })).status).toBe(200);
    expect((await ask(server, client, chatId, 'second question')).model).toBe('model-large');
    expect(server.app.agents.peek(chatId)?.agentPid, 'the model changed in the running agent').toBe(pid);

    expect((await patch(server, chatId, { settings: { model: null } })).status).toBe(200);
    expect((await ask(server, client, chatId, 'third question')).model).toBe('model-service');
    await client.close();
  }, 180_000);

  it("switches a live agent's permission mode without restarting it", async () => {
    const chatId = await createChat(server.url);
    const client = await TestClient.connect(server.wsUrl);
    expect(JSON.stringify(await ask(server, client, chatId, 'before planning'))).not.toMatch(/plan mode is active/i);
    const pid = server.app.agents.peek(chatId)?.agentPid;

    expect((await patch(server, chatId, { settings: { permission_mode: 'plan' } })).status).toBe(200);
    // The CLI tells the model it is in plan mode (no tool that changes anything runs).
    expect(JSON.stringify(await ask(server, client, chatId, 'now planning'))).toMatch(/plan mode is active/i);
    expect(server.app.agents.peek(chatId)?.agentPid, 'the mode changed in the running agent').toBe(pid);
    await client.close();
  }, 180_000);

  it('applies a system prompt addition at the next message, in a new agent that keeps the conversation', async () => {
    const chatId = await createChat(server.url);
    const client = await TestClient.connect(server.wsUrl);
    expect(JSON.stringify((await ask(server, client, chatId, 'before')).system)).not.toContain('Answer in rhymes.');
    const pid = server.app.agents.peek(chatId)?.agentPid;

    expect((await patch(server, chatId, { settings: { system_prompt_append: 'Answer in rhymes.' } })).status).toBe(200);
    const after = await ask(server, client, chatId, 'after');
    expect(JSON.stringify(after.system)).toContain('Answer in rhymes.');
    expect(server.app.agents.peek(chatId)?.agentPid, 'the agent was replaced to apply it').not.toBe(pid);
    // The replacement resumed the session: the model still sees the first exchange.
    expect(JSON.stringify(after)).toContain('Echo: before');
    await client.close();
  }, 180_000);
});
