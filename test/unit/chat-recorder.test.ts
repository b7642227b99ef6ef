import type { FastifyBaseLogger } from 'fastify';
import { describe, expect, it, vi } from 'vitest';
import { ChatRecorder } from '../../src/agent/chat-recorder.js';
import { LoopTurns } from '../../src/lib/loop-turns.js';
import { storeForEachTest } from '../helpers/stores.js';

const noop = () => undefined;
const log = { level: 'silent', fatal: noop, error: noop, warn: noop, info: noop, debug: noop, trace: noop, silent: noop } as unknown as FastifyBaseLogger;

const current = storeForEachTest('sqlite');

describe('ChatRecorder: the agent session id', () => {
  it('is stored when it changes; a repeated report (every turn reports it twice) reads and writes nothing', async () => {
    const { store } = current;
    const chat = await store.chats.create('chat');
    const recorder = new ChatRecorder(store, chat.id, log, new LoopTurns());
    const reads = vi.spyOn(store.chats, 'getResumePoint');
    const writes = vi.spyOn(store.chats, 'setSdkSessionId');

    await recorder.sdkSessionId('s1');
    await recorder.sdkSessionId('s1');
    await recorder.sdkSessionId('s1');
    expect([reads.mock.calls.length, writes.mock.calls.length]).toEqual([1, 1]);

    await recorder.sdkSessionId('s2');
    expect([reads.mock.calls.length, writes.mock.calls.length]).toEqual([2, 2]);
    reads.mockRestore();
    expect(await store.chats.getResumePoint(chat.id)).toEqual({ sessionId: 's2', at: null });
  });

  it('is stored again after a resume point was set (a retry) and after the history was cleared', async () => {
    const { store } = current;
    const chat = await store.chats.create('chat');
    const recorder = new ChatRecorder(store, chat.id, log, new LoopTurns());
    await recorder.sdkSessionId('s1');

    // A retry resumes at an earlier point of the same session: the next report of that session must clear the point.
    await recorder.resumePoint('s1', 'uuid-of-the-question');
    expect(await store.chats.getResumePoint(chat.id)).toEqual({ sessionId: 's1', at: 'uuid-of-the-question' });
    await recorder.sdkSessionId('s1');
    expect(await store.chats.getResumePoint(chat.id)).toEqual({ sessionId: 's1', at: null });

    // Clearing the history forgets the session; the agent that reports it again must store it again.
    await recorder.clearHistory();
    expect(await store.chats.getResumePoint(chat.id)).toEqual({ sessionId: null, at: null });
    await recorder.sdkSessionId('s1');
    expect(await store.chats.getResumePoint(chat.id)).toEqual({ sessionId: 's1', at: null });
  });
});
