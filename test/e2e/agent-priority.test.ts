import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { createChat, startAgentServer, type AgentTestServer } from '../helpers/agent-server.js';
import { runBash } from './support.js';

/** Kernels with autogroups (most Linux distributions) share the CPU between sessions before processes. */
const autogroups = fs.existsSync('/proc/self/autogroup');

/**
 * AGENT_NICE: the agent CLI, and every tool it runs, at a lower CPU priority than the service (so a saturated
 * machine still runs the service's event loop first), seen from inside the agent's own Bash tool.
 */
describe('agent CPU priority', () => {
  let server: AgentTestServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('runs agents and their tools at nice 5 by default, their session (autogroup) too', async () => {
    server = await startAgentServer();
    const chatId = await createChat(server.url);
    expect((await runBash(server, chatId, 'nice')).content.trim()).toBe('5');
    // The CLI (the tool's parent) leads a session of its own, whose autogroup gets the same priority. (The CLI starts
    // each tool in a session of its own: a tool's autogroup is new, at the default; its process nice is 5 as above.)
    if (autogroups) expect((await runBash(server, chatId, 'cat /proc/$PPID/autogroup')).content).toMatch(/ nice 5\b/);
  });

  it("runs them at the service's own priority with AGENT_NICE=0, and at the one set otherwise, confined or not", async () => {
    server = await startAgentServer({ AGENT_NICE: '0' });
    expect((await runBash(server, await createChat(server.url), 'nice')).content.trim()).toBe('0');
    await server.close();
    // Unconfined, the CLI runs under the orphan watchdog's shell instead of bubblewrap: the same priority.
    server = await startAgentServer({ AGENT_NICE: '12', AGENT_CONFINEMENT: 'off' });
    const chatId = await createChat(server.url);
    expect((await runBash(server, chatId, 'nice')).content.trim()).toBe('12');
    if (autogroups) expect((await runBash(server, chatId, 'cat /proc/$PPID/autogroup')).content).toMatch(/ nice 12\b/);
  });
});
