// End-to-end: several chats on one socket, several sockets on one chat (real agent, fake model).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServerEvent } from '../../src/protocol/ws.js';
import { createChat, startAgentServer, type AgentTestServer } from '../helpers/agent-server.js';
import { TestClient } from '../helpers/ws-client.js';
import { deltasOf, expectOneTerminalLast, isTerminal, subscribe } from './support.js';

const slowText = (n: number) => Array.from({ length: n }, (_, i) => `chunk${i + 1} `).join('');

/** What two subscribers must agree on: each event of a query without the per-socket details. */
const comparable = (events: ServerEvent[]) =>
  events.map((e) => ({ type: e.type, seq: 'seq' in e ? e.seq : undefined, delta: e.type === 'text_delta' ? e.delta : undefined }));

describe('several chats and several sockets with the real agent', () => {
  let server: AgentTestServer;
  beforeAll(async () => {
    server = await startAgentServer();
  });
  afterAll(async () => {
    await server?.close();
  });

  it('two chats stream at once on one socket: every event names its chat and the answers do not mix', async () => {
    const [chatA, chatB] = await Promise.all([createChat(server.url, 'A'), createChat(server.url, 'B')]);
    const client = await TestClient.connect(server.wsUrl);
    const queryA = await client.chat(chatA, '/slow 10 30');
    const queryB = await client.chat(chatB, '/slow 10 30');
    const [endA, endB] = await Promise.all([client.waitForEnd(queryA), client.waitForEnd(queryB)]);
    expect(endA).toMatchObject({ type: 'result', success: true, chat_id: chatA });
    expect(endB).toMatchObject({ type: 'result', success: true, chat_id: chatB });

    // Both ran at the same time: B's message went in before A finished.
    const indexOf = (pred: (e: ServerEvent) => boolean) => client.events.findIndex(pred);
    expect(indexOf((e) => e.type === 'user_message' && e.query_id === queryB)).toBeLessThan(indexOf((e) => e === endA));

    for (const [chatId, queryId] of [
      [chatA, queryA],
      [chatB, queryB],
    ] as const) {
      const events = client.queryEvents(queryId);
      expect(events.every((e) => 'chat_id' in e && e.chat_id === chatId)).toBe(true);
      expect(client.streamedText(queryId)).toBe(slowText(10));
      expectOneTerminalLast(client, queryId);
      // Each chat numbers its own events: one more for each event, without gaps, whatever the other chat does.
      const live = client.events.filter(
        (e) => 'seq' in e && e.chat_id === chatId && !['history', 'tool_history', 'processing_state'].includes(e.type),
      );
      const seqs = live.map((e) => (e as { seq: number }).seq);
      expect(seqs).toEqual(seqs.map((_, i) => seqs[0]! + i));
    }
    // Events for chat A never carry B's query and vice versa.
    expect(client.events.some((e) => 'query_id' in e && e.query_id === queryA && e.chat_id !== chatA)).toBe(false);
    expect(client.events.some((e) => 'query_id' in e && e.query_id === queryB && e.chat_id !== chatB)).toBe(false);
    await client.close();
  });

  it('two sockets on one chat get the same events in the same order', async () => {
    const chatId = await createChat(server.url);
    const [one, two] = await Promise.all([TestClient.connect(server.wsUrl), TestClient.connect(server.wsUrl)]);
    await subscribe(one, chatId);
    await subscribe(two, chatId);
    const queryId = await one.chat(chatId, '/slow 10 30');
    const [endOne, endTwo] = await Promise.all([one.waitForEnd(queryId), two.waitForEnd(queryId)]);
    expect(endOne).toMatchObject({ type: 'result', success: true });
    expect(endTwo).toEqual(endOne);

    const eventsTwo = two.queryEvents(queryId);
    expect(eventsTwo[0]).toMatchObject({ type: 'user_message', content: '/slow 10 30', chat_id: chatId });
    expect(comparable(eventsTwo)).toEqual(comparable(one.queryEvents(queryId)));
    expect(two.streamedText(queryId)).toBe(slowText(10));
    await Promise.all([one.close(), two.close()]);
  });

  it('a socket subscribing mid-stream gets the partial text, then exactly the rest of the answer', async () => {
    const chatId = await createChat(server.url);
    const one = await TestClient.connect(server.wsUrl);
    const queryId = await one.chat(chatId, '/slow 20 40');
    let seen = 0;
    await one.waitFor((e) => e.type === 'text_delta' && e.query_id === queryId && ++seen >= 5);

    const two = await TestClient.connect(server.wsUrl);
    const { history, processingState } = await subscribe(two, chatId);
    expect(processingState).toMatchObject({ is_processing: true, query_id: queryId, chat_id: chatId });
    const partial = processingState.streaming_state?.text ?? '';
    expect(partial.startsWith('chunk1 chunk2 chunk3 chunk4 chunk5 ')).toBe(true);
    // The user message is stored before the agent sees it, so the snapshot already has it.
    expect(history.messages.map((m) => [m.role, m.content])).toEqual([['user', '/slow 20 40']]);

    expect(await two.waitForEnd(queryId)).toMatchObject({ type: 'result', success: true });
    await one.waitForEnd(queryId);
    // Everything after the snapshot (processing_state carries the query id too: it is not "later").
    const later = two.queryEvents(queryId).filter((e) => e.type !== 'processing_state');
    expect(later[0]?.type).toBe('text_delta');
    expect(later.every((e) => (e as { seq: number }).seq > processingState.seq)).toBe(true);
    expect(partial + deltasOf(two, queryId).join('')).toBe(slowText(20));
    // The partial text is exactly what the first socket had received up to the snapshot's seq.
    const before = one
      .queryEvents(queryId)
      .filter((e) => e.type === 'text_delta' && e.seq <= processingState.seq)
      .map((e) => (e as { delta: string }).delta)
      .join('');
    expect(partial).toBe(before);
    await Promise.all([one.close(), two.close()]);
  });

  it('a socket that closes mid-stream does not disturb another one on the same chat', async () => {
    const chatId = await createChat(server.url);
    const [one, two] = await Promise.all([TestClient.connect(server.wsUrl), TestClient.connect(server.wsUrl)]);
    await subscribe(two, chatId);
    const queryId = await one.chat(chatId, '/slow 10 30');
    await two.waitFor((e) => e.type === 'text_delta' && e.query_id === queryId);
    await one.close();
    expect(await two.waitForEnd(queryId)).toMatchObject({ type: 'result', success: true });
    expect(two.streamedText(queryId)).toBe(slowText(10));
    await two.close();
  });

  it('after unsubscribe a socket gets no more events of that chat', async () => {
    const chatId = await createChat(server.url);
    const [one, two] = await Promise.all([TestClient.connect(server.wsUrl), TestClient.connect(server.wsUrl)]);
    await subscribe(two, chatId);
    two.send({ type: 'unsubscribe', chat_id: chatId });
    // Frames are handled in order: once this second subscribe (to another chat) is answered, the unsubscribe is done.
    const other = await createChat(server.url);
    await subscribe(two, other);
    const from = two.events.length;
    const queryId = await one.chat(chatId, 'not for two');
    await one.waitForEnd(queryId);
    // `two` still works for the other chat; its answer arrives after every event `one` got, so nothing was missed.
    const otherQuery = await two.chat(other, 'for two');
    await two.waitForEnd(otherQuery);
    // chat_updated is the chat list's notice to every socket of the owner, whatever it follows: not the chat's stream.
    const ofChat = two.events.slice(from).filter((e) => e.type !== 'chat_updated' && 'chat_id' in e && e.chat_id === chatId);
    expect(ofChat).toEqual([]);
    expect(two.events.some((e) => isTerminal(e) && 'query_id' in e && e.query_id === queryId)).toBe(false);
    await Promise.all([one.close(), two.close()]);
  });
});
