// Repositories over a real database of each store: a SQLite file in a temp folder, and a PostgreSQL database of
// its own (created for each test, dropped after it).

import { sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { addUser, AccountError } from '../../src/auth/accounts.js';
import { migrateToLatest, openDatabase, type Db } from '../../src/db/database.js';
import { Store } from '../../src/store/store.js';
import { createTestDatabase, describeEachStore, type TestDatabase } from '../helpers/stores.js';

const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==',
  'base64',
);
const JPEG_BYTES = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46]);
/** Every write happens "at the same instant": nothing may rely on timestamps to order rows. */
const FIXED_TIME = new Date('2025-01-01T12:00:00.000Z');

describeEachStore('store', (kind) => {
let database: TestDatabase;
let db: Db;
let store: Store;
const opened: Db[] = [];

async function open(): Promise<Db> {
  const handle = await openDatabase(database.target);
  opened.push(handle);
  return handle;
}

beforeEach(async () => {
  database = await createTestDatabase(kind);
  db = await open();
  store = new Store(db, () => FIXED_TIME);
});

afterEach(async () => {
  for (const handle of opened.splice(0)) await handle.destroy();
  await database.drop();
});

/** Messages and tool uses of a chat in the one order they share, as [kind, label, position]. */
async function timeline(chatId: string): Promise<Array<[string, string, number]>> {
  const messages = await db.selectFrom('messages').select(['content', 'position']).where('chat_id', '=', chatId).execute();
  const tools = await db.selectFrom('tool_uses').select(['tool_use_id', 'position']).where('chat_id', '=', chatId).execute();
  return [
    ...messages.map((m): [string, string, number] => ['message', m.content, m.position]),
    ...tools.map((t): [string, string, number] => ['tool', t.tool_use_id, t.position]),
  ].sort((a, b) => a[2] - b[2]);
}

describe('positions', () => {
  it('strictly increase across the messages and tool uses of a chat, in write order, at a constant clock', async () => {
    const chat = await store.chats.create('c');
    await store.messages.add({ chatId: chat.id, role: 'user', content: 'm1' });
    await store.toolUses.recordCall({ chatId: chat.id, queryId: null, toolUseId: 't1', toolName: 'Bash', input: {} });
    await store.toolUses.recordCall({ chatId: chat.id, queryId: null, toolUseId: 't2', toolName: 'Read', input: {} });
    await store.messages.add({ chatId: chat.id, role: 'assistant', content: 'm2' });
    await store.toolUses.recordCall({ chatId: chat.id, queryId: null, toolUseId: 't3', toolName: 'Glob', input: {} });
    await store.messages.add({ chatId: chat.id, role: 'assistant', content: 'm3' });

    const rows = await timeline(chat.id);
    expect(rows.map(([, label]) => label)).toEqual(['m1', 't1', 't2', 'm2', 't3', 'm3']);
    const positions = rows.map(([, , position]) => position);
    positions.slice(1).forEach((p, i) => expect(p).toBeGreaterThan(positions[i]!));

    const messages = await store.messages.list(chat.id);
    expect(messages.map((m) => m.content)).toEqual(['m1', 'm2', 'm3']);
    expect(new Set(messages.map((m) => m.timestamp))).toEqual(new Set([FIXED_TIME.toISOString()]));
    expect((await store.toolUses.list(chat.id)).map((t) => t.id)).toEqual(['t1', 't2', 't3']);
  });

  it('are unique when writes to a chat run concurrently', async () => {
    const chat = await store.chats.create();
    await Promise.all(
      Array.from({ length: 10 }, (_, i) => [
        store.messages.add({ chatId: chat.id, role: 'user', content: `m${i}` }),
        store.toolUses.recordCall({ chatId: chat.id, queryId: null, toolUseId: `t${i}`, toolName: 'Bash', input: {} }),
      ]).flat(),
    );
    const positions = (await timeline(chat.id)).map(([, , position]) => position);
    expect(positions).toHaveLength(20);
    expect(new Set(positions).size).toBe(20);
  });

  it('are counted per chat', async () => {
    const a = await store.chats.create('a');
    const b = await store.chats.create('b');
    await store.messages.add({ chatId: a.id, role: 'user', content: 'a1' });
    await store.messages.add({ chatId: a.id, role: 'user', content: 'a2' });
    await store.messages.add({ chatId: b.id, role: 'user', content: 'b1' });
    expect((await timeline(a.id)).map(([, , p]) => p)).toEqual([1, 2]);
    expect((await timeline(b.id)).map(([, , p]) => p)).toEqual([1]);
  });
});

describe('messages', () => {
  it('round-trip images as base64 with their mimeType, in the order given', async () => {
    const chat = await store.chats.create();
    const added = await store.messages.add({
      chatId: chat.id,
      role: 'user',
      content: 'two pictures',
      images: [
        { mediaType: 'image/png', data: PNG },
        { mediaType: 'image/jpeg', data: JPEG_BYTES },
      ],
    });
    const expected = [
      { id: expect.any(String), base64: PNG.toString('base64'), mimeType: 'image/png' },
      { id: expect.any(String), base64: JPEG_BYTES.toString('base64'), mimeType: 'image/jpeg' },
    ];
    expect(added?.images).toEqual(expected);

    const [listed] = await store.messages.list(chat.id);
    expect(listed?.images).toEqual(expected);
    expect(listed?.images).toEqual(added?.images);
    expect(Buffer.from(listed!.images![1]!.base64, 'base64').equals(JPEG_BYTES)).toBe(true);
  });

  it('have images null when they carry none', async () => {
    const chat = await store.chats.create();
    await store.messages.add({ chatId: chat.id, role: 'assistant', content: 'text only', images: [] });
    expect((await store.messages.list(chat.id))[0]?.images).toBeNull();
  });

  it('keep their status', async () => {
    const chat = await store.chats.create();
    await store.messages.add({ chatId: chat.id, role: 'assistant', content: 'half an ans', status: 'interrupted' });
    expect((await store.messages.list(chat.id))[0]?.status).toBe('interrupted');
  });

  it('are not stored for a chat that does not exist', async () => {
    const added = await store.messages.add({ chatId: 'missing', role: 'user', content: 'x', images: [{ mediaType: 'image/png', data: PNG }] });
    expect(added).toBeUndefined();
    expect(await db.selectFrom('messages').selectAll().execute()).toEqual([]);
    expect(await db.selectFrom('message_images').selectAll().execute()).toEqual([]);
  });

  it('move their chat to the top of the list', async () => {
    let clock = new Date('2025-01-01T00:00:00.000Z');
    const ticking = new Store(db, () => clock);
    const older = await ticking.chats.create('older');
    clock = new Date('2025-01-01T00:00:01.000Z');
    await ticking.chats.create('newer');
    clock = new Date('2025-01-01T00:00:02.000Z');
    await ticking.messages.add({ chatId: older.id, role: 'user', content: 'hi' });
    expect((await ticking.chats.list()).map((c) => c.title)).toEqual(['older', 'newer']);
  });
});

describe('tool uses', () => {
  it('recordResult completes the tool use of that chat with that id, and no other', async () => {
    const chat = await store.chats.create();
    const other = await store.chats.create();
    const call = (chatId: string, toolUseId: string) =>
      store.toolUses.recordCall({ chatId, queryId: null, toolUseId, toolName: 'Bash', input: { command: toolUseId } });
    await call(chat.id, 'toolu_1');
    await call(chat.id, 'toolu_2');
    await call(other.id, 'toolu_2');

    await store.toolUses.recordResult({ chatId: chat.id, toolUseId: 'toolu_2', content: 'boom', isError: true });

    expect(await store.toolUses.list(chat.id)).toEqual([
      { id: 'toolu_1', tool_name: 'Bash', tool_input: { command: 'toolu_1' }, result_content: null, is_error: false, timestamp: FIXED_TIME.toISOString() },
      { id: 'toolu_2', tool_name: 'Bash', tool_input: { command: 'toolu_2' }, result_content: 'boom', is_error: true, timestamp: FIXED_TIME.toISOString() },
    ]);
    expect(await store.toolUses.list(other.id)).toEqual([expect.objectContaining({ id: 'toolu_2', result_content: null, is_error: false })]);

    await store.toolUses.recordResult({ chatId: chat.id, toolUseId: 'toolu_1', content: 'ok', isError: false });
    expect((await store.toolUses.list(chat.id))[0]).toMatchObject({ result_content: 'ok', is_error: false });
  });
});

describe('clear', () => {
  it('empties the chat\'s conversation and forgets its SDK session, keeping the chat and other chats', async () => {
    const chat = await store.chats.create('to clear');
    const other = await store.chats.create('untouched');
    for (const c of [chat, other]) {
      const queryId = await store.queries.start(c.id);
      await store.messages.add({ chatId: c.id, role: 'user', content: 'q', queryId, images: [{ mediaType: 'image/png', data: PNG }] });
      await store.toolUses.recordCall({ chatId: c.id, queryId, toolUseId: 'toolu_x', toolName: 'Read', input: {} });
      await store.messages.add({ chatId: c.id, role: 'assistant', content: 'a', queryId });
      await store.chats.setSdkSessionId(c.id, `session-${c.title}`);
    }

    await store.messages.clear(chat.id);

    expect(await store.chats.get(chat.id)).toMatchObject({ title: 'to clear', sdk_session_id: null });
    expect(await store.messages.list(chat.id)).toEqual([]);
    expect(await store.toolUses.list(chat.id)).toEqual([]);
    expect(await db.selectFrom('queries').select('id').where('chat_id', '=', chat.id).execute()).toEqual([]);
    expect(await db.selectFrom('message_images').select('id').execute()).toHaveLength(1);

    expect(await store.chats.get(other.id)).toMatchObject({ sdk_session_id: 'session-untouched' });
    expect(await store.messages.list(other.id)).toHaveLength(2);
    expect(await store.toolUses.list(other.id)).toHaveLength(1);
  });

  it('lets the chat continue with new messages afterwards', async () => {
    const chat = await store.chats.create();
    await store.messages.add({ chatId: chat.id, role: 'user', content: 'before' });
    await store.messages.clear(chat.id);
    await store.messages.add({ chatId: chat.id, role: 'user', content: 'after' });
    expect((await store.messages.list(chat.id)).map((m) => m.content)).toEqual(['after']);
  });
});

describe('queries', () => {
  it('failAbandoned marks only running queries as errors, with the reason', async () => {
    const chat = await store.chats.create();
    const running1 = await store.queries.start(chat.id);
    const running2 = await store.queries.start(chat.id);
    const done = await store.queries.start(chat.id);
    await store.queries.finish(done, { status: 'complete', costUsd: 0.5, durationMs: 1200 });

    expect(await store.queries.failAbandoned('server restarted')).toBe(2);

    for (const id of [running1, running2]) {
      expect(await store.queries.get(id)).toMatchObject({ status: 'error', error: 'server restarted', ended_at: FIXED_TIME.toISOString() });
    }
    expect(await store.queries.get(done)).toMatchObject({ status: 'complete', cost_usd: 0.5, duration_ms: 1200, error: null });
    expect(await store.queries.failAbandoned('again')).toBe(0);
  });
});

describe('chats', () => {
  it('deleting a chat removes its messages, images, tool uses and queries', async () => {
    const chat = await store.chats.create();
    const queryId = await store.queries.start(chat.id);
    await store.messages.add({ chatId: chat.id, role: 'user', content: 'x', queryId, images: [{ mediaType: 'image/png', data: PNG }] });
    await store.toolUses.recordCall({ chatId: chat.id, queryId, toolUseId: 't', toolName: 'Bash', input: {} });

    expect(await store.chats.delete(chat.id)).toBe(true);
    expect(await store.chats.delete(chat.id)).toBe(false);
    for (const table of ['messages', 'message_images', 'tool_uses', 'queries', 'chats'] as const) {
      expect(await db.selectFrom(table).selectAll().execute(), table).toEqual([]);
    }
  });
});

describe('permission rules', () => {
  const touch = { tool_name: 'Bash', kind: 'command', pattern: 'touch a.txt', description: 'Bash: exactly the command `touch a.txt`' } as const;
  const npmTest = { tool_name: 'Bash', kind: 'command_prefix', pattern: 'npm test *', description: 'Bash: commands that start with `npm test`' } as const;

  it('are kept per chat, once each, survive a clear of the history, and are revoked one by one', async () => {
    const chat = await store.chats.create();
    const other = await store.chats.create();
    const first = await store.permissionRules.add(chat.id, touch);
    expect(first).toMatchObject({ ...touch, chat_id: chat.id, created_at: FIXED_TIME.toISOString() });
    expect(await store.permissionRules.add(chat.id, touch), 'the same rule twice is one rule').toEqual(first);
    await store.permissionRules.add(chat.id, npmTest);
    await store.permissionRules.add(other.id, touch);

    expect((await store.permissionRules.list(chat.id)).map((r) => r.pattern).sort()).toEqual(['npm test *', 'touch a.txt']);
    await store.messages.clear(chat.id);
    expect(await store.permissionRules.list(chat.id)).toHaveLength(2);

    expect(await store.permissionRules.remove(other.id, first!.id), "another chat's rule id revokes nothing").toBe(false);
    expect(await store.permissionRules.remove(chat.id, first!.id)).toBe(true);
    expect(await store.permissionRules.remove(chat.id, first!.id)).toBe(false);
    expect((await store.permissionRules.list(chat.id)).map((r) => r.pattern)).toEqual(['npm test *']);
    expect(await store.permissionRules.list(other.id)).toHaveLength(1);
  });

  it('go with their chat, and are not stored for a chat that does not exist', async () => {
    const chat = await store.chats.create();
    await store.permissionRules.add(chat.id, touch);
    expect(await store.chats.delete(chat.id)).toBe(true);
    expect(await db.selectFrom('permission_rules').selectAll().execute()).toEqual([]);
    expect(await store.permissionRules.add(chat.id, touch)).toBeUndefined();
    expect(await store.permissionRules.add('no-such-chat', touch)).toBeUndefined();
  });
});

describe('the same behaviour on every store', () => {
  it('finds chats by title or message text case-insensitively, with % and _ taken literally', async () => {
    const byTitle = await store.chats.create('Quarterly REPORT');
    const byMessage = await store.chats.create('other');
    await store.messages.add({ chatId: byMessage.id, role: 'assistant', content: 'the report is 100% done_now' });
    await store.chats.create('unrelated');
    const titles = async (q: string) => (await store.chats.search(q)).map((c) => c.title).sort();
    expect(await titles('report')).toEqual(['Quarterly REPORT', 'other']);
    expect(await titles('RePoRt')).toEqual(['Quarterly REPORT', 'other']);
    expect(await titles('100%')).toEqual(['other']);
    expect(await titles('0%')).toEqual(['other']);
    expect(await titles('%')).toEqual(['other']);
    expect(await titles('e_n')).toEqual(['other']);
    expect(await titles('d_n')).toEqual([]);
    expect(byTitle.id).toBeDefined();
  });

  it('finds message text through the search index: CJK, an answer once it ended, nothing of a deleted chat', async () => {
    const chinese = await store.chats.create('中文');
    await store.messages.add({ chatId: chinese.id, role: 'user', content: '请帮我检查集成测试为什么失败' });
    const streaming = await store.chats.create('streaming');
    const answer = await store.messages.add({ chatId: streaming.id, role: 'assistant', content: 'partial', status: 'streaming' });
    const gone = await store.chats.create('gone');
    await store.messages.add({ chatId: gone.id, role: 'user', content: 'a needle in the haystack' });
    const titles = async (q: string) => (await store.chats.search(q)).map((c) => c.title).sort();

    expect(await titles('集成测试')).toEqual(['中文']);
    expect(await titles('测试')).toEqual(['中文']);
    expect(await titles('needle in')).toEqual(['gone']);
    await store.messages.update(answer!.id, 'the finished answer mentions kubernetes', 'complete');
    expect(await titles('kubernetes')).toEqual(['streaming']);
    await store.messages.update(answer!.id, 'rewritten without it', 'complete');
    expect(await titles('kubernetes')).toEqual([]);
    expect(await store.chats.delete(gone.id)).toBe(true);
    expect(await titles('needle in')).toEqual([]);
    await store.messages.clear(chinese.id);
    expect(await titles('集成测试')).toEqual([]);
  });

  it('finds titles through the search index: renamed chats by their new title only, CJK titles, deleted chats never', async () => {
    const renamed = await store.chats.create('Budget planning 2026');
    const cjk = await store.chats.create('季度报告草稿');
    const deleted = await store.chats.create('Budget review');
    const titles = async (q: string) => (await store.chats.search(q)).map((c) => c.title).sort();
    expect(await titles('budget')).toEqual(['Budget planning 2026', 'Budget review']);
    await store.chats.rename(renamed.id, 'Offsite agenda');
    expect(await titles('planning')).toEqual([]);
    expect(await titles('offsite agenda')).toEqual(['Offsite agenda']);
    expect(await titles('报告草')).toEqual(['季度报告草稿']);
    expect(await titles('报告')).toEqual(['季度报告草稿']);
    expect(await store.chats.delete(deleted.id)).toBe(true);
    expect(await titles('budget')).toEqual([]);
    expect(cjk.id).toBeDefined();
  });

  it('orders chats with the same activity time by id, in lists and across pages', async () => {
    const chats = await Promise.all(Array.from({ length: 7 }, (_, i) => store.chats.create(`c${i}`)));
    const expected = chats.map((c) => c.id).sort();
    expect((await store.chats.list()).map((c) => c.id)).toEqual(expected);
    const pages: string[] = [];
    let before: string | undefined;
    for (;;) {
      const page = await store.chats.page(undefined, { limit: 3, ...(before ? { before } : {}) });
      pages.push(...page!.chats.map((c) => c.id));
      if (!page!.hasMore) break;
      before = page!.chats.at(-1)!.id;
    }
    expect(pages).toEqual(expected);
  });

  it('returns counts as numbers and costs as exact 8-byte floats', async () => {
    const chat = await store.chats.create();
    expect(await store.chats.count({ userId: null })).toBe(1);
    const queryId = await store.queries.start(chat.id);
    await store.queries.finish(queryId, { status: 'complete', costUsd: 0.123456789012345, durationMs: 2_000_000_000 });
    const row = await store.queries.get(queryId);
    expect(row).toMatchObject({ cost_usd: 0.123456789012345, duration_ms: 2_000_000_000 });
    expect(typeof row!.cost_usd).toBe('number');
  });

  it('turns answers left streaming into interrupted ones at recovery, dropping those with no text', async () => {
    const chat = await store.chats.create();
    const kept = await store.messages.add({ chatId: chat.id, role: 'assistant', content: 'half an ans', status: 'streaming' });
    await store.messages.add({ chatId: chat.id, role: 'assistant', content: '', status: 'streaming' });
    await store.messages.add({ chatId: chat.id, role: 'assistant', content: 'done', status: 'complete' });
    expect(await store.messages.interruptAbandonedStreams()).toBe(2);
    expect((await store.messages.list(chat.id)).map((m) => [m.id === kept!.id, m.content, m.status])).toEqual([
      [true, 'half an ans', 'interrupted'],
      [false, 'done', 'complete'],
    ]);
  });
});

describe('under concurrent writers (several connections, as several service processes have)', () => {
  /**
   * Postgres: three handles with pools of their own, like three service processes. SQLite is the one-process store:
   * its single connection takes transactions in turn (two handles in one process would block each other inside
   * the synchronous driver), so there the writers share one handle.
   */
  const handles = async () => (kind === 'postgres' ? [db, await open(), await open()] : [db]);

  it('keeps the chat quota exactly: concurrent creates never overshoot it', async () => {
    const user = await store.users.create('quota');
    const writers = await handles();
    const attempts = Array.from({ length: 24 }, (_, i) =>
      new Store(writers[i % writers.length]!, () => FIXED_TIME).chats.createWithinLimit(`c${i}`, { userId: user.id }, 5),
    );
    const created = (await Promise.all(attempts)).filter((c) => c !== undefined);
    expect(created).toHaveLength(5);
    expect(await store.chats.count({ userId: user.id })).toBe(5);

    // The same for the chats without an owner (AUTH_DISABLED counts them together).
    const anonymous = await Promise.all(
      Array.from({ length: 12 }, (_, i) => new Store(writers[i % writers.length]!).chats.createWithinLimit('x', { userId: null }, 3)),
    );
    expect(anonymous.filter((c) => c !== undefined)).toHaveLength(3);
  });

  it('gives concurrent writes to one chat distinct positions from separate connections', async () => {
    const chat = await store.chats.create();
    const writers = await handles();
    await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        new Store(writers[i % writers.length]!).messages.add({ chatId: chat.id, role: 'user', content: `m${i}` }),
      ),
    );
    const positions = (await store.messages.list(chat.id)).map((m) => m.content);
    expect(new Set(positions).size).toBe(30);
    const rows = await db.selectFrom('messages').select('position').where('chat_id', '=', chat.id).execute();
    expect(new Set(rows.map((r) => r.position)).size).toBe(30);
  });

  it('lets exactly one of two concurrent adds of the same user name succeed; the other is a clear refusal', async () => {
    const other = new Store((await handles()).at(-1)!);
    const results = await Promise.allSettled([addUser(store, 'alice'), addUser(other, 'alice'), addUser(store, 'alice')]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results.filter((r): r is PromiseRejectedResult => r.status === 'rejected')) {
      expect(r.reason).toBeInstanceOf(AccountError);
      expect((r.reason as Error).message).toBe('user "alice" already exists');
    }
    expect(await store.users.count()).toBe(1);
  });
});

describe('openDatabase', () => {
  it.runIf(kind === 'sqlite')('runs SQLite in WAL mode with foreign keys on', async () => {
    const pragma = async (name: string) => Object.values((await sql.raw(`pragma ${name}`).execute(db)).rows[0] as object)[0];
    expect(await pragma('journal_mode')).toBe('wal');
    expect(await pragma('foreign_keys')).toBe(1);
  });

  it.runIf(kind === 'sqlite')('creates the SQLite column types the first migration always created (history is kept)', async () => {
    const types = async (table: string) =>
      Object.fromEntries(
        ((await sql.raw(`pragma table_info(${table})`).execute(db)).rows as Array<{ name: string; type: string }>).map((c) => [c.name, c.type.toLowerCase()]),
      );
    expect(await types('message_images')).toMatchObject({ data: 'blob', ordinal: 'integer' });
    expect(await types('queries')).toMatchObject({ cost_usd: 'real', duration_ms: 'integer' });
  });

  it.runIf(kind === 'postgres')('stores images as bytea and costs as 8-byte floats on Postgres', async () => {
    const { rows } = await sql<{ table_name: string; column_name: string; data_type: string }>`
      select table_name, column_name, data_type from information_schema.columns
      where (table_name, column_name) in (('message_images', 'data'), ('queries', 'cost_usd'))`.execute(db);
    expect(Object.fromEntries(rows.map((r) => [`${r.table_name}.${r.column_name}`, r.data_type]))).toEqual({
      'message_images.data': 'bytea',
      'queries.cost_usd': 'double precision',
    });
  });
});

describe('migrations', () => {
  it('run again without error on a database that is already up to date, keeping its data', async () => {
    const chat = await store.chats.create('survivor');
    await migrateToLatest(db);

    const second = await open();
    expect(await new Store(second).chats.get(chat.id)).toEqual(chat);

    const third = await open();
    expect((await new Store(third).chats.list()).map((c) => c.title)).toEqual(['survivor']);
  });
});
});
