// Per-user ownership over real HTTP and WebSockets: another user's chat does not exist for you, on every REST
// route and every WebSocket frame; chats of local mode belong to nobody.

import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Chat } from '../../src/protocol/chat.js';
import type { ServerEvent } from '../../src/protocol/ws.js';
import { startAgentServer, type AgentTestServer } from '../helpers/agent-server.js';
import { api, openSocket, openStore, request, seedUsers, startAuthServer, type TestUser } from '../helpers/auth.js';
import { makeTempDir, startTestServer, type TestServer } from '../helpers/test-server.js';
import { TestClient } from '../helpers/ws-client.js';

const isAnswer = (chatId: string) => (e: ServerEvent) =>
  (e.type === 'error' || e.type === 'history') && 'chat_id' in e && e.chat_id === chatId;

describe('two users on one service', () => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let aliceChat: Chat;

  beforeAll(async () => {
    const started = await startAuthServer(['alice', 'bob']);
    server = started.server;
    alice = started.users.alice!;
    bob = started.users.bob!;
    aliceChat = (await api<Chat>(server.url, 'POST', '/api/chats', { token: alice.token, json: { title: 'secret plans' } }))
      .body;
    await api(server.url, 'POST', '/api/chats', { token: bob.token, json: { title: 'bob plans' } });
  });
  afterAll(async () => {
    await server.close();
    fs.rmSync(server.dir, { recursive: true, force: true });
  });

  it('stores the creator as the owner of a chat', async () => {
    const { store, close } = await openStore(server.dir);
    try {
      expect(await store.chats.get(aliceChat.id, { userId: alice.id })).toBeDefined();
      expect(await store.chats.get(aliceChat.id, { userId: bob.id })).toBeUndefined();
      expect(await store.chats.get(aliceChat.id, { userId: null })).toBeUndefined();
    } finally {
      await close();
    }
  });

  it("lists and searches only one's own chats", async () => {
    const titles = async (token: string, route: string) =>
      (await api<Chat[]>(server.url, 'GET', route, { token })).body.map((c) => c.title);
    expect(await titles(alice.token, '/api/chats')).toEqual(['secret plans']);
    expect(await titles(bob.token, '/api/chats')).toEqual(['bob plans']);
    expect(await titles(bob.token, '/api/chats/search?q=plans')).toEqual(['bob plans']);
    expect(await titles(bob.token, '/api/chats/search?q=secret')).toEqual([]);
  });

  it.each([
    ['GET', ''],
    ['GET', '/messages'],
    ['PUT', ''],
    ['PATCH', ''],
    ['DELETE', ''],
  ])("answers 404 to %s /api/chats/{id}%s on another user's chat, as for a chat that does not exist", async (method, suffix) => {
    const json = method === 'PUT' || method === 'PATCH' ? { title: 'pwned' } : undefined;
    const res = await api<{ detail: string }>(server.url, method, `/api/chats/${aliceChat.id}${suffix}`, {
      token: bob.token,
      ...(json ? { json } : {}),
    });
    expect(res.status).toBe(404);
    expect(res.body.detail).toBe(`chat ${aliceChat.id} not found`);
    // Untouched for its owner.
    const own = await api<Chat>(server.url, 'GET', `/api/chats/${aliceChat.id}`, { token: alice.token });
    expect(own.status).toBe(200);
    expect(own.body.title).toBe('secret plans');
  });

  it.each([
    [{ type: 'subscribe' }],
    [{ type: 'subscribe', last_seq: 1 }],
    [{ type: 'chat', content: 'hello' }],
    [{ type: 'stop' }],
    [{ type: 'clear_history' }],
    [{ type: 'permission_response', request_id: 'req-1', allow: true }],
  ])("answers not_found to a %o frame on another user's chat", async (frame) => {
    const outcome = await openSocket(server.wsUrl, ['agent-chat', `bearer.${bob.token}`]);
    if (!outcome.admitted) throw new Error('refused');
    const answer = await request(outcome.socket, outcome.events, { ...frame, chat_id: aliceChat.id }, isAnswer(aliceChat.id));
    expect(answer).toMatchObject({ type: 'error', code: 'not_found', error: `chat ${aliceChat.id} not found` });
    // Nothing of the chat reached bob's socket, and nothing was stored.
    expect(outcome.events.filter((e) => e.type !== 'connected' && e.type !== 'error')).toEqual([]);
    outcome.socket.close();
    const messages = await api<unknown[]>(server.url, 'GET', `/api/chats/${aliceChat.id}/messages`, { token: alice.token });
    expect(messages.body).toEqual([]);
  });

  it('lets the owner subscribe on the WebSocket', async () => {
    const outcome = await openSocket(server.wsUrl, ['agent-chat', `bearer.${alice.token}`]);
    if (!outcome.admitted) throw new Error('refused');
    const answer = await request(outcome.socket, outcome.events, { type: 'subscribe', chat_id: aliceChat.id }, isAnswer(aliceChat.id));
    expect(answer).toMatchObject({ type: 'history', messages: [] });
    outcome.socket.close();
  });

  it("deletes only one's own chat", async () => {
    const doomed = (await api<Chat>(server.url, 'POST', '/api/chats', { token: alice.token, json: { title: 'doomed' } })).body;
    expect((await api(server.url, 'DELETE', `/api/chats/${doomed.id}`, { token: bob.token })).status).toBe(404);
    expect((await api(server.url, 'DELETE', `/api/chats/${doomed.id}`, { token: alice.token })).status).toBe(200);
    expect((await api(server.url, 'GET', `/api/chats/${doomed.id}`, { token: alice.token })).status).toBe(404);
  });
});

describe('chats of local mode', () => {
  it('belong to nobody: invisible to users once auth is on, visible again with AUTH_DISABLED', async () => {
    const dir = makeTempDir();
    const local = await startTestServer({}, dir);
    const old = (await api<Chat>(local.url, 'POST', '/api/chats', { json: { title: 'from local mode' } })).body;
    await local.close();

    const { alice } = await seedUsers(dir, ['alice']);
    const authed = await startTestServer({}, dir);
    expect((await api<Chat[]>(authed.url, 'GET', '/api/chats', { token: alice!.token })).body).toEqual([]);
    expect((await api(authed.url, 'GET', `/api/chats/${old.id}`, { token: alice!.token })).status).toBe(404);
    const mine = (await api<Chat>(authed.url, 'POST', '/api/chats', { token: alice!.token, json: { title: 'alice' } })).body;
    await authed.close();

    // AUTH_DISABLED: no principal but "local", which sees the chats without an owner, not alice's.
    const open = await startTestServer({ AUTH_DISABLED: 'true' }, dir);
    expect((await api<Chat[]>(open.url, 'GET', '/api/chats')).body.map((c) => c.title)).toEqual(['from local mode']);
    expect((await api(open.url, 'GET', `/api/chats/${mine.id}`)).status).toBe(404);
    await open.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('with the real agent', () => {
  let server: AgentTestServer;
  let users: Record<string, TestUser>;

  beforeAll(async () => {
    const dir = makeTempDir();
    users = await seedUsers(dir, ['alice', 'bob']);
    server = await startAgentServer({}, { dir });
  });
  afterAll(async () => {
    await server.close();
  });

  it("lets the owner chat, while the other user can neither follow, stop nor clear that chat", async () => {
    const { alice, bob } = users as { alice: TestUser; bob: TestUser };
    const chat = (await api<Chat>(server.url, 'POST', '/api/chats', { token: alice.token })).body;
    const owner = await TestClient.connect(server.wsUrl, { headers: { authorization: `Bearer ${alice.token}` } });
    const intruder = await openSocket(server.wsUrl, ['agent-chat', `bearer.${bob.token}`]);
    if (!intruder.admitted) throw new Error('refused');

    const queryId = await owner.chat(chat.id, 'hello');
    for (const type of ['subscribe', 'stop', 'clear_history']) {
      const answer = await request(intruder.socket, intruder.events, { type, chat_id: chat.id }, isAnswer(chat.id));
      expect(answer).toMatchObject({ type: 'error', code: 'not_found' });
    }
    const end = await owner.waitForEnd(queryId);
    expect(end.type).toBe('result');
    expect(owner.streamedText(queryId).length).toBeGreaterThan(0);
    // Not one event of alice's chat reached bob.
    expect(intruder.events.filter((e) => e.type !== 'connected' && e.type !== 'error')).toEqual([]);
    const stored = await api<{ role: string }[]>(server.url, 'GET', `/api/chats/${chat.id}/messages`, { token: alice.token });
    expect(stored.body.map((m) => m.role)).toEqual(['user', 'assistant']);
    intruder.socket.close();
    await owner.close();
  });
});
