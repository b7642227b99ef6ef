// End-to-end: a chat's export (JSON and Markdown) and import, through the real service, the real SDK and CLI against
// the fake model, on SQLite and on Postgres; and the imported chat's model context.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChatExportSchema, type ChatExport } from '../../src/protocol/export.js';
import type { Chat, ChatMessage } from '../../src/protocol/chat.js';
import type { ServerEvent } from '../../src/protocol/ws.js';
import { createChat, startAgentServer, type AgentTestServer } from '../helpers/agent-server.js';
import { api, startAuthServer, type TestUser } from '../helpers/auth.js';
import type { TestServer } from '../helpers/test-server.js';
import { createTestDatabase, describeEachStore, type TestDatabase } from '../helpers/stores.js';
import { TestClient } from '../helpers/ws-client.js';
import { fakeRequestsFor, onePixelPng, until, withoutIdsAndDates } from './support.js';

const png = onePixelPng();
const pngBase64 = png.toString('base64');

async function exportJson(server: AgentTestServer, chatId: string): Promise<ChatExport> {
  const res = await api<ChatExport>(server.url, 'GET', `/api/chats/${chatId}/export?format=json`);
  expect(res.status).toBe(200);
  return res.body;
}

async function chatIds(server: AgentTestServer): Promise<string[]> {
  return (await api<Chat[]>(server.url, 'GET', '/api/chats')).body.map((c) => c.id);
}

describeEachStore('chat export and import', (kind) => {
  let db: TestDatabase;
  let server: AgentTestServer;
  let chatId: string;
  let exported: ChatExport;

  beforeAll(async () => {
    db = await createTestDatabase(kind);
    server = await startAgentServer({ DATABASE_URL: db.url, MAX_IMAGE_BYTES: '4096', MAX_IMAGES_PER_MESSAGE: '2' });
    // A real conversation: an image, a tool call with its output, a failed answer.
    chatId = await createChat(server.url, 'Export me 导出');
    const client = await TestClient.connect(server.wsUrl);
    const images = await client.chat(chatId, '/images', [{ base64: pngBase64, media_type: 'image/png' }]);
    expect(await client.waitForEnd(images)).toMatchObject({ type: 'result', success: true });
    const bash = await client.chat(chatId, '/bash echo exported-tool-output');
    expect(await client.waitForEnd(bash)).toMatchObject({ type: 'result', success: true });
    const failing = await client.chat(chatId, '/error 500');
    expect(await client.waitForEnd(failing)).toMatchObject({ type: 'error' });
    await client.close();
    // Rows are written in order after the events: wait until every answer has settled in the store.
    await until(async () => {
      const doc = await exportJson(server, chatId);
      return doc.queries.length === 3 && doc.queries.every((q) => q.status !== 'running') &&
        doc.entries.every((e) => e.type !== 'message' || e.status !== 'streaming');
    }, 'every answer has settled in the store', 20_000);
    exported = await exportJson(server, chatId);
  }, 120_000);

  afterAll(async () => {
    await server?.close();
    await db?.drop();
  });

  it('JSON: the whole conversation with images, tool calls, statuses, cost and usage, as a download', async () => {
    const res = await api<ChatExport>(server.url, 'GET', `/api/chats/${chatId}/export?format=json`);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(res.headers.get('content-disposition')).toMatch(
      /^attachment; filename="Export-me-\d{4}-\d{2}-\d{2}\.json"; filename\*=UTF-8''Export-me-%E5%AF%BC%E5%87%BA-\d{4}-\d{2}-\d{2}\.json$/,
    );
    const doc = ChatExportSchema.parse(res.body);
    expect(doc).toMatchObject({ format: 'agent-chat-export', version: 1, chat: { id: chatId, title: 'Export me 导出', title_source: 'user' } });

    const messages = doc.entries.filter((e) => e.type === 'message');
    expect(messages.map((m) => [m.role, m.status])).toEqual([
      ['user', 'complete'],
      ['assistant', 'complete'],
      ['user', 'complete'],
      ['assistant', 'complete'],
      ['user', 'complete'],
      ['assistant', 'error'],
    ]);
    expect(messages[0]).toMatchObject({ content: '/images', images: [{ media_type: 'image/png', base64: pngBase64 }] });
    expect(messages[1]!.content).toBe(`Saw 1 image(s): image/png ${png.length} bytes`);

    // The tool call sits between the message that asked for it and the answer that read its result.
    const kinds = doc.entries.map((e) => (e.type === 'message' ? e.role : e.type));
    expect(kinds).toEqual(['user', 'assistant', 'user', 'tool_use', 'assistant', 'user', 'assistant']);
    const tool = doc.entries[3]!;
    expect(tool).toMatchObject({
      type: 'tool_use',
      name: 'Bash',
      input: { command: 'echo exported-tool-output' },
      is_error: false,
    });
    expect(tool.type === 'tool_use' && tool.result).toContain('exported-tool-output');

    expect(doc.queries.map((q) => q.status)).toEqual(['complete', 'complete', 'error']);
    const [first, second] = doc.queries;
    for (const q of [first!, second!]) {
      expect(q.cost_usd).toBeGreaterThan(0);
      expect(q.usage.length).toBeGreaterThan(0);
      expect(q.usage[0]!.input_tokens).toBeGreaterThan(0);
    }
    // Every entry of a query names it; the totals are the queries' usage summed.
    expect(doc.entries.filter((e) => e.query_id === first!.id)).toHaveLength(2);
    const spent = doc.queries.flatMap((q) => q.usage).reduce((sum, u) => sum + u.cost_usd, 0);
    expect(doc.usage.cost_usd).toBeCloseTo(spent, 10);
    expect(doc.usage.cost_usd).toBeGreaterThan(0);
  });

  it('Markdown: a readable transcript with the tool call, the image as a data URL, statuses and cost', async () => {
    const res = await api<string>(server.url, 'GET', `/api/chats/${chatId}/export?format=markdown`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/markdown/);
    expect(res.headers.get('content-disposition')).toMatch(/filename="Export-me-\d{4}-\d{2}-\d{2}\.md"/);
    const md = res.body;
    expect(md).toMatch(/^# Export me 导出\n/);
    expect(md).toContain(`![image 1 (image/png, ${png.length} bytes)](data:image/png;base64,${pngBase64})`);
    expect(md).toContain('**Tool `Bash`**');
    expect(md).toContain('"command": "echo exported-tool-output"');
    expect(md).toMatch(/Result:\n\n```\nexported-tool-output/);
    expect(md).toMatch(/### Assistant · \S+ · _failed_/);
    expect(md).toMatch(/_Answer complete · \$0\.\d{4} · [\d.]+ s · \d+ input \/ \d+ output tokens/);
    expect(md).toMatch(/_Answer ended with an error/);
    expect(md).toMatch(/- Cost: \$0\.\d{4} \(\d+ input \/ \d+ output tokens, \d answers\)/);
  });

  it('an unknown chat or format is refused', async () => {
    expect((await api(server.url, 'GET', '/api/chats/00000000-0000-4000-8000-000000000000/export')).status).toBe(404);
    const bad = await api<{ detail: string }>(server.url, 'GET', `/api/chats/${chatId}/export?format=pdf`);
    expect(bad.status).toBe(422);
    expect(bad.body.detail).toContain('format must be json or markdown');
  });

  let importedId: string;

  it('round trip: export → import → export is identical apart from ids and dates; imported usage is not counted here', async () => {
    const res = await api<Chat>(server.url, 'POST', '/api/chats/import', { json: exported });
    expect(res.status).toBe(201);
    importedId = res.body.id;
    expect(importedId).not.toBe(chatId);
    expect(res.body).toMatchObject({ title: 'Export me 导出', title_source: 'user', sdk_session_id: null });

    const again = await exportJson(server, importedId);
    expect(again.chat.id).toBe(importedId);
    expect(withoutIdsAndDates(again)).toEqual(withoutIdsAndDates(exported));

    // The imported chat reads like any chat.
    const messages = (await api<ChatMessage[]>(server.url, 'GET', `/api/chats/${importedId}/messages`)).body;
    expect(messages.map((m) => m.content)).toEqual(
      exported.entries.filter((e) => e.type === 'message').map((e) => (e.type === 'message' ? e.content : '')),
    );
    expect(messages[0]!.images).toEqual([{ id: expect.any(String), base64: pngBase64, mimeType: 'image/png' }]);
    // Spent elsewhere: not in the chat's total, nor in the caller's usage report.
    const chat = (await api<Chat>(server.url, 'GET', `/api/chats/${importedId}`)).body;
    expect(chat.usage).toEqual({ input_tokens: 0, output_tokens: 0, cost_usd: 0, queries: 0 });
    const report = (await api<{ groups: { key: string }[] }>(server.url, 'GET', '/api/usage?group_by=chat')).body;
    expect(report.groups.map((g) => g.key)).toContain(chatId);
    expect(report.groups.map((g) => g.key)).not.toContain(importedId);
  });

  it('the imported chat answers with the imported transcript as its context, carried once by its first message', async () => {
    const client = await TestClient.connect(server.wsUrl);
    const first = await client.chat(importedId, '/received');
    expect(await client.waitForEnd(first)).toMatchObject({ type: 'result', success: true });
    const seen = client.streamedText(first);
    expect(seen).toContain('<imported-conversation>');
    expect(seen).toContain('[user] /images\n[image: image/png, not included]');
    expect(seen).toContain(`[assistant] Saw 1 image(s): image/png ${png.length} bytes`);
    expect(seen).toContain('[tool call Bash] input: {"command":"echo exported-tool-output"');
    expect(seen).toMatch(/\[tool result\] exported-tool-output/);
    expect(seen).toContain('[assistant (error)]');
    // The preamble comes before what the user typed, in the same turn.
    expect(seen).toMatch(/<\/imported-conversation>\n+\/received$/m);

    // The next message does not carry it again: the agent's session holds it, once.
    const second = await client.chat(importedId, '/received');
    expect(await client.waitForEnd(second)).toMatchObject({ type: 'result', success: true });
    const later = client.streamedText(second);

    expect(later).toMatch(/<\/imported-conversation>\n+\/received\nassistant: Received:/);
    expect(later).toMatch(/\nuser: \/received$/);
    await client.close();

    // What the model was sent, seen at the model: the first turn's user text begins with the transcript.
    const userContents = (r: { body: unknown }) =>
      ((r.body as { messages: { role: string; content: unknown }[] }).messages ?? [])
        .filter((m) => m.role === 'user')
        .map((m) => JSON.stringify(m.content));
    const turns = fakeRequestsFor(server, importedId).filter((r) => JSON.stringify(r.body).includes('/received'));
    expect(userContents(turns[0]!)).toHaveLength(1);
    expect(userContents(turns[0]!)[0]).toMatch(/<imported-conversation>[\s\S]*<\/imported-conversation>\\n\\n\/received/);
    expect(userContents(turns.at(-1)!).filter((c) => c.includes('<imported-conversation>'))).toHaveLength(1);
    // Stored, the user's messages are what the user typed.
    const messages = (await api<ChatMessage[]>(server.url, 'GET', `/api/chats/${importedId}/messages`)).body;
    expect(messages.filter((m) => m.role === 'user').map((m) => m.content).slice(-2)).toEqual(['/received', '/received']);
  }, 90_000);

  it('a cleared imported chat starts from nothing: the transcript is not carried', async () => {
    const res = await api<Chat>(server.url, 'POST', '/api/chats/import', { json: exported });
    expect(res.status).toBe(201);
    const client = await TestClient.connect(server.wsUrl);
    const from = client.events.length;
    client.send({ type: 'clear_history', chat_id: res.body.id });
    await client.waitFor((e) => e.type === 'history_cleared' && e.chat_id === res.body.id, { from });
    const query = await client.chat(res.body.id, '/received');
    expect(await client.waitForEnd(query)).toMatchObject({ type: 'result', success: true });
    expect(client.streamedText(query)).toBe('Received:\nuser: /received');
    await client.close();
  }, 60_000);

  it('a fork of an imported chat at an imported answer carries the transcript up to that point', async () => {
    const res = await api<Chat>(server.url, 'POST', '/api/chats/import', { json: exported });
    const messages = (await api<ChatMessage[]>(server.url, 'GET', `/api/chats/${res.body.id}/messages`)).body;
    const toolAnswer = messages.find((m) => m.content === 'Tool result: exported-tool-output')!;
    const fork = await api<Chat>(server.url, 'POST', `/api/chats/${res.body.id}/fork`, { json: { message_id: toolAnswer.id } });
    expect(fork.status).toBe(201);
    const client = await TestClient.connect(server.wsUrl);
    const query = await client.chat(fork.body.id, '/received');
    expect(await client.waitForEnd(query)).toMatchObject({ type: 'result', success: true });
    const seen = client.streamedText(query);
    expect(seen).toContain('[tool call Bash] input: {"command":"echo exported-tool-output"');
    expect(seen).toMatch(/\[assistant\] Tool result: exported-tool-output\n<\/imported-conversation>\n+\/received$/m);
    expect(seen).not.toContain('/error 500');
    await client.close();
  }, 60_000);

  it('a retry of an imported question sends the conversation before it, without the answer it replaces, every time', async () => {
    // The same conversation, its last question one the fake model answers with what it was sent.
    const doc = structuredClone(exported);
    const last = doc.entries.at(-2)!;
    expect(last).toMatchObject({ type: 'message', role: 'user', content: '/error 500' });
    if (last.type === 'message') last.content = '/received';
    const res = await api<Chat>(server.url, 'POST', '/api/chats/import', { json: doc });
    expect(res.status).toBe(201);
    const client = await TestClient.connect(server.wsUrl);
    const retry = async () => {
      const from = client.events.length;
      client.send({ type: 'retry', chat_id: res.body.id });
      const started = (await client.waitFor((e) => e.type === 'answer_retried' && e.chat_id === res.body.id, { from })) as Extract<
        ServerEvent,
        { type: 'answer_retried' }
      >;
      expect(await client.waitForEnd(started.query_id)).toMatchObject({ type: 'result', success: true });
      return client.streamedText(started.query_id);
    };
    // First the imported answer is replaced, then the answer given here: each time by a fresh session that gets
    // the conversation before the question as the transcript, and the question once.
    for (const replaced of ['API Error: 500', 'Received:']) {
      const seen = await retry();
      expect(seen).toMatch(/^Received:\nuser: <imported-conversation>/);
      expect(seen).toContain('[assistant] Tool result: exported-tool-output');
      expect(seen).toMatch(/\[assistant\] Tool result: exported-tool-output\n<\/imported-conversation>\n+\/received$/);
      expect(seen.slice('Received:'.length)).not.toContain(replaced);
    }
    await client.close();
  }, 90_000);

  describe('a bad import is refused with {detail} and nothing is stored', () => {
    const withImage = (base64: string, count = 1): unknown => ({
      ...exported,
      entries: exported.entries.map((e, i) =>
        i === 0 && e.type === 'message' ? { ...e, images: Array.from({ length: count }, () => ({ media_type: 'image/png', base64 })) } : e,
      ),
    });
    const refusals: [string, () => unknown, number, RegExp][] = [
      ['not an export', () => ({ hello: 'world' }), 422, /body\.format: format must be "agent-chat-export"/],
      ['another version', () => ({ ...exported, version: 2 }), 422, /version must be 1/],
      ['an unknown entry type', () => ({ ...exported, entries: [{ type: 'note', text: 'x' }] }), 422, /entries/],
      ['a dangling query reference', () => ({ ...exported, queries: [] }), 400, /entries\[0\]\.query_id: no query/],
      ['bytes that are not the image type', () => withImage(Buffer.from('not a png').toString('base64')), 400, /entries\[0\]: image 1: the bytes are not image\/png/],
      ['an image over MAX_IMAGE_BYTES', () => withImage(Buffer.concat([png, Buffer.alloc(5000)]).toString('base64')), 400, /larger than 4096 bytes/],
      ['more images than MAX_IMAGES_PER_MESSAGE', () => withImage(pngBase64, 3), 400, /too many images: 3 \(at most 2 per message\)/],
      [
        'a NUL character in a text (the last entry: nothing before it may stay stored)',
        () => ({ ...exported, entries: exported.entries.map((e, i, all) => (i === all.length - 1 && e.type === 'message' ? { ...e, content: 'a\u0000b' } : e)) }),
        400,
        /^body\.entries\[6\]\.content: contains a NUL character/,
      ],
    ];
    for (const [what, body, status, detail] of refusals) {
      it(what, async () => {
        const before = await chatIds(server);
        const res = await api<{ detail: string }>(server.url, 'POST', '/api/chats/import', { json: body() });
        expect(res.status).toBe(status);
        expect(res.body.detail).toMatch(detail);
        expect(await chatIds(server)).toEqual(before);
      });
    }

    it('a body that is not JSON', async () => {
      const before = await chatIds(server);
      const res = await fetch(`${server.url}/api/chats/import`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"format":',
      });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { detail: string }).detail).toMatch(/not valid JSON/);
      expect(await chatIds(server)).toEqual(before);
    });

    it('a body over the import limit (derived from the image limits) gets 413 naming it', async () => {
      const before = await chatIds(server);
      // 2 images of 4096 bytes in base64, plus 16 MiB: the limit of this server.
      const limit = 2 * Math.ceil(4096 / 3) * 4 + 16 * 1024 * 1024;
      const big = { ...exported, entries: [...exported.entries, { ...exported.entries[0], content: 'x'.repeat(limit) }] };
      const res = await fetch(`${server.url}/api/chats/import`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(big),
      });
      expect(res.status).toBe(413);
      expect(await res.json()).toEqual({ detail: `the import is larger than ${limit} bytes, the most this service reads` });
      expect(await chatIds(server)).toEqual(before);
    });
  });
});

describe('export and import with users', () => {
  let server: TestServer;
  let users: Record<string, TestUser>;
  beforeAll(async () => {
    ({ server, users } = await startAuthServer(['alice', 'bob', 'carol'], { MAX_CHATS_PER_USER: '2', AGENT_PREWARM: 'false' }));
  });
  afterAll(async () => {
    await server?.close();
  });

  it("another user cannot export someone's chat; an import is the caller's own chat, within the chat quota", async () => {
    const alice = users.alice!.token;
    const bob = users.bob!.token;
    const created = await api<Chat>(server.url, 'POST', '/api/chats', { token: alice, json: { title: "Alice's" } });
    const id = created.body.id;
    for (const format of ['json', 'markdown']) {
      const res = await api<{ detail: string }>(server.url, 'GET', `/api/chats/${id}/export?format=${format}`, { token: bob });
      expect(res.status).toBe(404);
      expect(res.body.detail).toBe(`chat ${id} not found`);
    }
    expect((await api(server.url, 'GET', `/api/chats/${id}/export`)).status).toBe(401);
    const doc = await api<ChatExport>(server.url, 'GET', `/api/chats/${id}/export`, { token: alice });
    expect(doc.status).toBe(200);

    // Bob imports Alice's export (she sent him the file): a chat of his, not hers.
    const imported = await api<Chat>(server.url, 'POST', '/api/chats/import', { token: bob, json: doc.body });
    expect(imported.status).toBe(201);
    const listed = async (token: string) => (await api<Chat[]>(server.url, 'GET', '/api/chats', { token })).body.map((c) => c.id);
    expect(await listed(bob)).toEqual([imported.body.id]);
    expect(await listed(alice)).toEqual([id]);

    // MAX_CHATS_PER_USER=2 holds for imports too: the third is refused, nothing stored.
    expect((await api(server.url, 'POST', '/api/chats/import', { token: bob, json: doc.body })).status).toBe(201);
    const refused = await api<{ detail: string }>(server.url, 'POST', '/api/chats/import', { token: bob, json: doc.body });
    expect(refused.status).toBe(403);
    expect(refused.body.detail).toMatch(/chat limit reached: at most 2 chats per user/);
    expect(await listed(bob)).toHaveLength(2);
  });

  it("the chat's own settings are imported within what the service allows, and refused beyond it", async () => {
    const carol = users.carol!.token;
    const created = await api<Chat>(server.url, 'POST', '/api/chats', { token: carol, json: { title: 'Narrow' } });
    const settings = { permission_mode: 'plan', allowed_tools: ['Read'], system_prompt_append: 'Be brief.' };
    const patched = await api<Chat>(server.url, 'PATCH', `/api/chats/${created.body.id}`, { token: carol, json: { settings } });
    expect(patched.status).toBe(200);
    const doc = (await api<ChatExport>(server.url, 'GET', `/api/chats/${created.body.id}/export`, { token: carol })).body;
    expect(doc.chat.settings).toEqual(settings);
    await api(server.url, 'DELETE', `/api/chats/${created.body.id}`, { token: carol });

    const imported = await api<Chat>(server.url, 'POST', '/api/chats/import', { token: carol, json: doc });
    expect(imported.status).toBe(201);
    expect(imported.body.settings).toEqual(settings);
    const again = (await api<ChatExport>(server.url, 'GET', `/api/chats/${imported.body.id}/export`, { token: carol })).body;
    expect(withoutIdsAndDates(again)).toEqual(withoutIdsAndDates(doc));

    // PERMISSION_MODE is `default` here: a file cannot widen it (nor the tools), as a PATCH cannot.
    for (const wider of [{ permission_mode: 'bypassPermissions' }, { allowed_tools: ['Bash'] }]) {
      const refused = await api<{ detail: string }>(server.url, 'POST', '/api/chats/import', {
        token: carol,
        json: { ...doc, chat: { ...doc.chat, settings: wider } },
      });
      expect(refused.status).toBe(403);
      expect(refused.body.detail).toMatch(/^chat\.settings: .*; remove them from the file to import without them$/);
    }
    expect((await api<Chat[]>(server.url, 'GET', '/api/chats', { token: carol })).body.map((c) => c.id)).toEqual([imported.body.id]);
  });

  it('OpenAPI describes both routes with the export schema', async () => {
    const doc = (await api<{ paths: Record<string, Record<string, unknown>>; components: { schemas: Record<string, unknown> } }>(
      server.url,
      'GET',
      '/openapi.json',
    )).body;
    expect(Object.keys(doc.paths['/api/chats/{id}/export'] ?? {})).toEqual(['get']);
    expect(Object.keys(doc.paths['/api/chats/import'] ?? {})).toEqual(['post']);
    expect(doc.components.schemas).toHaveProperty('ChatExport');
    expect(JSON.stringify(doc.paths['/api/chats/import'])).toContain('#/components/schemas/ChatExport');
  });
});
