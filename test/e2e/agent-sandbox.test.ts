import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createChat, startAgentServer, type AgentTestServer } from '../helpers/agent-server.js';
import { runBash } from './support.js';

/** bubblewrap and socat present and bubblewrap able to make namespaces here (not in every container). */
function sandboxAvailable(): boolean {
  try {
    execFileSync('socat', ['-V'], { stdio: 'ignore' });
    execFileSync('bwrap', ['--ro-bind', '/', '/', '--unshare-all', 'true'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * AGENT_SANDBOX=true: Bash commands run in the CLI's OS sandbox. Runs where bubblewrap works (Debian packages). The
 * CLI's sandbox cannot nest inside the service's own confinement, so it is the unconfined set-up's option.
 */
describe.runIf(sandboxAvailable())('agent OS sandbox', () => {
  let server: AgentTestServer;
  const outside = path.join(os.tmpdir(), `sandbox-escape-${process.pid}`);
  beforeAll(async () => {
    server = await startAgentServer({ AGENT_SANDBOX: 'true', AGENT_CONFINEMENT: 'off' });
  });
  afterAll(async () => {
    fs.rmSync(outside, { force: true });
    await server?.close();
  });


  it("lets a command write in the chat's workspace but not elsewhere on the machine", async () => {
    const chatId = await createChat(server.url);
    const inside = await runBash(server, chatId, 'echo ok > inside.txt && cat inside.txt');
    expect(inside).toMatchObject({ content: 'ok', is_error: false });
    await runBash(server, chatId, `echo escaped > ${outside}`);
    expect(fs.existsSync(outside)).toBe(false);
  });
});
