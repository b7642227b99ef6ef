// End-to-end: an agent CLI that dies before it starts (a script that exits at once, a path that does not exist, a
// file without execute permission). The query ends with one readable error after a few spaced attempts, the next
// messages are refused at once (nothing stored) while the backoff lasts, starts stay few however many messages
// arrive, and the service recovers by itself once the CLI starts again. Real service, real SDK; the real CLI runs
// behind the wrapper script once the fault is cleared.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { afterEach, describe, expect, it } from 'vitest';
import type { EventOf } from '../../src/protocol/ws.js';
import { createChat, startAgentServer, type AgentTestServer } from '../helpers/agent-server.js';
import { makeTempDir } from '../helpers/test-server.js';
import { TestClient } from '../helpers/ws-client.js';
import { expectOneTerminalLast, getMessages, nextError, sleep } from './support.js';

const require = createRequire(import.meta.url);
/** The SDK's bundled native CLI (what the service runs when AGENT_CLI_PATH is not set). */
const REAL_CLI = path.join(path.dirname(require.resolve('@anthropic-ai/claude-agent-sdk-linux-x64/package.json')), 'claude');

// Unconfined: the wrapper script and its start counter live in a temp folder that an agent's namespace does not show.
const BACKOFF = { AGENT_START_BACKOFF_MS: '300', AGENT_START_BACKOFF_MAX_MS: '2000', AGENT_PREWARM: 'false', AGENT_CONFINEMENT: 'off' };

describe('an agent CLI that dies at start', () => {
  let server: AgentTestServer | undefined;
  let client: TestClient | undefined;
  const dirs: string[] = [];
  afterEach(async () => {
    await client?.close();
    await server?.close();
    server = undefined;
    client = undefined;
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });

  /** A CLI wrapper that counts its starts and dies at once, until `healthy` exists; then it is the real CLI. */
  function flakyCli() {
    const dir = makeTempDir('agent-cli-');
    dirs.push(dir);
    const starts = path.join(dir, 'starts');
    const healthy = path.join(dir, 'healthy');
    const cli = path.join(dir, 'claude');
    fs.writeFileSync(
      cli,
      `#!/bin/sh\necho start >> '${starts}'\n[ -f '${healthy}' ] && exec '${REAL_CLI}' "$@"\necho 'cannot start: broken installation' >&2\nexit 1\n`,
      { mode: 0o755 },
    );
    const count = () => (fs.existsSync(starts) ? fs.readFileSync(starts, 'utf8').split('\n').filter(Boolean).length : 0);
    return { cli, count, heal: () => fs.writeFileSync(healthy, '') };
  }

  const ends = (c: TestClient, queryId: string) =>
    c.waitFor((e) => ['result', 'cancelled', 'error'].includes(e.type) && 'query_id' in e && e.query_id === queryId, {
      timeoutMs: 30_000,
    });

  it('is retried with backoff, the user gets one clear error, messages during the backoff are refused, and it recovers', { timeout: 90_000 }, async () => {
    const flaky = flakyCli();
    // Unconfined: the wrapper records its starts in its own folder and then runs the bundled CLI from elsewhere,
    // neither of which a confined agent may do (its CLI's folder is mounted read-only, and nothing else of the project).
    server = await startAgentServer({ ...BACKOFF, AGENT_CLI_PATH: flaky.cli, AGENT_CONFINEMENT: 'off' });
    const chatId = await createChat(server.url);
    client = await TestClient.connect(server.wsUrl);

    // 1. The first message: stored, a few spaced attempts, then exactly one error that says what happened.
    const started = Date.now();
    const first = await client.chat(chatId, 'hello');
    const end = (await ends(client, first)) as EventOf<'error'>;
    expect(end.type).toBe('error');
    expect(end.code).toBe('agent_unavailable');
    expect(end.error).toMatch(/could not start/);
    expect(end.error).toMatch(/try|tries/);
    expectOneTerminalLast(client, first);
    expect(flaky.count()).toBe(3);
    // Two waits (300 ms, then 600 ms) between the three attempts: not a tight loop.
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);

    // 2. While the backoff lasts, messages are refused at once: a frame error, nothing stored, no new start.
    const before = flaky.count();
    let refused = 0;
    for (let i = 0; i < 10; i++) {
      const from = client.events.length;
      client.send({ type: 'chat', chat_id: chatId, content: `during the backoff ${i}` });
      const e = await client.waitFor((x) => (x.type === 'error' && !('query_id' in x && x.query_id)) || x.type === 'user_message', { from });
      if (e.type === 'error') {
        expect(e.code).toBe('agent_unavailable');
        expect(e.error).toMatch(/tries again in \d+ s/);
        refused++;
      } else {
        await ends(client, (e as EventOf<'user_message'>).query_id);
      }
    }
    expect(refused).toBeGreaterThan(0);
    // At most one start per backoff interval (it doubles: 1.2 s, then 2 s), however many messages arrived.
    expect(flaky.count() - before).toBeLessThanOrEqual(3);
    const stored = await getMessages(server, chatId);
    expect(stored.filter((m) => m.role === 'user').length).toBe(1 + (10 - refused));

    // 3. The CLI works again: after the current wait the service starts it by itself on the next message.
    flaky.heal();
    const deadline = Date.now() + 20_000;
    let answer: string | undefined;
    while (!answer && Date.now() < deadline) {
      const from = client.events.length;
      client.send({ type: 'chat', chat_id: chatId, content: 'are you back' });
      const e = await client.waitFor((x) => (x.type === 'error' && !('query_id' in x && x.query_id)) || x.type === 'user_message', { from });
      if (e.type === 'error') {
        await sleep(250);
        continue;
      }
      const q = (e as EventOf<'user_message'>).query_id;
      const done = await ends(client, q);
      if (done.type === 'result') answer = client.streamedText(q);
      else await sleep(250);
    }
    expect(answer).toContain('Echo: are you back');
  });

  it('a CLI path that does not exist, or a file without execute permission: a clear error naming the cause', { timeout: 60_000 }, async () => {
    const dir = makeTempDir('agent-cli-');
    dirs.push(dir);
    const notExecutable = path.join(dir, 'claude');
    fs.writeFileSync(notExecutable, '#!/bin/sh\nexit 0\n', { mode: 0o644 });
    for (const [cli, cause] of [
      [path.join(dir, 'missing', 'claude'), /ENOENT|not found|no such file/i],
      [notExecutable, /EACCES|permission/i],
    ] as const) {
      // The third failed start (the query's last attempt) leaves a 6 s wait: 'again' below lands in it however slow
      // the machine is.
      server = await startAgentServer({ ...BACKOFF, AGENT_START_BACKOFF_MS: '1500', AGENT_START_BACKOFF_MAX_MS: '20000', AGENT_CLI_PATH: cli });
      const chatId = await createChat(server.url);
      client = await TestClient.connect(server.wsUrl);
      const q = await client.chat(chatId, 'hello');
      const end = (await ends(client, q)) as EventOf<'error'>;
      expect(end.type).toBe('error');
      expect(end.code).toBe('agent_unavailable');
      expect(end.error).toMatch(cause);
      expectOneTerminalLast(client, q);
      // The next message right away is refused without touching the store.
      const from = client.events.length;
      client.send({ type: 'chat', chat_id: chatId, content: 'again' });
      expect((await nextError(client, from)).code).toBe('agent_unavailable');
      expect((await getMessages(server, chatId)).filter((m) => m.role === 'user')).toHaveLength(1);
      await client.close();
      await server.close();
      client = undefined;
      server = undefined;
    }
  });
});
