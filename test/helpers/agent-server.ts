import type { FakeModel } from '../../fake-model/server.js';
import { startService, type Service, type ServiceOptions } from './service.js';

export interface AgentTestServer extends Service {
  fake: FakeModel;
  /** Stops the service and starts it again on the same data (and the same fake model). */
  restart(): Promise<AgentTestServer>;
}

/**
 * The service driving the REAL Agent SDK and CLI against the repo's scripted fake model (the only fake: at the
 * model's HTTP boundary). Bash really runs, in the chat's workspace under a temp folder. See startService.
 */
export async function startAgentServer(
  env: Record<string, string> = {},
  opts: Pick<ServiceOptions, 'fake' | 'dir' | 'store'> = {},
): Promise<AgentTestServer> {
  // With `agent`, startService always has a fake model (the one given, or its own).
  // TEST_LOG=1 prints the service's debug log to stderr (what a failing test's service did).
  const logger = process.env.TEST_LOG
    ? { logger: () => ({ level: 'debug', stream: { write: (line: string) => process.stderr.write(line) } }) }
    : {};
  return (await startService({ env, agent: true, ...opts, ...logger })) as AgentTestServer;
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
