// The store failing under a running service: the disk full (a small tmpfs really filled), the database locked by
// another writer beyond the busy timeout, and on Postgres the connections cut and a table locked (slow storage).
// Each time the service answers with a clear error, keeps serving what it can, loses no stored message and
// recovers by itself once the fault clears.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import type { ServerEvent } from '../../src/protocol/ws.js';
import { createChat, startAgentServer, type AgentTestServer } from '../helpers/agent-server.js';
import { createTestDatabase, storeAvailable, type TestDatabase } from '../helpers/stores.js';
import { makeTempDir } from '../helpers/test-server.js';
import { TestClient } from '../helpers/ws-client.js';
import { sleep } from './support.js';

/** A real full disk needs a small filesystem of its own: a tmpfs, which needs root (CAP_SYS_ADMIN). */
function canMountTmpfs(): boolean {
  const probe = makeTempDir('agent-chat-mount-probe-');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probe], { stdio: 'ignore' });
    execFileSync('umount', [probe], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  } finally {
    fs.rmSync(probe, { recursive: true, force: true });
  }
}
const tmpfsAvailable = canMountTmpfs();
if (!tmpfsAvailable) {
  if (process.env.CI) throw new Error('CI runs the disk-full test: mounting a tmpfs failed (it needs root)');
  console.warn('\n  SKIPPING the disk-full test: mounting a tmpfs needs root (CAP_SYS_ADMIN).\n');
}

/** Writes a file until the filesystem has no byte left; returns its path (delete it and the space is back). */
function fillDisk(dir: string): string {
  const file = path.join(dir, 'filler');
  const fd = fs.openSync(file, 'w');
  try {
    for (const size of [1024 * 1024, 64 * 1024, 4096, 512, 1]) {
      const chunk = Buffer.alloc(size, 1);
      try {
        for (;;) fs.writeSync(fd, chunk);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  return file;
}

const isFrameError = (chatId: string) => (e: ServerEvent) => e.type === 'error' && e.chat_id === chatId && e.query_id === undefined;
const chunks = (n: number) => Array.from({ length: n }, (_, i) => `chunk${i + 1} `).join('');

async function messages(server: AgentTestServer, chatId: string): Promise<{ role: string; content: string; status?: string }[]> {
  const res = await fetch(`${server.url}/api/chats/${chatId}/messages`);
  expect(res.status).toBe(200);
  return (await res.json()) as { role: string; content: string; status?: string }[];
}

describe('storage faults', () => {
  let server: AgentTestServer | undefined;
  let client: TestClient | undefined;
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    await client?.close();
    client = undefined;
    await server?.close();
    server = undefined;
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it.skipIf(!tmpfsAvailable)(
    'SQLite on a full disk: a clear error for new messages, reads still served, the answer streamed meanwhile stored once space is back',
    async () => {
      const dir = makeTempDir('agent-chat-disk-full-');
      const disk = path.join(dir, 'db');
      fs.mkdirSync(disk);
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', disk]);
      cleanups.push(() => {
        execFileSync('umount', ['-l', disk]);
        fs.rmSync(dir, { recursive: true, force: true });
      });
      server = await startAgentServer({ DATABASE_URL: `sqlite:${path.join(disk, 'chat.db')}`, STREAM_CHECKPOINT_MS: '200' }, { dir });
      const chatId = await createChat(server.url);
      client = await TestClient.connect(server.wsUrl);
      expect(await client.waitForEnd(await client.chat(chatId, 'before the fault'))).toMatchObject({ type: 'result', success: true });

      // The disk fills while an answer streams: the user still gets the whole answer, its rows wait for space.
      const during = await client.chat(chatId, '/slow 30 100');
      await client.waitFor((e) => e.type === 'text_delta' && e.chat_id === chatId && e.delta === 'chunk3 ');
      const filler = fillDisk(disk);
      expect(await client.waitForEnd(during)).toMatchObject({ type: 'result', success: true });
      expect(client.streamedText(during)).toBe(chunks(30));

      // A new message is refused at once with a readable error, nothing stored; the socket stays open.
      const from = client.events.length;
      client.send({ type: 'chat', chat_id: chatId, content: 'during the fault' });
      const refused = await client.waitFor(isFrameError(chatId), { from });
      expect(refused).toMatchObject({ code: 'storage_unavailable' });
      expect((refused as { error: string }).error).toMatch(/disk is full/);
      expect(client.events.slice(from).some((e) => e.type === 'user_message')).toBe(false);
      const other = await fetch(`${server.url}/api/chats`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      expect(other.status).toBe(503);
      expect(other.headers.get('retry-after')).toBe('5');
      expect(((await other.json()) as { detail: string }).detail).toMatch(/disk is full/);
      // What is stored is still served.
      expect((await fetch(`${server.url}/api/chats`)).status).toBe(200);
      expect((await messages(server, chatId)).map((m) => m.content).slice(0, 2)).toEqual(['before the fault', 'Echo: before the fault']);

      // Space is back: the answer streamed during the fault lands whole, and the chat answers again.
      fs.rmSync(filler);
      await expect
        .poll(async () => (await messages(server!, chatId)).at(-1), { timeout: 20_000, interval: 250 })
        .toMatchObject({ role: 'assistant', content: chunks(30), status: 'complete' });
      expect(await client.waitForEnd(await client.chat(chatId, 'after the fault'))).toMatchObject({ type: 'result', success: true });
      expect((await messages(server, chatId)).map((m) => m.role)).toEqual(['user', 'assistant', 'user', 'assistant', 'user', 'assistant']);
    },
  );

  it('SQLite locked by another writer beyond the busy timeout: a clear error, then it recovers by itself', async () => {
    const dir = makeTempDir('agent-chat-busy-');
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    server = await startAgentServer({}, { dir });
    const chatId = await createChat(server.url);
    client = await TestClient.connect(server.wsUrl);
    expect(await client.waitForEnd(await client.chat(chatId, 'before the lock'))).toMatchObject({ type: 'result', success: true });

    // Another process (a maintenance script, say) holds the write lock until it is killed.
    const holder = await holdWriteLock(path.join(dir, 'chat.db'));
    cleanups.push(() => void holder.kill('SIGKILL'));
    const from = client.events.length;
    client.send({ type: 'chat', chat_id: chatId, content: 'while locked' });
    const refused = await client.waitFor(isFrameError(chatId), { from, timeoutMs: 30_000 });
    expect(refused).toMatchObject({ code: 'storage_unavailable' });
    expect((refused as { error: string }).error).toMatch(/locked by another writer/);
    expect((await fetch(`${server.url}/api/chats`)).status).toBe(200);

    holder.kill('SIGKILL');
    await new Promise((resolve) => holder.once('exit', resolve));
    expect(await client.waitForEnd(await client.chat(chatId, 'after the lock'))).toMatchObject({ type: 'result', success: true });
    expect((await messages(server, chatId)).map((m) => m.content)).toEqual([
      'before the lock',
      'Echo: before the lock',
      'after the lock',
      'Echo: after the lock',
    ]);
  });

  describe.skipIf(!storeAvailable('postgres'))('on Postgres', () => {
    let db: TestDatabase | undefined;
    afterEach(async () => {
      await client?.close();
      client = undefined;
      await server?.close();
      server = undefined;
      await db?.drop();
      db = undefined;
    });

    it('connections cut while the answer writes wait: they are retried on new connections, nothing is lost', async () => {
      db = await createTestDatabase('postgres');
      server = await startAgentServer({ DATABASE_URL: db.url, STREAM_CHECKPOINT_MS: '200' });
      const chatId = await createChat(server.url);
      client = await TestClient.connect(server.wsUrl);
      const during = await client.chat(chatId, '/slow 30 50');
      await client.waitFor((e) => e.type === 'text_delta' && e.chat_id === chatId && e.delta === 'chunk3 ');
      // A lock holds the answer's writes in flight until the answer has ended; then every connection of the service
      // is cut, as a Postgres restart or failover does, and the writes fail mid-way.
      const admin = new pg.Client({ connectionString: db.url });
      await admin.connect();
      await admin.query('begin');
      await admin.query('lock table messages in access exclusive mode');
      expect(await client.waitForEnd(during)).toMatchObject({ type: 'result', success: true });
      await expect
        .poll(async () => {
          const { rows } = await admin.query<{ n: number }>(
            "select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'",
          );
          return rows[0]!.n;
        })
        .toBeGreaterThan(0);
      const { rowCount } = await admin.query(
        'select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()',
      );
      await admin.query('rollback');
      await admin.end();
      expect(rowCount).toBeGreaterThan(0);
      await expect
        .poll(async () => (await messages(server!, chatId)).at(-1), { timeout: 20_000, interval: 250 })
        .toMatchObject({ role: 'assistant', content: chunks(30), status: 'complete' });
      expect(await client.waitForEnd(await client.chat(chatId, 'after the cut'))).toMatchObject({ type: 'result', success: true });
    });

    it('a query ends (result) only once its answer is stored: a REST read right after it has the whole answer', async () => {
      db = await createTestDatabase('postgres');
      server = await startAgentServer({ DATABASE_URL: db.url });
      const chatId = await createChat(server.url);
      client = await TestClient.connect(server.wsUrl);
      const during = await client.chat(chatId, '/slow 10 30');
      await client.waitFor((e) => e.type === 'text_delta' && e.chat_id === chatId);
      // Writes wait (reads do not) until 300 ms after the answer's text ended: the result must wait for them.
      const locker = new pg.Client({ connectionString: db.url });
      await locker.connect();
      await locker.query('begin');
      await locker.query('lock table messages in exclusive mode');
      await client.waitFor((e) => e.type === 'stream_end' && e.chat_id === chatId);
      const unlocked = sleep(300).then(() => locker.query('rollback')).then(() => locker.end());
      expect(await client.waitForEnd(during)).toMatchObject({ type: 'result', success: true });
      expect((await messages(server, chatId)).at(-1)).toMatchObject({ role: 'assistant', content: chunks(10), status: 'complete' });
      await unlocked;
    });

    it('a table locked for seconds (slow storage) never holds up the stream; the answer is stored when it clears', async () => {
      db = await createTestDatabase('postgres');
      server = await startAgentServer({ DATABASE_URL: db.url, STREAM_CHECKPOINT_MS: '200' });
      const chatId = await createChat(server.url);
      client = await TestClient.connect(server.wsUrl);
      const during = await client.chat(chatId, '/slow 40 50');
      await client.waitFor((e) => e.type === 'text_delta' && e.chat_id === chatId && e.delta === 'chunk2 ');
      // Arrivals are counted from chunk2 on, taken in the same tick: deltas arriving while the lock is being taken
      // (three round trips on a slow machine) must count too, or too few would be left to count.
      const arrivals: number[] = [];
      const tail = client.events.length;
      const watch = setInterval(() => {
        for (const e of client!.events.slice(tail + arrivals.length)) arrivals.push(e.type === 'text_delta' ? Date.now() : 0);
      }, 5);
      const locker = new pg.Client({ connectionString: db.url });
      try {
        await locker.connect();
        await locker.query('begin');
        await locker.query('lock table messages in access exclusive mode');
        expect(await client.waitForEnd(during)).toMatchObject({ type: 'result', success: true });
      } finally {
        clearInterval(watch);
        await locker.query('rollback').catch(() => undefined);
        await locker.end();
      }
      const deltaTimes = arrivals.filter((t) => t > 0);
      expect(deltaTimes.length).toBeGreaterThan(30);
      const gaps = deltaTimes.slice(1).map((t, i) => t - deltaTimes[i]!);
      // Deltas come every 50 ms from the model; a stream held behind the locked writes would show a gap of seconds.
      expect(Math.max(...gaps)).toBeLessThan(1_000);
      await expect
        .poll(async () => (await messages(server!, chatId)).at(-1), { timeout: 20_000, interval: 250 })
        .toMatchObject({ role: 'assistant', content: chunks(40), status: 'complete' });
    });
  });
});

/** A child process holding SQLite's write lock on `file` (BEGIN IMMEDIATE) until it is killed. */
async function holdWriteLock(file: string): Promise<ChildProcess> {
  const script = `
    const db = require('better-sqlite3')(${JSON.stringify(file)});
    db.exec('BEGIN IMMEDIATE');
    process.stdout.write('locked\\n');
    setInterval(() => {}, 1000);
  `;
  const child = spawn(process.execPath, ['-e', script], { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => d.toString().includes('locked') && resolve());
    child.once('exit', (code) => reject(new Error(`the lock holder exited (${code})`)));
  });
  return child;
}
