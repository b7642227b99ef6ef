// Rate limits and quotas over real HTTP and WebSockets: REST requests per minute (per user, per IP without a
// token), chat messages per minute per user across sockets, chats per user. Local mode is never limited.

import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { RateLimiter } from '../../src/limits/rate-limiter.js';
import type { Chat } from '../../src/protocol/chat.js';
import type { ServerEvent } from '../../src/protocol/ws.js';
import { api, openSocket, request, startAuthServer, type SocketOutcome } from '../helpers/auth.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

const servers: TestServer[] = [];
const sockets: SocketOutcome[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) if (s.admitted) s.socket.close();
  for (const server of servers.splice(0)) {
    await server.close();
    fs.rmSync(server.dir, { recursive: true, force: true });
  }
});

async function authServer(names: string[], env: Record<string, string>) {
  const started = await startAuthServer(names, env);
  servers.push(started.server);
  return started;
}

async function userSocket(server: TestServer, token: string) {
  const outcome = await openSocket(server.wsUrl, ['agent-chat', `bearer.${token}`]);
  sockets.push(outcome);
  if (!outcome.admitted) throw new Error(`refused: ${outcome.code}`);
  return outcome;
}

/** The answer to a `chat` frame: its echo, or an error (here agent_unavailable: the test server has no model). */
const chatAnswer = (chatId: string) => (e: ServerEvent) =>
  ('chat_id' in e && e.chat_id === chatId && (e.type === 'error' || e.type === 'user_message'));

describe('REST rate limit (RATE_LIMIT_PER_MINUTE)', () => {
  it('answers 429 with a detail and Retry-After past the limit, per user', async () => {
    const { server, users } = await authServer(['alice', 'bob'], { RATE_LIMIT_PER_MINUTE: '5' });
    for (let i = 0; i < 5; i++) {
      expect((await api(server.url, 'GET', '/api/chats', { token: users.alice!.token })).status).toBe(200);
    }
    const limited = await api<{ detail: string }>(server.url, 'GET', '/api/chats', { token: users.alice!.token });
    expect(limited.status).toBe(429);
    expect(limited.body.detail).toMatch(/too many requests: at most 5 a minute/);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    // Every route counts against the same allowance.
    expect((await api(server.url, 'POST', '/api/chats', { token: users.alice!.token })).status).toBe(429);
    // Another user has an allowance of their own.
    expect((await api(server.url, 'GET', '/api/chats', { token: users.bob!.token })).status).toBe(200);
  });

  it('counts requests without a valid token per IP, so tokens cannot be guessed quickly', async () => {
    const { server, users } = await authServer(['alice'], { RATE_LIMIT_PER_MINUTE: '3' });
    const wrong = { authorization: `Bearer act_${'y'.repeat(43)}` };
    for (let i = 0; i < 3; i++) expect((await api(server.url, 'GET', '/api/chats', { headers: wrong })).status).toBe(401);
    expect((await api(server.url, 'GET', '/api/chats', { headers: wrong })).status).toBe(429);
    expect((await api(server.url, 'GET', '/api/chats')).status).toBe(429);
    // The user's own allowance is separate from the IP's.
    expect((await api(server.url, 'GET', '/api/chats', { token: users.alice!.token })).status).toBe(200);
  });

  it('leaves the probes alone', async () => {
    const { server } = await authServer(['alice'], { RATE_LIMIT_PER_MINUTE: '2' });
    for (let i = 0; i < 6; i++) expect((await api(server.url, 'GET', '/healthz')).status).toBe(200);
  });

  it('does not limit local mode (the loopback service behaves as before users existed)', async () => {
    const server = await startTestServer({ RATE_LIMIT_PER_MINUTE: '3' });
    servers.push(server);
    for (let i = 0; i < 10; i++) expect((await api(server.url, 'GET', '/api/chats')).status).toBe(200);
  });

  it('limits per IP with AUTH_DISABLED', async () => {
    const server = await startTestServer({ RATE_LIMIT_PER_MINUTE: '3', AUTH_DISABLED: 'true' });
    servers.push(server);
    for (let i = 0; i < 3; i++) expect((await api(server.url, 'GET', '/api/chats')).status).toBe(200);
    expect((await api(server.url, 'GET', '/api/chats')).status).toBe(429);
  });

  it('is off with RATE_LIMIT_PER_MINUTE=0', async () => {
    const { server, users } = await authServer(['alice'], { RATE_LIMIT_PER_MINUTE: '0' });
    for (let i = 0; i < 10; i++) {
      expect((await api(server.url, 'GET', '/api/chats', { token: users.alice!.token })).status).toBe(200);
    }
  });
});

describe('WebSocket message limit (MESSAGES_PER_MINUTE)', () => {
  it('answers rate_limited past the limit, counting all sockets of a user together', async () => {
    const { server, users } = await authServer(['alice', 'bob'], { MESSAGES_PER_MINUTE: '2' });
    const token = users.alice!.token;
    const chat = (await api<Chat>(server.url, 'POST', '/api/chats', { token })).body;
    const first = await userSocket(server, token);
    const second = await userSocket(server, token);
    if (!first.admitted || !second.admitted) throw new Error('refused');

    const frame = { type: 'chat', chat_id: chat.id, content: 'hi' };
    // The first two are admitted (and fail later for want of a model: this server has none).
    for (const s of [first, first]) {
      const answer = await request(s.socket, s.events, frame, chatAnswer(chat.id));
      expect(answer).not.toMatchObject({ code: 'rate_limited' });
    }
    const third = await request(second.socket, second.events, frame, chatAnswer(chat.id));
    expect(third).toMatchObject({ type: 'error', code: 'rate_limited', chat_id: chat.id });
    expect((third as { error: string }).error).toMatch(/at most 2 a minute; try again in \d+ s/);

    // Other frames are not counted, and the socket stays open.
    const subscribed = await request(second.socket, second.events, { type: 'subscribe', chat_id: chat.id }, (e) => e.type === 'history');
    expect(subscribed.type).toBe('history');

    // Bob has his own allowance.
    const bobChat = (await api<Chat>(server.url, 'POST', '/api/chats', { token: users.bob!.token })).body;
    const bob = await userSocket(server, users.bob!.token);
    if (!bob.admitted) throw new Error('refused');
    const bobAnswer = await request(bob.socket, bob.events, { ...frame, chat_id: bobChat.id }, chatAnswer(bobChat.id));
    expect(bobAnswer).not.toMatchObject({ code: 'rate_limited' });
  });

  it('does not limit local mode', async () => {
    const server = await startTestServer({ MESSAGES_PER_MINUTE: '1' });
    servers.push(server);
    const chat = (await api<Chat>(server.url, 'POST', '/api/chats')).body;
    const s = await openSocket(server.wsUrl);
    sockets.push(s);
    if (!s.admitted) throw new Error('refused');
    for (let i = 0; i < 4; i++) {
      const answer = await request(s.socket, s.events, { type: 'chat', chat_id: chat.id, content: 'hi' }, chatAnswer(chat.id));
      expect(answer).not.toMatchObject({ code: 'rate_limited' });
    }
  });
});

describe('MAX_CHATS_PER_USER', () => {
  it('refuses a chat beyond the quota with 403 and a detail, per user', async () => {
    const { server, users } = await authServer(['alice', 'bob'], { MAX_CHATS_PER_USER: '2' });
    const alice = { token: users.alice!.token };
    const a1 = (await api<Chat>(server.url, 'POST', '/api/chats', alice)).body;
    expect((await api(server.url, 'POST', '/api/chats', alice)).status).toBe(201);
    const refused = await api<{ detail: string }>(server.url, 'POST', '/api/chats', alice);
    expect(refused.status).toBe(403);
    expect(refused.body.detail).toMatch(/at most 2 chats/);
    expect((await api<Chat[]>(server.url, 'GET', '/api/chats', alice)).body).toHaveLength(2);
    // Bob's quota is his own.
    expect((await api(server.url, 'POST', '/api/chats', { token: users.bob!.token })).status).toBe(201);
    // Deleting one makes room.
    await api(server.url, 'DELETE', `/api/chats/${a1.id}`, alice);
    expect((await api(server.url, 'POST', '/api/chats', alice)).status).toBe(201);
  });

  it('holds under concurrent creates', async () => {
    const { server, users } = await authServer(['alice'], { MAX_CHATS_PER_USER: '3', RATE_LIMIT_PER_MINUTE: '0' });
    const results = await Promise.all(
      Array.from({ length: 10 }, () => api(server.url, 'POST', '/api/chats', { token: users.alice!.token })),
    );
    expect(results.filter((r) => r.status === 201)).toHaveLength(3);
    expect(results.filter((r) => r.status === 403)).toHaveLength(7);
  });

  it('does not apply to local mode', async () => {
    const server = await startTestServer({ MAX_CHATS_PER_USER: '1' });
    servers.push(server);
    for (let i = 0; i < 3; i++) expect((await api(server.url, 'POST', '/api/chats')).status).toBe(201);
  });
});

describe('RateLimiter', () => {
  it('allows a burst of perMinute, then one more every 60/perMinute seconds, per key', () => {
    let now = 0;
    const limiter = new RateLimiter(3, () => now);
    expect([limiter.take('a'), limiter.take('a'), limiter.take('a')]).toEqual([0, 0, 0]);
    expect(limiter.take('a')).toBe(20_000);
    expect(limiter.take('b')).toBe(0);
    now = 19_999;
    expect(limiter.take('a')).toBeGreaterThan(0);
    now = 20_000;
    expect(limiter.take('a')).toBe(0);
    now = 10 * 60_000;
    expect([limiter.take('a'), limiter.take('a'), limiter.take('a'), limiter.take('a') > 0]).toEqual([0, 0, 0, true]);
  });
});
