// End-to-end: bad frames, unknown chats, model API failures, missing credentials (real agent, fake model).
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventOf } from '../../src/protocol/ws.js';
import { startFakeModel, type FakeModel } from '../../fake-model/server.js';
import { createChat, startAgentServer, type AgentTestServer } from '../helpers/agent-server.js';
import { TestClient } from '../helpers/ws-client.js';
import { expectOneTerminalLast, fakeRequestsFor, getJson, getMessages, nextError, sleep, subscribe } from './support.js';

describe('errors over /ws/chat with the real agent', () => {
  let server: AgentTestServer;
  beforeAll(async () => {
    server = await startAgentServer();
  });
  afterAll(async () => {
    await server?.close();
  });

  describe('bad frames each get an error event and the socket stays open', () => {
    // No agent is needed here: a server that does not start one on subscribe keeps these tests cheap.
    let bare: AgentTestServer;
    beforeAll(async () => {
      bare = await startAgentServer({ AGENT_PREWARM: 'false' });
    });
    afterAll(async () => {
      await bare?.close();
    });
    const unknownChat = randomUUID();
    const cases: { name: string; frame: string | Buffer; code: string; chatId?: string }[] = [
      { name: 'malformed JSON', frame: '{"type":"subscribe",', code: 'bad_frame' },
      { name: 'a binary frame', frame: Buffer.from([0x7b, 0x7d]), code: 'bad_frame' },
      { name: 'JSON that is not an object', frame: 'null', code: 'bad_frame' },
      { name: 'no type', frame: '{"chat_id":"x"}', code: 'bad_frame' },
      { name: 'an unknown type', frame: '{"type":"dance","chat_id":"x"}', code: 'unknown_type' },
      { name: 'subscribe without chat_id', frame: '{"type":"subscribe"}', code: 'bad_frame' },
      { name: 'chat without chat_id', frame: '{"type":"chat","content":"hi"}', code: 'bad_frame' },
      { name: 'content that is a number', frame: `{"type":"chat","chat_id":"CHAT","content":42}`, code: 'bad_frame', chatId: 'CHAT' },
      { name: 'empty content', frame: `{"type":"chat","chat_id":"CHAT","content":"   "}`, code: 'invalid_message', chatId: 'CHAT' },
      { name: 'subscribe to an unknown chat', frame: `{"type":"subscribe","chat_id":"${unknownChat}"}`, code: 'not_found', chatId: unknownChat },
      { name: 'chat to an unknown chat', frame: `{"type":"chat","chat_id":"${unknownChat}","content":"hi"}`, code: 'not_found', chatId: unknownChat },
      { name: 'stop of an unknown chat', frame: `{"type":"stop","chat_id":"${unknownChat}"}`, code: 'not_found', chatId: unknownChat },
      { name: 'clear_history of an unknown chat', frame: `{"type":"clear_history","chat_id":"${unknownChat}"}`, code: 'not_found', chatId: unknownChat },
      { name: 'a chat id that is not a uuid', frame: '{"type":"subscribe","chat_id":"not-a-uuid"}', code: 'not_found', chatId: 'not-a-uuid' },
    ];

    for (const c of cases) {
      it(c.name, async () => {
        const chatId = await createChat(bare.url);
        const client = await TestClient.connect(bare.wsUrl);
        const from = client.events.length;
        client.socket.send(typeof c.frame === 'string' ? c.frame.replaceAll('CHAT', chatId) : c.frame);
        const error = await nextError(client, from);
        expect(error.code).toBe(c.code);
        expect(error.error).toMatch(/.+/);
        if (c.chatId) expect(error.chat_id).toBe(c.chatId === 'CHAT' ? chatId : c.chatId);
        // Exactly one answer, and the socket still works: a valid subscribe is answered.
        const { history } = await subscribe(client, chatId);
        expect(history.messages).toEqual([]);
        expect(client.events.slice(from).filter((e) => e.type === 'error')).toHaveLength(1);
        expect(client.socket.readyState).toBe(client.socket.OPEN);
        // A rejected frame stores nothing and creates nothing.
        expect(await getMessages(bare, chatId)).toEqual([]);
        expect((await getJson(`${bare.url}/api/chats/${unknownChat}`)).status).toBe(404);
        await client.close();
      });
    }
  });

  describe('model API failures end the query with exactly one error', () => {
    for (const directive of ['/error 500', '/error 429', '/error 401', '/error 529', '/midstream-error', '/disconnect 2']) {
      it(directive, async () => {
        const chatId = await createChat(server.url);
        const client = await TestClient.connect(server.wsUrl);
        const queryId = await client.chat(chatId, directive);
        const end = await client.waitForEnd(queryId);
        expect(end).toMatchObject({ type: 'error', code: 'agent_error', chat_id: chatId, query_id: queryId });
        expect((end as EventOf<'error'>).error).toMatch(/.+/);
        // Nothing of the failed query follows its error (give a straggler the chance to show up).
        await sleep(300);
        expectOneTerminalLast(client, queryId);

        // The failure is stored: the user message, then an assistant message with status error.
        const stored = await getMessages(server, chatId);
        expect(stored[0]).toMatchObject({ role: 'user', content: directive, status: 'complete' });
        expect(stored.at(-1)).toMatchObject({ role: 'assistant', status: 'error', content: (end as EventOf<'error'>).error });

        // The chat is not wedged: the next message reaches the model and ends with exactly one terminal event.
        // (The CLI merges it into the unanswered failed turn, "<directive>\n" + "<next>", and this fake then replays
        // the directive, so with the fake it fails again; the recovery itself is covered below with plain text.)
        const before = fakeRequestsFor(server, chatId).length;
        const next = await client.chat(chatId, 'after the failure');
        await client.waitForEnd(next);
        expectOneTerminalLast(client, next);
        const sent = fakeRequestsFor(server, chatId).slice(before);
        const lastUser = (sent.at(-1)?.body.messages as { role: string; content: unknown }[]).findLast((m) => m.role === 'user');
        expect(JSON.stringify(lastUser?.content)).toContain('after the failure');
        await client.close();
      });
    }
  });

  it('/midstream-error: the text streamed before the failure is stored, and the error after it', async () => {
    const chatId = await createChat(server.url);
    const client = await TestClient.connect(server.wsUrl);
    const queryId = await client.chat(chatId, '/midstream-error');
    const end = await client.waitForEnd(queryId);
    expect(end).toMatchObject({ type: 'error' });
    const streamed = client.streamedText(queryId);
    expect(streamed).toBe('part1 part2 part3 ');
    expect(client.queryEvents(queryId).map((e) => e.type)).toEqual([
      'user_message',
      'stream_start',
      'text_delta',
      'text_delta',
      'text_delta',
      'stream_end',
      'error',
    ]);
    const stored = await getMessages(server, chatId);
    expect(stored.map((m) => [m.role, m.content])).toEqual([
      ['user', '/midstream-error'],
      ['assistant', streamed],
      ['assistant', (end as EventOf<'error'>).error],
    ]);
    await client.close();
  });

  // On a stream error the CLI closes the block normally (content_block_stop) before reporting the error: the
  // session must still mark that block interrupted.
  it('/midstream-error: the partial answer is stored as interrupted, not complete', async () => {
    const chatId = await createChat(server.url);
    const client = await TestClient.connect(server.wsUrl);
    const queryId = await client.chat(chatId, '/midstream-error');
    await client.waitForEnd(queryId);
    const stored = await getMessages(server, chatId);
    expect(stored.map((m) => [m.role, m.status])).toEqual([
      ['user', 'complete'],
      ['assistant', 'interrupted'],
      ['assistant', 'error'],
    ]);
    await client.close();
  });

  it("a failing chat does not disturb another chat's query running at the same time", async () => {
    const [good, bad] = await Promise.all([createChat(server.url, 'good'), createChat(server.url, 'bad')]);
    const client = await TestClient.connect(server.wsUrl);
    const other = await TestClient.connect(server.wsUrl);
    const goodQuery = await client.chat(good, '/slow 20 30');
    const badQuery = await client.chat(bad, '/error 500');
    const badOther = await other.chat(bad, '/error 529');
    const [goodEnd, badEnd, badOtherEnd] = await Promise.all([
      client.waitForEnd(goodQuery),
      client.waitForEnd(badQuery),
      other.waitForEnd(badOther),
    ]);
    expect(badOtherEnd).toMatchObject({ type: 'error', chat_id: bad });
    expect(['error', 'cancelled']).toContain(badEnd.type);
    expect(goodEnd).toMatchObject({ type: 'result', success: true, chat_id: good });
    expect(client.streamedText(goodQuery)).toBe(Array.from({ length: 20 }, (_, i) => `chunk${i + 1} `).join(''));
    expectOneTerminalLast(client, goodQuery);
    expect(client.queryEvents(goodQuery).every((e) => e.type !== 'error')).toBe(true);
    await Promise.all([client.close(), other.close()]);
  });
});

describe('the model API down, then back', () => {
  let fake: FakeModel;
  let server: AgentTestServer;
  beforeAll(async () => {
    fake = await startFakeModel();
    server = await startAgentServer({}, { fake });
  });
  afterAll(async () => {
    await server?.close();
    await fake?.close();
  });

  it('a message while the API is unreachable ends with one error; the next message, once it is back, gets a result', async () => {
    const chatId = await createChat(server.url);
    const client = await TestClient.connect(server.wsUrl);
    const warm = await client.chat(chatId, 'warm up');
    expect(await client.waitForEnd(warm)).toMatchObject({ type: 'result', success: true });

    const port = fake.port;
    await fake.close();
    const failed = await client.chat(chatId, 'while it is down');
    expect(await client.waitForEnd(failed)).toMatchObject({ type: 'error', code: 'agent_error', chat_id: chatId });
    expectOneTerminalLast(client, failed);

    fake = await startFakeModel({ port });
    const next = await client.chat(chatId, 'back again');
    expect(await client.waitForEnd(next)).toMatchObject({ type: 'result', success: true });
    expectOneTerminalLast(client, next);
    // The CLI merges the unanswered message into this turn: the model sees both, and answers.
    expect(client.streamedText(next)).toMatch(/^Echo: /);
    expect(client.streamedText(next)).toContain('back again');
    const stored = await getMessages(server, chatId);
    expect(stored.map((m) => [m.role, m.status])).toEqual([
      ['user', 'complete'],
      ['assistant', 'complete'],
      ['user', 'complete'],
      ['assistant', 'error'],
      ['user', 'complete'],
      ['assistant', 'complete'],
    ]);
    await client.close();
  });
});

describe('a service without model credentials', () => {
  let server: AgentTestServer;
  beforeAll(async () => {
    // Blank means unset: the service starts, but cannot answer.
    server = await startAgentServer({ ANTHROPIC_API_KEY: '' });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('answers a chat message at once with agent_unavailable and stores nothing', async () => {
    const chatId = await createChat(server.url);
    const client = await TestClient.connect(server.wsUrl);
    await subscribe(client, chatId);
    const from = client.events.length;
    client.send({ type: 'chat', chat_id: chatId, content: 'hello?' });
    const error = await nextError(client, from);
    expect(error).toMatchObject({ code: 'agent_unavailable', chat_id: chatId });
    expect(error.error).toMatch(/ANTHROPIC_API_KEY/);
    expect(client.events.slice(from).map((e) => e.type)).toEqual(['error']);
    expect(await getMessages(server, chatId)).toEqual([]);
    expect(server.fake.requests).toHaveLength(0);

    // The socket stays usable.
    const again = await subscribe(client, chatId);
    expect(again.history.messages).toEqual([]);
    await client.close();
  });
});

describe('a model API that never answers', () => {
  let server: AgentTestServer;
  beforeAll(async () => {
    server = await startAgentServer({ AGENT_API_TIMEOUT_MS: '2000', AGENT_PREWARM: 'false' });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('ends the query with one readable error after AGENT_API_TIMEOUT_MS, not minutes later', async () => {
    const chatId = await createChat(server.url);
    const client = await TestClient.connect(server.wsUrl);
    const queryId = await client.chat(chatId, '/hang');
    const end = await client.waitForEnd(queryId, 25_000);
    expect(end).toMatchObject({ type: 'error', code: 'agent_error' });
    expect((end as EventOf<'error'>).error.length).toBeGreaterThan(0);
    expectOneTerminalLast(client, queryId);
    await client.close();
  });
});
