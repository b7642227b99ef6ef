import { startFakeModel, type FakeModel } from '../../fake-model/server.js';
import { makeTempDir, startTestServer, type TestServer } from './test-server.js';

export interface AgentTestServer extends TestServer {
  fake: FakeModel;
  /** Stops the service and starts it again on the same data (and the same fake model). */
  restart(): Promise<AgentTestServer>;
}

/**
 * The service driving the REAL Agent SDK and CLI against the repo's scripted fake model (the only fake: at the
 * model's HTTP boundary). Bash really runs, in the chat's workspace under a temp folder.
 */
export async function startAgentServer(
  env: Record<string, string> = {},
  opts: { fake?: FakeModel; dir?: string } = {},
): Promise<AgentTestServer> {
  const fake = opts.fake ?? (await startFakeModel());
  const dir = opts.dir ?? makeTempDir();
  const agentEnv = {
    ANTHROPIC_BASE_URL: fake.url,
    ANTHROPIC_API_KEY: 'test-key',
    PERMISSION_MODE: 'bypassPermissions',
    AGENT_MAX_RETRIES: '0',
    ...env,
  };
  const server = await startTestServer(agentEnv, dir);
  const ownsFake = !opts.fake;
  return {
    ...server,
    fake,
    close: async () => {
      await server.close();
      if (ownsFake) await fake.close();
    },
    restart: async () => {
      await server.close();
      return startAgentServer(env, { fake, dir }).then((s) => ({ ...s, close: async () => {
        await s.close();
        if (ownsFake) await fake.close();
      } }));
    },
  };
}

export async function createChat(baseUrl: string, title = 'test chat'): Promise<string> {
  const res = await fetch(`${baseUrl}/api/chats`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ title }),
  });
  if (res.status !== 201) throw new Error(`create chat: ${res.status}`);
  return ((await res.json()) as { id: string }).id;
}
