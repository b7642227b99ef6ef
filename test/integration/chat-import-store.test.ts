// The import's write on both stores: all of it in one transaction, so a write that fails half-way leaves nothing.
import { expect, it } from 'vitest';
import type { ChatToImport } from '../../src/store/chat-transfer.repository.js';
import { describeEachStore, storeForEachTest } from '../helpers/stores.js';
import { onePixelPng } from '../e2e/support.js';

const conversation = (): ChatToImport => ({
  title: 'Imported',
  titleSource: 'user',
  importContext: 'the transcript',
  queries: [
    {
      ref: 'q1',
      status: 'complete',
      costUsd: 0.5,
      durationMs: 1000,
      error: null,
      usage: [{ model: 'm', inputTokens: 10, outputTokens: 5, cacheReadInputTokens: 0, cacheCreationInputTokens: 0, costUsd: 0.5 }],
    },
  ],
  entries: [
    { type: 'message', role: 'user', content: 'question', status: 'complete', queryRef: 'q1', superseded: false, images: [{ mediaType: 'image/png', data: onePixelPng() }] },
    { type: 'tool_use', toolUseId: 'toolu_1', queryRef: 'q1', name: 'Bash', input: { command: 'ls' }, result: 'a.txt', isError: false, superseded: false },
    { type: 'message', role: 'assistant', content: 'answer', status: 'complete', queryRef: 'q1', superseded: false, images: [] },
  ],
});

describeEachStore('chat import in the store', (kind) => {
  const t = storeForEachTest(kind);

  const rowCounts = async () => {
    const counts: Record<string, number> = {};
    for (const table of ['chats', 'messages', 'message_images', 'tool_uses', 'queries', 'usage'] as const) {
      const row = await t.db.selectFrom(table).select((eb) => eb.fn.countAll<number | bigint>().as('n')).executeTakeFirstOrThrow();
      counts[table] = Number(row.n);
    }
    return counts;
  };

  it('stores the conversation in order, its usage marked imported (counted in no total), its transcript due', async () => {
    const data = conversation();
    Object.assign(data.entries[1]!, { superseded: true });
    const chat = (await t.store.transfer.importChat({ userId: null }, 0, data))!;
    const { entries, queries } = await t.store.transfer.transcript(chat.id);
    expect(entries.map((e) => (e.type === 'message' ? e.content : e.name))).toEqual(['question', 'Bash', 'answer']);
    expect(entries.map((e) => e.superseded)).toEqual([false, true, false]);
    expect(queries).toMatchObject([{ status: 'complete', cost_usd: 0.5, usage: [{ input_tokens: 10, cost_usd: 0.5 }] }]);
    expect(entries.every((e) => e.query_id === queries[0]!.id)).toBe(true);
    expect(await t.store.usage.chatTotals(chat.id)).toEqual({ input_tokens: 0, output_tokens: 0, cost_usd: 0, queries: 0 });
    expect(await t.store.usage.spentSince(null, '2000-01-01')).toBe(0);
    expect(await t.store.chats.importContext(chat.id)).toBe('the transcript');
    // The next message goes after the imported ones.
    const next = await t.store.messages.add({ chatId: chat.id, role: 'user', content: 'later' });
    expect((await t.store.messages.list(chat.id)).map((m) => m.content)).toEqual(['question', 'answer', 'later']);
    expect(next).toBeDefined();
  });

  it('a write that fails half-way (the last entry breaks a NOT NULL constraint) leaves nothing behind', async () => {
    const broken = conversation();
    broken.entries.push({ ...broken.entries[1]!, name: null } as never);
    await expect(t.store.transfer.importChat({ userId: null }, 0, broken)).rejects.toThrow();
    expect(await rowCounts()).toEqual({ chats: 0, messages: 0, message_images: 0, tool_uses: 0, queries: 0, usage: 0 });
  });

  it('holds the chat quota under the same lock as creating a chat', async () => {
    await t.store.chats.create('one', { userId: null });
    expect(await t.store.transfer.importChat({ userId: null }, 2, conversation())).toBeDefined();
    expect(await t.store.transfer.importChat({ userId: null }, 2, conversation())).toBeUndefined();
    expect((await rowCounts()).chats).toBe(2);
  });
});
