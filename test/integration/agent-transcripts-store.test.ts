// The agents' session transcripts in the store (SESSION_STORE=database), on both stores: the SessionStore contract
// the agent SDK relies on (order, null for the unknown, subagent keys, delete), through the chat's adapter.
import { expect, it } from 'vitest';
import { ChatSessionStore } from '../../src/agent/database-session-store.js';
import { describeEachStore, storeForEachTest, transcriptRows } from '../helpers/stores.js';

const line = (type: string, uuid?: string, extra: Record<string, unknown> = {}) => ({ type, ...(uuid ? { uuid } : {}), ...extra });

describeEachStore('agent transcripts in the store', (kind) => {
  const t = storeForEachTest(kind);

  const rowsOf = (chatId: string) => transcriptRows(t.db, chatId);

  it('reads back what was appended, in order and deep-equal; null for a session never written', async () => {
    const chat = await t.store.chats.create('t');
    const sessions = new ChatSessionStore(t.store.agentTranscripts, chat.id);
    const key = { projectKey: '-srv-workspaces-x', sessionId: 's1' };
    const first = [line('user', 'u1', { message: { role: 'user', content: [{ type: 'text', text: 'hé \u0000 "quoted"' }] } }), line('queue-operation')];
    const second = [line('assistant', 'a1', { nested: { b: 2, a: [1, null, true] } }), line('last-prompt', undefined, { text: 'x' })];
    await sessions.append(key, first);
    await sessions.append(key, []);
    await sessions.append(key, second);
    expect(await sessions.load(key)).toEqual([...first, ...second]);
    expect(await sessions.load({ ...key, sessionId: 'unknown' })).toBeNull();
    // The project key (the working directory's path on the node that wrote it) does not matter: another node's
    // folders differ.
    expect(await sessions.load({ ...key, projectKey: '-other-node-workspaces-x' })).toEqual([...first, ...second]);
  });

  it('skips a line whose uuid the transcript has (a retried append), keeps lines without a uuid', async () => {
    const chat = await t.store.chats.create('t');
    const sessions = new ChatSessionStore(t.store.agentTranscripts, chat.id);
    const key = { projectKey: 'p', sessionId: 's1' };
    await sessions.append(key, [line('user', 'u1'), line('mode')]);
    await sessions.append(key, [line('user', 'u1'), line('mode'), line('assistant', 'a1')]);
    expect((await sessions.load(key))?.map((e) => e.type)).toEqual(['user', 'mode', 'mode', 'assistant']);
  });

  it('keeps subagent transcripts apart, lists them, and deletes them with the main one', async () => {
    const chat = await t.store.chats.create('t');
    const sessions = new ChatSessionStore(t.store.agentTranscripts, chat.id);
    const main = { projectKey: 'p', sessionId: 's1' };
    const sub = { ...main, subpath: 'subagents/agent-a1' };
    await sessions.append(main, [line('user', 'u1')]);
    // The same uuid under another subpath is another line.
    await sessions.append(sub, [line('user', 'u1'), line('agent_metadata', undefined, { agentType: 'general-purpose' })]);
    await sessions.append({ ...main, subpath: 'subagents/agent-b2' }, [line('user', 'u2')]);
    expect(await sessions.load(main)).toEqual([line('user', 'u1')]);
    expect(await sessions.load(sub)).toEqual([line('user', 'u1'), line('agent_metadata', undefined, { agentType: 'general-purpose' })]);
    expect(await sessions.listSubkeys(main)).toEqual(['subagents/agent-a1', 'subagents/agent-b2']);

    await sessions.delete(sub);
    expect(await sessions.load(sub)).toBeNull();
    expect(await sessions.listSubkeys(main)).toEqual(['subagents/agent-b2']);
    await sessions.delete(main);
    expect(await sessions.listSubkeys(main)).toEqual([]);
    expect(await rowsOf(chat.id)).toBe(0);
  });

  it("serves only its own chat's transcripts: another chat's store sees none of them", async () => {
    const a = await t.store.chats.create('a');
    const b = await t.store.chats.create('b');
    const key = { projectKey: 'p', sessionId: 's1' };
    await new ChatSessionStore(t.store.agentTranscripts, a.id).append(key, [line('user', 'u1')]);
    expect(await new ChatSessionStore(t.store.agentTranscripts, b.id).load(key)).toBeNull();
    expect(await t.store.agentTranscripts.has(b.id, 's1')).toBe(false);
  });

  it('copies a session to another chat (a fork) in order with its subagents; false for a session it lacks', async () => {
    const a = await t.store.chats.create('a');
    const b = await t.store.chats.create('b');
    const sessions = new ChatSessionStore(t.store.agentTranscripts, a.id);
    const lines = Array.from({ length: 30 }, (_, i) => line(i % 3 === 0 ? 'mode' : 'user', i % 3 === 0 ? undefined : `u${i}`, { i }));
    await sessions.append({ projectKey: 'p', sessionId: 's1' }, lines);
    await sessions.append({ projectKey: 'p', sessionId: 's1', subpath: 'subagents/agent-x' }, [line('user', 'sub')]);
    await sessions.append({ projectKey: 'p', sessionId: 'other' }, [line('user', 'not copied')]);

    expect(await t.store.agentTranscripts.copySession(a.id, b.id, 's1')).toBe(true);
    expect(await t.store.agentTranscripts.copySession(a.id, b.id, 'missing')).toBe(false);
    const copy = new ChatSessionStore(t.store.agentTranscripts, b.id);
    expect(await copy.load({ projectKey: 'q', sessionId: 's1' })).toEqual(lines);
    expect(await copy.listSubkeys({ projectKey: 'q', sessionId: 's1' })).toEqual(['subagents/agent-x']);
    expect(await copy.load({ projectKey: 'q', sessionId: 'other' })).toBeNull();
    // The fork's agent appends to its copy; the original is untouched.
    await copy.append({ projectKey: 'q', sessionId: 's1' }, [line('assistant', 'fork-only')]);
    expect(await sessions.load({ projectKey: 'p', sessionId: 's1' })).toEqual(lines);
  });

  it('a large append (more lines than one INSERT takes) is stored whole, in order', async () => {
    const chat = await t.store.chats.create('t');
    const sessions = new ChatSessionStore(t.store.agentTranscripts, chat.id);
    const lines = Array.from({ length: 1_234 }, (_, i) => line('user', `u${i}`, { i }));
    await sessions.append({ projectKey: 'p', sessionId: 's1' }, lines);
    expect(await sessions.load({ projectKey: 'p', sessionId: 's1' })).toEqual(lines);
  });

  it("go with their chat: deleted with it, and by a history clear", async () => {
    const chat = await t.store.chats.create('t');
    const other = await t.store.chats.create('other');
    for (const id of [chat.id, other.id]) {
      await new ChatSessionStore(t.store.agentTranscripts, id).append({ projectKey: 'p', sessionId: 's1' }, [line('user', 'u1'), line('mode')]);
    }
    await t.store.messages.clear(chat.id);
    expect(await rowsOf(chat.id)).toBe(0);
    expect(await rowsOf(other.id)).toBe(2);
    await t.store.chats.delete(other.id);
    expect(await rowsOf(other.id)).toBe(0);
  });
});
