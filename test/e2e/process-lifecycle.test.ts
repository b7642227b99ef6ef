import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeModel, type FakeModel } from '../../fake-model/server.js';
import { findAgentProcesses } from '../../src/agent/crash-recovery.js';
import { createChat } from '../helpers/agent-server.js';
import { startServiceProcess } from '../helpers/service-process.js';
import { makeTempDir } from '../helpers/test-server.js';
import { TestClient } from '../helpers/ws-client.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
type StoredMessage = { role: string; content: string; status: string };
const messagesOf = async (url: string, chatId: string) =>
  (await (await fetch(`${url}/api/chats/${chatId}/messages`)).json()) as StoredMessage[];

/** The service as a real OS process (the entry point `npm start` runs), for signals and kill -9. */
// Each test starts the service process twice (about a second each alone, tens of seconds on a loaded
// machine: startServiceProcess waits up to 90 s for each).
describe('the service process', { timeout: 180_000 }, () => {
  let fake: FakeModel;
  beforeAll(async () => {
    fake = await startFakeModel();
  });
  afterAll(async () => {
    await fake.close();
  });

  const envFor = (dir: string) => ({
    DATABASE_URL: `sqlite:${path.join(dir, 'chat.db')}`,
    WORKSPACE_DIR: path.join(dir, 'workspaces'),
    AGENT_HOME_DIR: path.join(dir, 'agent-home'),
    ANTHROPIC_BASE_URL: fake.url,
    ANTHROPIC_API_KEY: 'test-key',
    PERMISSION_MODE: 'bypassPermissions',
    STREAM_CHECKPOINT_MS: '100',
    LOG_LEVEL: 'warn',
  });

  it('after kill -9 mid-answer: the agent stops by itself, nothing stored is lost, the partial answer is kept as interrupted, the chat resumes', async () => {
    const dir = makeTempDir();
    const configDir = path.join(dir, 'agent-home');
    // Unconfined agents run under a watchdog that ends them when the service is gone (confined ones die with
    // bubblewrap: agent-confinement.test.ts); the next start would reap any left.
    const unconfined = { ...envFor(dir), AGENT_CONFINEMENT: 'off' };
    const first = await startServiceProcess(unconfined);
    const chatId = await createChat(first.url);
    const client = await TestClient.connect(first.wsUrl);
    await client.waitForEnd(await client.chat(chatId, 'before the crash'));
    const slow = await client.chat(chatId, '/slow 200 30');
    await client.waitFor((e) => e.type === 'text_delta' && e.delta === 'chunk20 ');
    const streamed = client.streamedText(slow);

    expect((await findAgentProcesses(configDir)).length).toBeGreaterThan(0);
    first.child.kill('SIGKILL');
    await first.exited;
    // The service can no longer end its agent: the agent's watchdog does, within moments (the limit is 10 s).
    const killedAt = Date.now();
    while ((await findAgentProcesses(configDir)).length > 0 && Date.now() - killedAt < 10_000) await sleep(100);
    expect(await findAgentProcesses(configDir)).toEqual([]);

    const second = await startServiceProcess(unconfined);
    expect(await findAgentProcesses(configDir)).toEqual([]);
    const stored = await messagesOf(second.url, chatId);
    expect(stored.slice(0, 3).map((m) => [m.role, m.content, m.status])).toEqual([
      ['user', 'before the crash', 'complete'],
      ['assistant', 'Echo: before the crash', 'complete'],
      ['user', '/slow 200 30', 'complete'],
    ]);
    const partial = stored[3]!;
    expect(partial).toMatchObject({ role: 'assistant', status: 'interrupted' });
    // Checkpointed text: a non-empty prefix of what the client saw before the crash, at most one interval behind.
    expect(partial.content.length).toBeGreaterThan(0);
    expect(streamed.startsWith(partial.content) || partial.content.startsWith(streamed)).toBe(true);

    const again = await TestClient.connect(second.wsUrl);
    const recall = await again.chat(chatId, '/recall');
    expect(await again.waitForEnd(recall)).toMatchObject({ type: 'result', success: true });
    expect(again.streamedText(recall)).toContain('before the crash');
    await again.close();
    second.child.kill('SIGTERM');
    expect(await second.exited).toEqual({ code: 0, signal: null });
    expect(await findAgentProcesses(configDir)).toEqual([]);
    await client.close();
  });

  it('after kill -9 during a tool: the unconfined agent and the tool it started stop by themselves within 10 s', async () => {
    const dir = makeTempDir();
    const configDir = path.join(dir, 'agent-home');
    const service = await startServiceProcess({ ...envFor(dir), AGENT_CONFINEMENT: 'off' });
    const chatId = await createChat(service.url);
    const client = await TestClient.connect(service.wsUrl);
    await client.chat(chatId, '/bashslow 60');
    await client.waitFor((e) => e.type === 'tool_use');
    // The tool (in a process group of its own, as the CLI starts tools) is running.
    const commandOf = (pid: number) => fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
    const toolRuns = async () => (await findAgentProcesses(configDir)).some((pid) => { try { return commandOf(pid).includes('tail -f /dev/null'); } catch { return false; } });
    const since = Date.now();
    while (!(await toolRuns()) && Date.now() - since < 20_000) await sleep(100);
    expect(await toolRuns()).toBe(true);

    service.child.kill('SIGKILL');
    await service.exited;
    const killedAt = Date.now();
    while ((await findAgentProcesses(configDir)).length > 0 && Date.now() - killedAt < 10_000) await sleep(100);
    expect(await findAgentProcesses(configDir)).toEqual([]);
    await client.close();
  });

  it('on SIGTERM mid-answer: the answer ends cancelled, its text is stored, every agent exits, and the process exits 0 within seconds', async () => {
    const dir = makeTempDir();
    const configDir = path.join(dir, 'agent-home');
    const service = await startServiceProcess(envFor(dir));
    const chatId = await createChat(service.url);
    const client = await TestClient.connect(service.wsUrl);
    const slow = await client.chat(chatId, '/slow 200 30');
    await client.waitFor((e) => e.type === 'text_delta' && e.delta === 'chunk5 ');

    const started = Date.now();
    service.child.kill('SIGTERM');
    expect(await client.waitForEnd(slow)).toMatchObject({ type: 'cancelled' });
    const streamed = client.streamedText(slow);
    expect(await service.exited).toEqual({ code: 0, signal: null });
    expect(Date.now() - started).toBeLessThan(8_000);
    expect(await findAgentProcesses(configDir)).toEqual([]);

    const restarted = await startServiceProcess(envFor(dir));
    const stored = await messagesOf(restarted.url, chatId);
    expect(stored.at(-1)).toMatchObject({ role: 'assistant', status: 'interrupted', content: streamed });
    restarted.child.kill('SIGTERM');
    await restarted.exited;
    await client.close();
  });
});
