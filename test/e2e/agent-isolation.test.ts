import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createChat, startAgentServer, type AgentTestServer } from '../helpers/agent-server.js';
import { runBash } from './support.js';

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


  it("gives Bash an environment without the service's own variables", async () => {
    const chatId = await createChat(server.url);
    const env = (await runBash(server, chatId, 'env')).content;
    expect(env).not.toContain(secret);
    expect(env).not.toContain('chat.db');
    expect(env).not.toContain('DATABASE_URL');
    // Each chat's agent has a home of its own (agent-home.ts).
    const home = path.join(server.config.AGENT_HOME_DIR, 'chats', chatId);
    expect(env).toContain(`HOME=${home}`);
    expect(env).toContain(`CLAUDE_CONFIG_DIR=${path.join(home, '.claude')}`);
  });

  it("runs each chat's tools in that chat's own folder", async () => {
    const [a, b] = [await createChat(server.url), await createChat(server.url)];
    expect((await runBash(server, a, 'pwd')).content.trim()).toBe(path.join(server.config.WORKSPACE_DIR, a));
    await runBash(server, a, 'echo mine > note.txt && echo written');
    expect((await runBash(server, b, 'ls')).content).not.toContain('note.txt');
  });
});
