// The operator CLI (`npm run cli -- ...`), run as a child process against a temporary database, as an operator
// would run it: output, exit codes, what it stores, and that a running service picks its changes up. (Each run
// starts Node and tsx: the refusals of each command are tested in-process in test/unit/auth.test.ts.)

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SETTING_AUTH_ENABLED } from '../../src/store/settings.repository.js';
import { api, openStore } from '../helpers/auth.js';
import { makeTempDir, startTestServer, type TestServer } from '../helpers/test-server.js';

const root = path.resolve(import.meta.dirname, '../..');
const TOKEN = /act_[A-Za-z0-9_-]{43}/;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

let dir: string;
let server: TestServer | undefined;

function cli(...args: string[]): Promise<Run> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], {
    cwd: root,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? '/root',
      DATABASE_URL: `sqlite:${path.join(dir, 'chat.db')}`,
      WORKSPACE_DIR: path.join(dir, 'workspaces'),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
}

const tokenOf = (run: Run): string => {
  const token = TOKEN.exec(run.stdout)?.[0];
  if (!token) throw new Error(`no token printed:\n${run.stdout}\n${run.stderr}`);
  return token;
};

beforeEach(() => {
  dir = makeTempDir('agent-chat-cli-');
});
afterEach(async () => {
  await server?.close();
  server = undefined;
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('npm run cli', () => {
  it('prints its usage: exit 0 when asked, 2 without a command or with a wrong one', async () => {
    const help = await cli('--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('users add NAME');
    expect(help.stdout).toContain('tokens revoke PREFIX_OR_ID');

    const none = await cli();
    expect(none.code).toBe(2);
    const wrong = await cli('users', 'frobnicate');
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain('unknown command "users frobnicate"');
  }, 120_000);

  it('users add: prints the user and a token once, stores only its hash, and turns authentication on', async () => {
    const run = await cli('users', 'add', 'alice');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('Added user alice');
    const token = tokenOf(run);

    const { store, close } = await openStore(dir);
    try {
      expect(await store.settings.get(SETTING_AUTH_ENABLED)).toBe('1');
      const row = await store.db.selectFrom('api_tokens').selectAll().executeTakeFirstOrThrow();
      expect(row.token_hash).toBe(createHash('sha256').update(token).digest('hex'));
      expect(row.prefix).toBe(token.slice(0, 8));
      expect(Object.values(row)).not.toContain(token);
    } finally {
      await close();
    }

    const again = await cli('users', 'add', 'alice');
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('user "alice" already exists');
    const badName = await cli('users', 'add', 'no spaces please');
    expect(badName.code).toBe(1);
    expect(badName.stderr).toContain('invalid user name');
  }, 120_000);

  it('tokens create / list / revoke', async () => {
    tokenOf(await cli('users', 'add', 'bob'));
    const created = await cli('tokens', 'create', 'bob', '--name', 'laptop');
    expect(created.code).toBe(0);
    const laptop = tokenOf(created);

    const list = await cli('tokens', 'list');
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/PREFIX\s+USER\s+NAME\s+CREATED\s+LAST USED\s+REVOKED\s+ID/);
    expect(list.stdout).toContain(laptop.slice(0, 8));
    expect(list.stdout).toContain('laptop');
    expect(list.stdout).not.toContain(laptop);

    const revoked = await cli('tokens', 'revoke', laptop.slice(0, 8));
    expect(revoked.code).toBe(0);
    expect(revoked.stdout).toContain(`Revoked token ${laptop.slice(0, 8)}`);
    const after = await cli('tokens', 'list', 'bob');
    const line = after.stdout.split('\n').find((l) => l.includes('laptop'))!;
    expect(line).toMatch(/\d{4}-\d\d-\d\dT[\d:.]+Z\s+-\s+\d{4}-\d\d-\d\dT/); // created, never used, revoked
  }, 120_000);

  it('users list and users remove (with their chats and workspaces)', async () => {
    tokenOf(await cli('users', 'add', 'carol'));
    const { store, close } = await openStore(dir);
    const carol = (await store.users.byName('carol'))!;
    const chat = await store.chats.create('carol chat', { userId: carol.id });
    const unowned = await store.chats.create('local chat');
    await close();
    const workspace = path.join(dir, 'workspaces', chat.id);
    fs.mkdirSync(workspace, { recursive: true });

    const list = await cli('users', 'list');
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/carol\s+[0-9a-f-]{36}\s+\S+\s+1\s+1/);

    const removed = await cli('users', 'remove', 'carol');
    expect(removed.code).toBe(0);
    expect(removed.stdout).toContain('Removed user carol, their tokens and 1 chat.');
    expect(fs.existsSync(workspace)).toBe(false);
    const check = await openStore(dir);
    try {
      expect(await check.store.chats.get(chat.id)).toBeUndefined();
      expect(await check.store.chats.get(unowned.id)).toBeDefined();
      expect(await check.store.tokens.list()).toEqual([]);
      // Authentication stays on with no user left.
      expect(await check.store.settings.get(SETTING_AUTH_ENABLED)).toBe('1');
    } finally {
      await check.close();
    }
  }, 120_000);

  it('chats assign: gives ownerless chats of local mode to a user, never a chat another user owns', async () => {
    tokenOf(await cli('users', 'add', 'dora'));
    tokenOf(await cli('users', 'add', 'eve'));
    const { store, close } = await openStore(dir);
    const eve = (await store.users.byName('eve'))!;
    const [a, b, c] = [await store.chats.create('a'), await store.chats.create('b'), await store.chats.create('c')];
    const eves = await store.chats.create('eve chat', { userId: eve.id });
    await close();

    const one = await cli('chats', 'assign', 'dora', a.id);
    expect(one.code).toBe(0);
    expect(one.stdout).toContain(`Assigned 1 chat to dora.`);
    const refused = await cli('chats', 'assign', 'dora', eves.id);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(eves.id);
    expect((await cli('chats', 'assign', 'dora')).code).toBe(2);
    expect((await cli('chats', 'assign', 'nobody', '--all-ownerless')).code).toBe(1);
    const all = await cli('chats', 'assign', 'dora', '--all-ownerless');
    expect(all.code).toBe(0);
    expect(all.stdout).toContain('Assigned 2 chats to dora.');

    const check = await openStore(dir);
    try {
      const dora = (await check.store.users.byName('dora'))!;
      const doras = await check.store.chats.list({ userId: dora.id });
      expect(doras.map((chat) => chat.id).sort()).toEqual([a.id, b.id, c.id].sort());
      expect((await check.store.chats.list({ userId: eve.id })).map((chat) => chat.id)).toEqual([eves.id]);
      expect(await check.store.chats.list({ userId: null })).toEqual([]);
    } finally {
      await check.close();
    }
  }, 120_000);

  it('changes a running service: users add turns auth on within seconds, tokens revoke takes effect at once', async () => {
    server = await startTestServer({}, dir);
    expect((await api(server.url, 'GET', '/api/chats')).status).toBe(200);

    const added = await cli('users', 'add', 'dave');
    const token = tokenOf(added);
    const deadline = Date.now() + 5_000;
    let status = 200;
    while (status !== 401 && Date.now() < deadline) {
      status = (await api(server.url, 'GET', '/api/chats')).status;
      if (status !== 401) await delay(100);
    }
    expect(status).toBe(401);
    expect((await api(server.url, 'GET', '/api/chats', { token })).status).toBe(200);

    expect((await cli('tokens', 'revoke', token.slice(0, 8))).code).toBe(0);
    expect((await api(server.url, 'GET', '/api/chats', { token })).status).toBe(401);
  }, 120_000);
});
