import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventOf } from '../../src/protocol/ws.js';
import { createChat, startAgentServer, type AgentTestServer } from '../helpers/agent-server.js';
import { TestClient } from '../helpers/ws-client.js';

/** What the agent's tools can see: their own folder and a minimal environment, none of the service's secrets. */
describe('agent isolation', () => {
  let server: AgentTestServer;
  const secret = `service-secret-${process.pid}`;
  beforeAll(async () => {
    process.env.SERVICE_ONLY_SECRET = secret;
    server = await startAgentServer();
  });
  afterAll(async () => {
    delete process.env.SERVICE_ONLY_SECRET;
    await server?.close();
  });

  const runBash = async (chatId: string, command: string) => {
    const client = await TestClient.connect(server.wsUrl);
    const queryId = await client.chat(chatId, `/bash ${command}`);
    const result = (await client.waitFor((e) => e.type === 'tool_result' && e.query_id === queryId)) as EventOf<'tool_result'>;
    await client.waitForEnd(queryId);
    await client.close();
    return result.content;
  };

  it("gives Bash an environment without the service's own variables", async () => {
    const chatId = await createChat(server.url);
    const env = await runBash(chatId, 'env');
    expect(env).not.toContain(secret);
    expect(env).not.toContain('chat.db');
    expect(env).not.toContain('DATABASE_URL');
    expect(env).toContain(`HOME=${server.config.AGENT_HOME_DIR}`);
    expect(env).toContain(`CLAUDE_CONFIG_DIR=${path.join(server.config.AGENT_HOME_DIR, '.claude')}`);
  });

  it("runs each chat's tools in that chat's own folder", async () => {
    const [a, b] = [await createChat(server.url), await createChat(server.url)];
    expect((await runBash(a, 'pwd')).trim()).toBe(path.join(server.config.WORKSPACE_DIR, a));
    await runBash(a, 'echo mine > note.txt && echo written');
    expect(await runBash(b, 'ls')).not.toContain('note.txt');
  });
});
