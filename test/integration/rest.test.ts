// The REST half of the wire contract, over real HTTP against a real server on a temp SQLite file.

import fs from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openDatabase, type Db } from '../../src/db/database.js';
import type { Chat, ChatMessage } from '../../src/protocol/chat.js';
import { Store } from '../../src/store/store.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

// A 1x1 PNG.
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==',
  'base64',
);
const UNKNOWN_ID = '00000000-0000-4000-8000-000000000000';

interface Answer<T> {
  status: number;
  contentType: string;
  body: T;
}

interface RequestOptions {
  /** Sent as JSON with `Content-Type: application/json`. */
  json?: unknown;
  /** Sent verbatim (with the given headers). */
  raw?: string;
  headers?: Record<string, string>;
}

let server: TestServer;
const dirs: string[] = [];
const extraDbs: Db[] = [];

async function start(dir?: string): Promise<TestServer> {
  const s = await startTestServer({}, dir);
  if (!dirs.includes(s.dir)) dirs.push(s.dir);
  return s;
}

async function request<T = unknown>(method: string, path: string, options: RequestOptions = {}): Promise<Answer<T>> {
  const headers: Record<string, string> = { ...options.headers };
  let body: string | undefined = options.raw;
  if (options.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(options.json);
  }
  const res = await fetch(server.url + path, { method, headers, body });
  const contentType = res.headers.get('content-type') ?? '';
  const text = await res.text();
  return { status: res.status, contentType, body: (contentType.includes('json') ? JSON.parse(text) : text) as T };
}

async function createChat(title?: string): Promise<Chat> {
  const res = await request<Chat>('POST', '/api/chats', title === undefined ? {} : { json: { title } });
  expect(res.status).toBe(201);
  return res.body;
}

/**
 * Timestamps have millisecond resolution: two writes in the same millisecond share `updated_at` and their order in
 * the list is then only decided by id. Tests about order wait for the clock to move between writes.
 */
async function nextMillisecond(): Promise<void> {
  const start = Date.now();
  while (Date.now() <= start) await delay(1);
}

/** A second handle on the server's SQLite file (WAL lets both work at once), for rows the API cannot create yet. */
async function openSideStore(): Promise<Store> {
  const db = await openDatabase(server.config.DATABASE_URL);
  extraDbs.push(db);
  return new Store(db);
}

const titles = (chats: Chat[]) => chats.map((c) => c.title);

beforeEach(async () => {
  server = await start();
});

afterEach(async () => {
  for (const db of extraDbs.splice(0)) await db.destroy();
  await server.close();
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

describe('POST /api/chats', () => {
  it('creates a chat with the given title and answers 201 with the Chat', async () => {
    const res = await request<Chat>('POST', '/api/chats', { json: { title: 'Trip to Rome' } });
    expect(res.status).toBe(201);
    expect(res.contentType).toContain('application/json');
    expect(res.body).toEqual({
      id: expect.stringMatching(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/),
      title: 'Trip to Rome',
      created_at: expect.any(String),
      updated_at: expect.any(String),
      sdk_session_id: null,
      title_source: 'user',
      settings: {},
      forked_from: null,
    });
    expect(new Date(res.body.created_at).toISOString()).toBe(res.body.created_at);
    expect(res.body.updated_at).toBe(res.body.created_at);
  });

  it('defaults the title to "New Chat" when there is no body at all', async () => {
    const res = await request<Chat>('POST', '/api/chats');
    expect(res.status).toBe(201);
    expect(res.body.title).toBe('New Chat');
  });

  it('treats Content-Type: application/json with an empty body as no body', async () => {
    const res = await request<Chat>('POST', '/api/chats', { raw: '', headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(201);
    expect(res.body.title).toBe('New Chat');
  });

  it('defaults the title when the body is an object without one', async () => {
    const res = await request<Chat>('POST', '/api/chats', { json: {} });
    expect(res.status).toBe(201);
    expect(res.body.title).toBe('New Chat');
  });

  it('gives every chat its own id', async () => {
    const a = await createChat();
    const b = await createChat();
    expect(a.id).not.toBe(b.id);
  });

  it.each([
    ['a number', { title: 42 }],
    ['empty', { title: '' }],
    ['only whitespace', { title: '   ' }],
    ['null', { title: null }],
  ])('rejects a title that is %s with 422 naming title', async (_what, body) => {
    const res = await request<{ detail: string }>('POST', '/api/chats', { json: body });
    expect(res.status).toBe(422);
    expect(res.body.detail).toContain('title');
  });

  it('answers malformed JSON with 400 and a detail', async () => {
    const res = await request<{ detail: string }>('POST', '/api/chats', {
      raw: '{"title": ',
      headers: { 'content-type': 'application/json' },
    });
    expect(res.status).toBe(400);
    expect(res.body.detail).toMatch(/json/i);
  });
});

describe('GET /api/chats', () => {
  it('answers [] when there are no chats', async () => {
    const res = await request<Chat[]>('GET', '/api/chats');
    expect(res.status).toBe(200);
    expect(res.body).toEqual([]);
  });

  it('lists chats newest updated_at first', async () => {
    await createChat('first');
    await nextMillisecond();
    await createChat('second');
    await nextMillisecond();
    await createChat('third');
    const res = await request<Chat[]>('GET', '/api/chats');
    expect(res.status).toBe(200);
    expect(titles(res.body)).toEqual(['third', 'second', 'first']);
    const times = res.body.map((c) => c.updated_at);
    expect([...times].sort().reverse()).toEqual(times);
  });
});

describe('GET /api/chats/{id}', () => {
  it('answers the chat', async () => {
    const chat = await createChat('Hello');
    const res = await request<Chat>('GET', `/api/chats/${chat.id}`);
    expect(res.status).toBe(200);
    // GET of one chat adds what it cost so far.
    expect(res.body).toEqual({ ...chat, usage: { input_tokens: 0, output_tokens: 0, cost_usd: 0, queries: 0 } });
  });
});

describe('PUT and PATCH /api/chats/{id}', () => {
  it.each(['PUT', 'PATCH'])('%s renames the chat, bumps updated_at and moves it to the top of the list', async (method) => {
    const chat = await createChat('old name');
    await nextMillisecond();
    await createChat('newer chat');
    await nextMillisecond();

    const res = await request<Chat>(method, `/api/chats/${chat.id}`, { json: { title: 'new name' } });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: chat.id, title: 'new name', created_at: chat.created_at });
    expect(res.body.updated_at > chat.updated_at).toBe(true);

    expect({ ...(await request<Chat>('GET', `/api/chats/${chat.id}`)).body, usage: undefined }).toEqual(res.body);
    expect(titles((await request<Chat[]>('GET', '/api/chats')).body)).toEqual(['new name', 'newer chat']);
  });

  it('trims the title', async () => {
    const chat = await createChat();
    const res = await request<Chat>('PATCH', `/api/chats/${chat.id}`, { json: { title: '  spaced  ' } });
    expect(res.status).toBe(200);
    expect(res.body.title).toBe('spaced');
  });

  describe.each(['PUT', 'PATCH'])('%s with a bad body', (method) => {
    it.each([
      ['a number', { title: 7 }],
      ['empty', { title: '' }],
      ['only whitespace', { title: ' \t ' }],
      ['missing', {}],
    ])('rejects a title that is %s with 422 naming title and keeps the old title', async (_what, body) => {
      const chat = await createChat('kept');
      const res = await request<{ detail: string }>(method, `/api/chats/${chat.id}`, { json: body });
      expect(res.status).toBe(422);
      expect(res.body.detail).toContain('title');
      expect((await request<Chat>('GET', `/api/chats/${chat.id}`)).body.title).toBe('kept');
    });

    it('rejects a request without a body with 422', async () => {
      const chat = await createChat();
      const res = await request<{ detail: string }>(method, `/api/chats/${chat.id}`);
      expect(res.status).toBe(422);
      expect(res.body.detail).toEqual(expect.any(String));
    });

    it('answers malformed JSON with 400', async () => {
      const chat = await createChat();
      const res = await request<{ detail: string }>(method, `/api/chats/${chat.id}`, {
        raw: '{title: nope}',
        headers: { 'content-type': 'application/json' },
      });
      expect(res.status).toBe(400);
      expect(res.body.detail).toEqual(expect.any(String));
    });
  });
});

describe('DELETE /api/chats/{id}', () => {
  it('answers {"success": true} and the chat is gone', async () => {
    const chat = await createChat('doomed');
    const kept = await createChat('kept');
    const res = await request('DELETE', `/api/chats/${chat.id}`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ success: true });
    expect((await request('GET', `/api/chats/${chat.id}`)).status).toBe(404);
    expect((await request('GET', `/api/chats/${chat.id}/messages`)).status).toBe(404);
    expect((await request<Chat[]>('GET', '/api/chats')).body).toEqual([kept]);
  });

  it('answers 404 when the same chat is deleted twice', async () => {
    const chat = await createChat();
    expect((await request('DELETE', `/api/chats/${chat.id}`)).status).toBe(200);
    expect((await request('DELETE', `/api/chats/${chat.id}`)).status).toBe(404);
  });

  it('accepts Content-Type: application/json with an empty body', async () => {
    const chat = await createChat();
    const res = await request('DELETE', `/api/chats/${chat.id}`, {
      raw: '',
      headers: { 'content-type': 'application/json' },
    });
    expect(res.status).toBe(200);
  });

  it('removes the messages, images, tool uses and queries of the chat and nothing else', async () => {
    const doomed = await createChat('doomed');
    const kept = await createChat('kept');
    const store = await openSideStore();
    const fill = async (chatId: string) => {
      const queryId = await store.queries.start(chatId);
      const withImages = await store.messages.add({
        chatId,
        role: 'user',
        content: 'look at this',
        queryId,
        images: [
          { mediaType: 'image/png', data: PNG },
          { mediaType: 'image/png', data: PNG },
        ],
      });
      await store.toolUses.recordCall({ chatId, queryId, toolUseId: `toolu_${chatId}`, toolName: 'Bash', input: { command: 'ls' } });
      await store.toolUses.recordResult({ chatId, toolUseId: `toolu_${chatId}`, content: 'a.txt', isError: false });
      await store.messages.add({ chatId, role: 'assistant', content: 'a picture', queryId });
      await store.queries.finish(queryId, { status: 'complete', costUsd: 0.01, durationMs: 5 });
      return withImages!.id;
    };
    const doomedMessage = await fill(doomed.id);
    await fill(kept.id);

    const db = store.db;
    const rowsOf = async (chatId: string, messageId: string) => ({
      messages: (await db.selectFrom('messages').select('id').where('chat_id', '=', chatId).execute()).length,
      images: (await db.selectFrom('message_images').select('id').where('message_id', '=', messageId).execute()).length,
      toolUses: (await db.selectFrom('tool_uses').select('id').where('chat_id', '=', chatId).execute()).length,
      queries: (await db.selectFrom('queries').select('id').where('chat_id', '=', chatId).execute()).length,
      chats: (await db.selectFrom('chats').select('id').where('id', '=', chatId).execute()).length,
    });
    const totals = async () => ({
      messages: (await db.selectFrom('messages').select('id').execute()).length,
      images: (await db.selectFrom('message_images').select('id').execute()).length,
      toolUses: (await db.selectFrom('tool_uses').select('id').execute()).length,
      queries: (await db.selectFrom('queries').select('id').execute()).length,
      chats: (await db.selectFrom('chats').select('id').execute()).length,
    });
    expect(await rowsOf(doomed.id, doomedMessage)).toEqual({ messages: 2, images: 2, toolUses: 1, queries: 1, chats: 1 });
    expect(await totals()).toEqual({ messages: 4, images: 4, toolUses: 2, queries: 2, chats: 2 });

    expect((await request('DELETE', `/api/chats/${doomed.id}`)).body).toEqual({ success: true });

    expect(await rowsOf(doomed.id, doomedMessage)).toEqual({ messages: 0, images: 0, toolUses: 0, queries: 0, chats: 0 });
    expect(await totals()).toEqual({ messages: 2, images: 2, toolUses: 1, queries: 1, chats: 1 });
    expect((await request<ChatMessage[]>('GET', `/api/chats/${kept.id}/messages`)).body).toHaveLength(2);
  });
});

describe('GET /api/chats/{id}/messages', () => {
  it('answers [] for a chat without messages', async () => {
    const chat = await createChat();
    const res = await request<ChatMessage[]>('GET', `/api/chats/${chat.id}/messages`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual([]);
  });

  it('answers the messages oldest first, with images as base64 and null when there are none', async () => {
    const chat = await createChat();
    const store = await openSideStore();
    await store.messages.add({ chatId: chat.id, role: 'user', content: 'what is this?', images: [{ mediaType: 'image/png', data: PNG }] });
    await store.messages.add({ chatId: chat.id, role: 'assistant', content: 'a tiny picture' });
    await store.messages.add({ chatId: chat.id, role: 'user', content: 'thanks' });

    const res = await request<ChatMessage[]>('GET', `/api/chats/${chat.id}/messages`);
    expect(res.status).toBe(200);
    expect(res.body.map((m) => [m.role, m.content])).toEqual([
      ['user', 'what is this?'],
      ['assistant', 'a tiny picture'],
      ['user', 'thanks'],
    ]);
    const [first, second] = res.body;
    expect(first).toEqual({
      id: expect.any(String),
      chat_id: chat.id,
      role: 'user',
      content: 'what is this?',
      timestamp: expect.any(String),
      status: 'complete',
      images: [{ id: expect.any(String), base64: PNG.toString('base64'), mimeType: 'image/png' }],
    });
    expect(second?.images).toBeNull();
  });

  it('moves a chat with a new message to the top of the list', async () => {
    const older = await createChat('older');
    await nextMillisecond();
    await createChat('newer');
    await nextMillisecond();
    const store = await openSideStore();
    await store.messages.add({ chatId: older.id, role: 'user', content: 'hi' });
    expect(titles((await request<Chat[]>('GET', '/api/chats')).body)).toEqual(['older', 'newer']);
  });
});

describe('GET /api/chats/search', () => {
  const search = async (q: string) => {
    const res = await request<Chat[]>('GET', `/api/chats/search?q=${encodeURIComponent(q)}`);
    expect(res.status).toBe(200);
    return titles(res.body).sort();
  };

  it('finds chats by title, case-insensitively', async () => {
    await createChat('Holiday Plans');
    await createChat('Work notes');
    expect(await search('holiday')).toEqual(['Holiday Plans']);
    expect(await search('PLANS')).toEqual(['Holiday Plans']);
    expect(await search('o')).toEqual(['Holiday Plans', 'Work notes']);
    expect(await search('nothing like it')).toEqual([]);
  });

  it('finds chats by the text of their messages, case-insensitively', async () => {
    const recipe = await createChat('Cooking');
    await createChat('Gardening');
    const store = await openSideStore();
    await store.messages.add({ chatId: recipe.id, role: 'user', content: 'How long do I boil an EGG?' });
    await store.messages.add({ chatId: recipe.id, role: 'assistant', content: 'About nine minutes.' });
    expect(await search('egg')).toEqual(['Cooking']);
    expect(await search('Nine Minutes')).toEqual(['Cooking']);
  });

  it('treats % and _ literally, not as wildcards', async () => {
    await createChat('100% done');
    await createChat('100 done');
    await createChat('snake_case');
    await createChat('snakeXcase');
    expect(await search('%')).toEqual(['100% done']);
    expect(await search('100%')).toEqual(['100% done']);
    expect(await search('e_c')).toEqual(['snake_case']);
    expect(await search('_')).toEqual(['snake_case']);
  });

  it('treats a backslash literally', async () => {
    await createChat('C:\\temp');
    await createChat('C:temp');
    expect(await search('\\')).toEqual(['C:\\temp']);
  });

  it('answers every chat, newest first, for an empty or missing q', async () => {
    await createChat('a');
    await nextMillisecond();
    await createChat('b');
    for (const path of ['/api/chats/search?q=', '/api/chats/search', '/api/chats/search?q=%20%20']) {
      const res = await request<Chat[]>('GET', path);
      expect(res.status).toBe(200);
      expect(titles(res.body)).toEqual(['b', 'a']);
    }
  });

  it('is not mistaken for a chat id', async () => {
    await createChat('search');
    const res = await request<Chat[]>('GET', '/api/chats/search?q=search');
    expect(res.status).toBe(200);
    expect(titles(res.body)).toEqual(['search']);
  });
});

describe('unknown chats and routes', () => {
  const unknownChatRequests: Array<[string, (id: string) => string, RequestOptions]> = [
    ['GET', (id) => `/api/chats/${id}`, {}],
    ['PUT', (id) => `/api/chats/${id}`, { json: { title: 'x' } }],
    ['PATCH', (id) => `/api/chats/${id}`, { json: { title: 'x' } }],
    ['DELETE', (id) => `/api/chats/${id}`, {}],
    ['GET', (id) => `/api/chats/${id}/messages`, {}],
  ];

  it.each(unknownChatRequests)('%s %s answers 404 with a detail for an unknown UUID', async (method, path, options) => {
    await createChat();
    const res = await request<{ detail: string }>(method, path(UNKNOWN_ID), options);
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ detail: expect.stringContaining(UNKNOWN_ID) });
  });

  it.each(unknownChatRequests)('%s %s answers 404 with a detail for an id that is not a UUID', async (method, path, options) => {
    const res = await request<{ detail: string }>(method, path('not-a-uuid'), options);
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ detail: expect.any(String) });
  });

  it('answers an unknown route with 404 and a detail', async () => {
    for (const [method, path] of [
      ['GET', '/api/nope'],
      ['GET', '/api/chats/a/b/c'],
      ['POST', '/api/chats/search'],
      // `/` is the web client's page; other paths outside /api are still unknown routes.
      ['GET', '/no-such-page'],
      ['POST', '/'],
    ] as const) {
      const res = await request<{ detail: string }>(method, path);
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(res.body).toEqual({ detail: expect.any(String) });
    }
  });

  it('never answers 500 to odd requests', async () => {
    const chat = await createChat();
    const odd: Array<[string, string, RequestOptions]> = [
      ['POST', '/api/chats', { json: [1, 2] }],
      ['POST', '/api/chats', { json: 'just a string' }],
      ['POST', '/api/chats', { raw: 'title=x', headers: { 'content-type': 'text/plain' } }],
      ['POST', '/api/chats', { raw: 'title=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } }],
      ['POST', '/api/chats', { json: { title: 'x'.repeat(10_000) } }],
      ['PATCH', `/api/chats/${chat.id}`, { json: null }],
      ['PUT', `/api/chats/${chat.id}`, { json: { title: { nested: true } } }],
      ['GET', `/api/chats/search?q=${'x'.repeat(1000)}`, {}],
      ['GET', '/api/chats/search?q=a&q=b', {}],
      ['GET', `/api/chats/${'a'.repeat(5000)}`, {}],
      ['GET', "/api/chats/'%20OR%201=1--", {}],
      ['DELETE', '/api/chats', {}],
    ];
    for (const [method, path, options] of odd) {
      const res = await request<{ detail?: string }>(method, path, options);
      expect(res.status, `${method} ${path.slice(0, 60)}`).toBeGreaterThanOrEqual(400);
      expect(res.status, `${method} ${path.slice(0, 60)}`).toBeLessThan(500);
    }
    expect({ ...(await request<Chat>('GET', `/api/chats/${chat.id}`)).body, usage: undefined }).toEqual({ ...chat, usage: undefined });
  });
});

describe('persistence', () => {
  it('keeps chats and renames across a restart on the same data', async () => {
    const chat = await createChat('before');
    const renamed = (await request<Chat>('PUT', `/api/chats/${chat.id}`, { json: { title: 'after' } })).body;
    const dir = server.dir;
    await server.close();

    server = await start(dir);
    expect({ ...(await request<Chat>('GET', `/api/chats/${chat.id}`)).body, usage: undefined }).toEqual({ ...renamed, usage: undefined });
    expect((await request<Chat[]>('GET', '/api/chats')).body).toEqual([renamed]);
  });
});

describe('operations endpoints', () => {
  it('GET /healthz answers 200 {"status":"ok"}', async () => {
    const res = await request('GET', '/healthz');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ok' });
  });

  it('GET /docs serves the HTML of the API docs', async () => {
    const res = await fetch(`${server.url}/docs`, { redirect: 'follow' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/html');
    expect(await res.text()).toMatch(/<html/i);
  });

  it('GET /openapi.json describes every chat route and the Chat schema', async () => {
    const res = await request<{
      openapi: string;
      paths: Record<string, Record<string, unknown>>;
      components: { schemas: Record<string, { properties?: Record<string, unknown> }> };
    }>('GET', '/openapi.json');
    expect(res.status).toBe(200);
    expect(res.body.openapi).toMatch(/^3\./);
    const { paths } = res.body;
    expect(Object.keys(paths)).toEqual(
      expect.arrayContaining(['/api/chats', '/api/chats/{id}', '/api/chats/{id}/messages', '/api/chats/search']),
    );
    expect(Object.keys(paths['/api/chats']!)).toEqual(expect.arrayContaining(['get', 'post']));
    expect(Object.keys(paths['/api/chats/{id}']!)).toEqual(expect.arrayContaining(['get', 'put', 'patch', 'delete']));
    expect(Object.keys(paths['/api/chats/{id}/permissions']!)).toEqual(['get']);
    expect(Object.keys(paths['/api/chats/{id}/permissions/{rule_id}']!)).toEqual(['delete']);
    expect(Object.keys(res.body.components.schemas.PermissionRule?.properties ?? {})).toEqual(
      expect.arrayContaining(['id', 'chat_id', 'tool_name', 'kind', 'pattern', 'description', 'created_at']),
    );
    expect(Object.keys(res.body.components.schemas.Chat?.properties ?? {})).toEqual(
      expect.arrayContaining(['id', 'title', 'created_at', 'updated_at', 'sdk_session_id']),
    );
  });
});
