import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChatMessage } from '../../src/protocol/chat.js';
import { openStore } from '../helpers/auth.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==', 'base64');

/** Long chats and long chat lists come in pages; without parameters a client gets the latest page. */
describe('paging', () => {
  let server: TestServer;
  let chatId: string;
  const get = async (path: string) => {
    const res = await fetch(`${server.url}${path}`);
    return { status: res.status, body: (await res.json()) as unknown, more: res.headers.get('x-has-more'), link: res.headers.get('link') };
  };

  beforeAll(async () => {
    server = await startTestServer({ PAGE_SIZE: '20' });
    const { store, close } = await openStore(server.dir);
    const chat = await store.chats.create('long');
    chatId = chat.id;
    for (let i = 1; i <= 45; i++) {
      await store.messages.add({
        chatId,
        role: i % 2 ? 'user' : 'assistant',
        content: `message ${i}`,
        ...(i === 3 ? { images: [{ mediaType: 'image/png' as const, data: PNG }] } : {}),
      });
    }
    for (let i = 1; i <= 25; i++) await store.chats.create(`chat ${i}`);
    await close();
  });
  afterAll(async () => {
    await server?.close();
  });

  const contents = (body: unknown) => (body as ChatMessage[]).map((m) => m.content);
  const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => `message ${from + i}`);

  it('gives the latest PAGE_SIZE messages, oldest first, and says older ones exist', async () => {
    const page = await get(`/api/chats/${chatId}/messages`);
    expect(contents(page.body)).toEqual(range(26, 45));
    expect(page.more).toBe('true');
    expect(page.link).toContain('before=');
  });

  it('walks back with before= (following Link) until the first message, images included', async () => {
    const seen: string[] = [];
    let path: string | undefined = `/api/chats/${chatId}/messages?limit=15`;
    while (path) {
      const page = await get(path);
      seen.unshift(...contents(page.body));
      path = page.more === 'true' ? /<([^>]+)>/.exec(page.link ?? '')![1] : undefined;
    }
    expect(seen).toEqual(range(1, 45));
    const first = await get(`/api/chats/${chatId}/messages?limit=5&before=${await idOf(5)}`);
    expect(contents(first.body)).toEqual(range(1, 4));
    expect((first.body as ChatMessage[])[2]!.images).toEqual([{ id: expect.any(String), base64: PNG.toString('base64'), mimeType: 'image/png' }]);
    expect(first.more).toBe('false');
  });

  it('pages forward with after=', async () => {
    const page = await get(`/api/chats/${chatId}/messages?limit=3&after=${await idOf(40)}`);
    expect(contents(page.body)).toEqual(range(41, 43));
    expect(page.more).toBe('true');
    const end = await get(`/api/chats/${chatId}/messages?limit=10&after=${await idOf(40)}`);
    expect(contents(end.body)).toEqual(range(41, 45));
    expect(end.more).toBe('false');
  });

  it('refuses bad paging parameters with 4xx and a reason', async () => {
    expect((await get(`/api/chats/${chatId}/messages?limit=0`)).status).toBe(422);
    expect((await get(`/api/chats/${chatId}/messages?limit=abc`)).status).toBe(422);
    expect((await get(`/api/chats/${chatId}/messages?before=nope`)).status).toBe(400);
    expect((await get(`/api/chats/${chatId}/messages?before=a&after=b`)).status).toBe(422);
    expect((await get(`/api/chats?before=nope`)).status).toBe(400);
  });

  it('pages the chat list, newest activity first, without repeats or gaps', async () => {
    const first = await get('/api/chats');
    expect((first.body as unknown[]).length).toBe(20);
    expect(first.more).toBe('true');
    const titles: string[] = [];
    let path: string | undefined = '/api/chats?limit=7';
    while (path) {
      const page = await get(path);
      titles.push(...(page.body as { title: string }[]).map((c) => c.title));
      path = page.more === 'true' ? /<([^>]+)>/.exec(page.link ?? '')![1] : undefined;
    }
    expect(titles).toEqual([...Array.from({ length: 25 }, (_, i) => `chat ${25 - i}`), 'long']);
  });

  /** The id of message N (1-based), read through the API itself. */
  async function idOf(n: number): Promise<string> {
    const all = (await get(`/api/chats/${chatId}/messages?limit=1000`)).body as ChatMessage[];
    return all[n - 1]!.id;
  }
});
