import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findAgentProcesses } from '../../src/agent/crash-recovery.js';
import { resolveConfinement } from '../../src/agent/confinement.js';
import type { EventOf, ServerEvent } from '../../src/protocol/ws.js';
import { startAgentServer, type AgentTestServer } from '../helpers/agent-server.js';
import { api, seedUsers, type TestUser } from '../helpers/auth.js';
import { startServiceProcess } from '../helpers/service-process.js';
import { makeTempDir } from '../helpers/test-server.js';
import { TestClient } from '../helpers/ws-client.js';
import { onePixelPng, until } from './support.js';

const repoRoot = path.resolve(import.meta.dirname, '../..');

/** Whether bubblewrap can confine an agent on this machine (the service's own start-up probe). */
const probe = await (async () => {
  const dir = makeTempDir('confinement-probe-');
  try {
    return await resolveConfinement('bwrap', { agentHomeDir: dir, extraReadOnly: [] });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
})();
if (probe.kind !== 'bwrap') {
  console.warn(`SKIPPED agent-confinement.test.ts: ${probe.reason}. CI (.ci/run) installs bubblewrap and runs it.`);
}

/** A client of one user, following a chat, that shows permission prompts and answers every one with yes. */
async function yesClient(server: AgentTestServer, user: TestUser, chatId: string): Promise<TestClient> {
  const client = await TestClient.connect(server.wsUrl, { headers: { authorization: `Bearer ${user.token}` } });
  client.socket.on('message', (data) => {
    const event = JSON.parse(data.toString()) as ServerEvent;
    if (event.type !== 'permission_request') return;
    client.send({ type: 'permission_response', chat_id: event.chat_id, request_id: event.request_id, allow: true, remember: false });
  });
  client.send({ type: 'subscribe', chat_id: chatId, capabilities: ['permission_prompts'] });
  await client.waitFor((e) => e.type === 'processing_state' && e.chat_id === chatId);
  return client;
}

/**
 * Sends one message and returns what the user sees of it: the answer's text and every tool's result, in the order
 * the tools were called (the CLI may run them in parallel and report them as they finish).
 */
async function turn(client: TestClient, chatId: string, text: string): Promise<{ results: EventOf<'tool_result'>[]; text: string }> {
  const queryId = await client.chat(chatId, text);
  await client.waitForEnd(queryId, 60_000);
  const events = client.queryEvents(queryId);
  const results = events
    .filter((e): e is EventOf<'tool_use'> => e.type === 'tool_use')
    .map((use) => events.find((e): e is EventOf<'tool_result'> => e.type === 'tool_result' && e.tool_id === use.tool_id))
    .filter((r): r is EventOf<'tool_result'> => r !== undefined);
  return { results, text: client.streamedText(queryId) };
}

/** Each test runs several agent turns; a loaded machine (CI, other suites) can make one take many seconds. */
const TURNS_TIMEOUT_MS = 120_000;

const tools = (calls: { name: string; input: Record<string, unknown> }[]) => `/tools ${JSON.stringify(calls)}`;

/**
 * Two users, default settings (permission prompts on, default tools), and bubblewrap as on a production host:
 * bob's agent, with every prompt answered yes, goes after alice's data and the host's with every file tool and
 * Bash, and gets nothing; its own workspace works as before.
 */
describe.runIf(probe.kind === 'bwrap')('agent confinement', () => {
  let server: AgentTestServer;
  let alice: TestUser;
  let bob: TestUser;
  let aliceChat: string;
  let bobChat: string;
  const tag = randomBytes(6).toString('hex');
  const secrets = {
    workspace: `alice-workspace-secret-${tag}`,
    transcript: `alice-transcript-secret-${tag}`,
    environment: `service-env-secret-${tag}`,
  };
  const aliceFileName = `alice-notes-${tag}.txt`;
  /** A file of alice's that bob never names: its name showing up would mean a listing of her folder leaked. */
  const aliceHiddenName = `alice-hidden-${tag}.txt`;
  let aliceFile: string;
  let aliceTranscript: string;
  let aliceImages: string[];
  let shadowLine: string;
  const sourceFile = path.join(repoRoot, 'src/config/config.ts');
  const sourceMarker = 'export const EnvSchema = z.object';
  let databaseFile: string;
  const seen: string[] = [];

  beforeAll(async () => {
    process.env.SERVICE_ONLY_SECRET = secrets.environment;
    const dir = makeTempDir();
    ({ alice, bob } = (await seedUsers(dir, ['alice', 'bob'])) as { alice: TestUser; bob: TestUser });
    // Default settings: only what a test needs to reach the fake model; prompts on; no risk accepted.
    server = await startAgentServer(
      { PERMISSION_MODE: 'default', ALLOW_UNCONFINED_AGENTS: 'false' },
      { dir },
    );
    databaseFile = path.join(dir, 'chat.db');
    shadowLine = fs.readFileSync('/etc/shadow', 'utf8').split('\n')[0]!;

    const create = async (user: TestUser) =>
      (await api<{ id: string }>(server.url, 'POST', '/api/chats', { token: user.token, json: { title: user.name } })).body.id;
    aliceChat = await create(alice);
    bobChat = await create(bob);

    // Alice's data: a message (database, transcript), an image (her agent's temp folder), a file in her workspace.
    const a = await yesClient(server, alice, aliceChat);
    await turn(a, aliceChat, `remember ${secrets.transcript}`);
    const image = { base64: onePixelPng().toString('base64'), media_type: 'image/png' };
    const queryId = await a.chat(aliceChat, '/images', [image]);
    await a.waitForEnd(queryId, 60_000);
    await a.close();
    aliceFile = path.join(server.config.WORKSPACE_DIR, aliceChat, aliceFileName);
    fs.writeFileSync(aliceFile, `${secrets.workspace}\n`);
    fs.writeFileSync(path.join(server.config.WORKSPACE_DIR, aliceChat, aliceHiddenName), `${secrets.workspace}\n`);
    const aliceHome = path.join(server.config.AGENT_HOME_DIR, 'chats', aliceChat);
    const files = fs.readdirSync(aliceHome, { recursive: true, encoding: 'utf8' }).map((f) => path.join(aliceHome, f));
    aliceTranscript = files.find((f) => f.endsWith('.jsonl') && fs.readFileSync(f, 'utf8').includes(secrets.transcript))!;
    expect(aliceTranscript, 'alice has a transcript under her agent home').toBeDefined();
    // The agent's CLI makes and removes probe files in its temp folder meanwhile: a listed file may be gone.
    aliceImages = files.filter((f) => /\.(png|jpe?g|webp|gif)$/i.test(f) && fs.statSync(f, { throwIfNoEntry: false })?.isFile());
    expect(aliceImages.length, "alice's image is stored in her agent's temp folder").toBeGreaterThan(0);
  }, 120_000);

  afterAll(async () => {
    delete process.env.SERVICE_ONLY_SECRET;
    await server?.close();
  });

  /** Every secret: none may ever reach bob, in a tool result or in his agent's answer. */
  const expectNoSecrets = () => {
    const all = seen.join('\n');
    for (const secret of [...Object.values(secrets), shadowLine, sourceMarker, aliceHiddenName]) {
      expect(all, `bob saw ${secret}`).not.toContain(secret);
    }
  };

  const bobTurn = async (text: string) => {
    const client = await yesClient(server, bob, bobChat);
    try {
      const outcome = await turn(client, bobChat, text);
      seen.push(...outcome.results.map((r) => r.content), outcome.text);
      return outcome;
    } finally {
      await client.close();
    }
  };

  it('runs every agent inside bubblewrap', async () => {
    await bobTurn('hello');
    const pids = server.app.agents.agentPids();
    expect(pids.length).toBeGreaterThan(0);
    for (const pid of pids) expect(fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim()).toBe('bwrap');
  }, TURNS_TIMEOUT_MS);

  it("Read, Grep and Glob get nothing of alice's files, the database, the service or the host's secrets", async () => {
    const targets = [
      aliceFile,
      aliceTranscript,
      ...aliceImages,
      databaseFile,
      `/proc/${process.pid}/environ`,
      sourceFile,
      '/etc/shadow',
    ];
    const reads = await bobTurn(tools(targets.map((file_path) => ({ name: 'Read', input: { file_path } }))));
    expect(reads.results).toHaveLength(targets.length);
    for (const [i, result] of reads.results.entries()) {
      expect(result.is_error, targets[i]).toBe(true);
      // The CLI checks a file's type before the path rules run: it refuses the database (binary) and /proc first.
      const refusedByCli = targets[i] === databaseFile || targets[i]!.startsWith('/proc/');
      if (!refusedByCli) expect(result.content, targets[i]).toContain('outside your workspace');
    }

    const places = [
      path.join(server.config.WORKSPACE_DIR, aliceChat),
      server.config.AGENT_HOME_DIR,
      server.dir,
      `/proc/${process.pid}`,
      path.join(repoRoot, 'src'),
      '/etc',
      '/',
    ];
    const greps = await bobTurn(
      tools(places.map((p) => ({ name: 'Grep', input: { pattern: 'secret|EnvSchema|root:', path: p, output_mode: 'content' } }))),
    );
    expect(greps.results).toHaveLength(places.length);
    const globs = await bobTurn(
      tools([
        ...places.map((p) => ({ name: 'Glob', input: { pattern: '**/*', path: p } })),
        { name: 'Glob', input: { pattern: `../${aliceChat}/*` } },
        { name: 'Glob', input: { pattern: `${server.config.AGENT_HOME_DIR}/**/*.jsonl` } },
      ]),
    );
    expect(globs.results).toHaveLength(places.length + 2);
    for (const result of [...greps.results, ...globs.results]) expect(result.content).toContain('outside your workspace');
    expectNoSecrets();
  }, TURNS_TIMEOUT_MS);

  it('Write and Edit change nothing outside its workspace', async () => {
    const planted = [
      path.join(server.config.WORKSPACE_DIR, aliceChat, `planted-${tag}.txt`),
      path.join(server.config.AGENT_HOME_DIR, 'chats', aliceChat, '.claude', `planted-${tag}.json`),
      path.join(server.dir, `planted-${tag}.db`),
      path.join(repoRoot, `planted-${tag}.ts`),
      `/etc/planted-${tag}`,
    ];
    await bobTurn(tools(planted.map((file_path) => ({ name: 'Write', input: { file_path, content: 'planted' } }))));
    await bobTurn(
      tools([
        { name: 'Edit', input: { file_path: aliceFile, old_string: secrets.workspace, new_string: 'edited by bob' } },
        { name: 'Edit', input: { file_path: `../${aliceChat}/${aliceFileName}`, old_string: secrets.workspace, new_string: 'edited' } },
        { name: 'Edit', input: { file_path: sourceFile, old_string: sourceMarker, new_string: 'edited' } },
      ]),
    );
    for (const file of planted) expect(fs.existsSync(file), file).toBe(false);
    expect(fs.readFileSync(aliceFile, 'utf8')).toBe(`${secrets.workspace}\n`);
    expect(fs.readFileSync(sourceFile, 'utf8')).toContain(sourceMarker);
    expectNoSecrets();
  }, TURNS_TIMEOUT_MS);

  it('Bash, allowed by the user, sees no other chat, no database, no service process and no host secret', async () => {
    const aliceWorkspace = path.join(server.config.WORKSPACE_DIR, aliceChat);
    const commands = [
      `cat ${aliceFile}; ls -la ${aliceWorkspace} ${server.config.WORKSPACE_DIR}`,
      `cat ${aliceTranscript}; ls -laR ${path.join(server.config.AGENT_HOME_DIR, 'chats', aliceChat)}; ls -la ${server.config.AGENT_HOME_DIR}`,
      `cat ${aliceImages.join(' ')} ${server.config.AGENT_HOME_DIR}/tmp/*/* 2>&1 | head -c 2000; find / -xdev -name '*.png' 2>/dev/null | head`,
      `ls -la ${server.dir}; strings ${databaseFile} | head -50; grep -ra alice-transcript ${server.dir} 2>&1 | head`,
      `cat /proc/${process.pid}/environ; grep -a service-env-secret /proc/*/environ 2>&1 | head; ps -ef`,
      `cat ${sourceFile} | head -120; ls ${repoRoot}`,
      'cat /etc/shadow; ls /etc; id',
      // Writes where it must not: nothing of these may exist afterwards on the host.
      `echo planted > ${aliceWorkspace}/bash-planted-${tag}; echo planted > ${server.dir}/bash-planted-${tag}; ` +
        `echo planted >> ${aliceFile}; echo planted > /etc/bash-planted-${tag}; echo done`,
    ];
    const bash = await bobTurn(tools(commands.map((command) => ({ name: 'Bash', input: { command, description: 'probe' } }))));
    expect(bash.results).toHaveLength(commands.length);
    // It really ran (the yes answers worked) and found only its own namespace: no service pid, fresh /proc.
    expect(bash.results[4]!.content).toContain('bwrap');
    expect(bash.results[6]!.content).toContain('No such file');
    expect(bash.results[7]!.content).toContain('done');
    expect(fs.existsSync(path.join(aliceWorkspace, `bash-planted-${tag}`))).toBe(false);
    expect(fs.existsSync(path.join(server.dir, `bash-planted-${tag}`))).toBe(false);
    expect(fs.existsSync(`/etc/bash-planted-${tag}`)).toBe(false);
    expect(fs.readFileSync(aliceFile, 'utf8')).toBe(`${secrets.workspace}\n`);
    expectNoSecrets();
  }, TURNS_TIMEOUT_MS);

  it('a link planted in its workspace leads nowhere: the file tools refuse it, Bash finds nothing behind it', async () => {
    await bobTurn(`/bash ln -s ${aliceFile} alice-link.txt && ln -s / root-link && echo linked`);
    const outcome = await bobTurn(
      tools([
        { name: 'Read', input: { file_path: 'alice-link.txt' } },
        { name: 'Read', input: { file_path: 'root-link/etc/shadow' } },
        { name: 'Bash', input: { command: 'cat alice-link.txt; cat root-link/etc/shadow', description: 'probe' } },
      ]),
    );
    expect(outcome.results[0]!.content).toContain('outside your workspace');
    expect(outcome.results[1]!.content).toContain('outside your workspace');
    expectNoSecrets();
  }, TURNS_TIMEOUT_MS);

  it('its own workspace works as before: Write, Read, Edit, Glob, Grep and Bash', async () => {
    const own = await bobTurn(tools([{ name: 'Write', input: { file_path: 'mine.txt', content: `bob-own-${tag}\n` } }]));
    expect(own.results[0]!.is_error).toBe(false);
    await bobTurn(tools([{ name: 'Read', input: { file_path: 'mine.txt' } }]));
    const edit = await bobTurn(tools([{ name: 'Edit', input: { file_path: 'mine.txt', old_string: 'bob-own', new_string: 'bob-edited' } }]));
    expect(edit.results[0]!.is_error).toBe(false);
    const check = await bobTurn(
      tools([
        { name: 'Read', input: { file_path: path.join(server.config.WORKSPACE_DIR, bobChat, 'mine.txt') } },
        { name: 'Glob', input: { pattern: '*.txt' } },
        { name: 'Grep', input: { pattern: 'bob-edited', output_mode: 'content' } },
        { name: 'Bash', input: { command: 'cat mine.txt && echo more >> mine.txt && wc -l < mine.txt && echo tmp > $TMPDIR/t && cat $TMPDIR/t', description: 'probe' } },
      ]),
    );
    const [read, glob, grep, bash] = check.results.map((r) => r.content);
    expect(read).toContain(`bob-edited-${tag}`);
    expect(glob).toContain('mine.txt');
    expect(grep).toContain(`bob-edited-${tag}`);
    expect(bash).toMatch(new RegExp(`bob-edited-${tag}\\s+2\\s+tmp`));
    expect(fs.readFileSync(path.join(server.config.WORKSPACE_DIR, bobChat, 'mine.txt'), 'utf8')).toBe(`bob-edited-${tag}\nmore\n`);
    expectNoSecrets();
  }, TURNS_TIMEOUT_MS);

  it("deleting a chat removes its agent's home (transcripts, images) with its workspace", async () => {
    const home = path.join(server.config.AGENT_HOME_DIR, 'chats', bobChat);
    expect(fs.existsSync(home)).toBe(true);
    expect((await api(server.url, 'DELETE', `/api/chats/${bobChat}`, { token: bob.token })).status).toBe(200);
    expect(fs.existsSync(home)).toBe(false);
    expect(fs.existsSync(path.join(server.config.WORKSPACE_DIR, bobChat))).toBe(false);
  }, TURNS_TIMEOUT_MS);
});

describe.runIf(probe.kind === 'bwrap')('confined agents and the service process', () => {
  it('die with the service, even when it is killed with SIGKILL', async () => {
    const { startFakeModel } = await import('../../fake-model/server.js');
    const fake = await startFakeModel();
    const dir = makeTempDir();
    const service = await startServiceProcess({
      DATABASE_URL: `sqlite:${path.join(dir, 'chat.db')}`,
      WORKSPACE_DIR: path.join(dir, 'workspaces'),
      AGENT_HOME_DIR: path.join(dir, 'agent-home'),
      ANTHROPIC_BASE_URL: fake.url,
      ANTHROPIC_API_KEY: 'test-key',
      PERMISSION_MODE: 'bypassPermissions',
      LOG_LEVEL: 'warn',
    });
    try {
      const chatId = (await api<{ id: string }>(service.url, 'POST', '/api/chats', { json: { title: 't' } })).body.id;
      const client = await TestClient.connect(service.wsUrl);
      await client.chat(chatId, '/slow 400 30');
      await client.waitFor((e) => e.type === 'text_delta' && e.delta === 'chunk3 ');
      expect((await findAgentProcesses(path.join(dir, 'agent-home'))).length).toBeGreaterThan(0);
      service.child.kill('SIGKILL');
      await service.exited;
      await until(async () => (await findAgentProcesses(path.join(dir, 'agent-home'))).length === 0, 'the agents to die', 10_000);
      await client.close();
    } finally {
      service.child.kill('SIGKILL');
      await fake.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 180_000);
});
