// What the nodes of one deployment share (REDIS_URL set): two services on one Postgres database and one Redis.
// A user's REST and message allowances are one for the deployment, a ticket asked for on one node opens a socket on
// the other exactly once, a revoked token stops working on every node, and the chat quota holds under concurrent
// creates on both.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { revokeToken } from '../../src/auth/accounts.js';
import type { Chat } from '../../src/protocol/chat.js';
import type { ServerEvent } from '../../src/protocol/ws.js';
import { api, openSocket, request, type SocketOutcome } from '../helpers/auth.js';
import { startCluster, type Cluster } from '../helpers/cluster-nodes.js';
import { redisUrl } from '../helpers/redis.js';
import { storeAvailable } from '../helpers/stores.js';

const REST_PER_MINUTE = 10;
const MAX_CHATS = 3;

/** The answer to a `chat` frame: its echo, or an error (agent_unavailable here: the nodes have no model). */
const chatAnswer = (chatId: string) => (e: ServerEvent) =>
  'chat_id' in e && e.chat_id === chatId && (e.type === 'error' || e.type === 'user_message');

describe.skipIf(redisUrl === null || !storeAvailable('postgres'))('state shared by the nodes of a deployment', () => {
  let cluster: Cluster;
  const sockets: SocketOutcome[] = [];
  const node = (i: number) => cluster.nodes[i]!;
  const token = (name: string) => cluster.users[name]!.token;

  async function userSocket(url: string, auth: { token?: string; ticket?: string }): Promise<Extract<SocketOutcome, { admitted: true }>> {
    const outcome = auth.ticket
      ? await openSocket(`${url}?ticket=${auth.ticket}`)
      : await openSocket(url, ['agent-chat', `bearer.${auth.token}`]);
    sockets.push(outcome);
    if (!outcome.admitted) throw new Error(`refused: ${outcome.code} ${outcome.reason}`);
    return outcome;
  }

  beforeAll(async () => {
    cluster = await startCluster(['node-a', 'node-b'], {
      users: ['rest', 'messages', 'tickets', 'revoked', 'quota'],
      env: {
        RATE_LIMIT_PER_MINUTE: String(REST_PER_MINUTE),
        // One a minute: the second message anywhere is refused for the rest of the test, however slow the machine.
        MESSAGES_PER_MINUTE: '1',
        MAX_CHATS_PER_USER: String(MAX_CHATS),
        AGENT_PREWARM: 'false',
      },
    });
  });
  afterAll(async () => {
    for (const s of sockets) if (s.admitted) s.socket.terminate();
    await cluster?.close();
  });

  it('counts a user\'s REST requests on every node against one allowance', async () => {
    const half = REST_PER_MINUTE / 2;
    for (const n of [0, 1]) {
      for (let i = 0; i < half; i++) expect((await api(node(n).url, 'GET', '/api/chats', { token: token('rest') })).status).toBe(200);
    }
    for (const n of [0, 1]) {
      const limited = await api<{ detail: string }>(node(n).url, 'GET', '/api/chats', { token: token('rest') });
      expect(limited.status).toBe(429);
      expect(limited.body.detail).toMatch(`at most ${REST_PER_MINUTE} a minute`);
    }
    // The counters are in Redis, under the deployment's prefix.
    expect(await cluster.redis.inspect((redis) => redis.keys(`${cluster.redis.prefix}rest-limit:*`))).not.toEqual([]);
  });

  it('counts a user\'s chat messages on every node against one allowance', async () => {
    const chat = (await api<Chat>(node(0).url, 'POST', '/api/chats', { token: token('messages') })).body;
    const onA = await userSocket(node(0).wsUrl, { token: token('messages') });
    const onB = await userSocket(node(1).wsUrl, { token: token('messages') });
    const frame = { type: 'chat', chat_id: chat.id, content: 'hi' };

    const first = await request(onA.socket, onA.events, frame, chatAnswer(chat.id));
    expect(first).not.toMatchObject({ code: 'rate_limited' });
    const second = await request(onB.socket, onB.events, frame, chatAnswer(chat.id));
    expect(second).toMatchObject({ type: 'error', code: 'rate_limited', chat_id: chat.id });
    expect((second as { error: string }).error).toMatch(/at most 1 a minute; try again in \d+ s/);
    expect(await request(onA.socket, onA.events, frame, chatAnswer(chat.id))).toMatchObject({ code: 'rate_limited' });
  });

  it('opens a socket on one node with a ticket asked for on the other, once', async () => {
    const issued = await api<{ ticket: string; expires_in: number }>(node(0).url, 'POST', '/api/ws-ticket', { token: token('tickets') });
    expect(issued.status).toBe(200);
    expect(issued.body.expires_in).toBe(30);

    const onB = await userSocket(node(1).wsUrl, { ticket: issued.body.ticket });
    // The socket is the ticket's user: their own chat is found.
    const chat = (await api<Chat>(node(1).url, 'POST', '/api/chats', { token: token('tickets') })).body;
    const history = await request(onB.socket, onB.events, { type: 'subscribe', chat_id: chat.id }, (e) => e.type === 'history' || e.type === 'error');
    expect(history.type).toBe('history');

    for (const n of [0, 1]) {
      const again = await openSocket(`${node(n).wsUrl}?ticket=${issued.body.ticket}`);
      expect(again).toMatchObject({ admitted: false, code: 4401, reason: 'invalid, used or expired ticket' });
    }
  });

  it('redeems a ticket on exactly one node when both try at once, and never stores the ticket itself', async () => {
    const { ticket } = (await api<{ ticket: string }>(node(1).url, 'POST', '/api/ws-ticket', { token: token('tickets') })).body;
    const keys = await cluster.redis.inspect((redis) => redis.keys(`${cluster.redis.prefix}ticket:*`));
    expect(keys).toHaveLength(1);
    expect(keys[0]).not.toContain(ticket);
    const ttl = await cluster.redis.inspect((redis) => redis.pttl(keys[0]!));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(30_000);
    const outcomes = await Promise.all([0, 1, 0, 1].map((n) => openSocket(`${node(n).wsUrl}?ticket=${ticket}`)));
    sockets.push(...outcomes);
    expect(outcomes.filter((o) => o.admitted)).toHaveLength(1);
  });

  it('refuses a revoked token on every node, and closes its sockets on every node at their next frame', async () => {
    const user = cluster.users.revoked!;
    const onA = await userSocket(node(0).wsUrl, { token: user.token });
    const onB = await userSocket(node(1).wsUrl, { token: user.token });
    for (const n of [0, 1]) expect((await api(node(n).url, 'GET', '/api/chats', { token: user.token })).status).toBe(200);

    // What `npm run cli -- tokens revoke` does, on the shared database.
    await revokeToken(cluster.store, user.tokenId);

    for (const n of [0, 1]) {
      const refused = await api<{ detail: string }>(node(n).url, 'GET', '/api/chats', { token: user.token });
      expect(refused.status).toBe(401);
    }
    for (const s of [onA, onB]) {
      s.socket.send(JSON.stringify({ type: 'subscribe', chat_id: 'any' }));
      expect(await s.closed).toBe(4401);
    }
  });

  it('holds the chat quota under concurrent creates on both nodes', async () => {
    const attempts = 8;
    const answers = await Promise.all(
      Array.from({ length: attempts }, (_, i) => api(node(i % 2).url, 'POST', '/api/chats', { token: token('quota'), json: { title: `c${i}` } })),
    );
    expect(answers.filter((a) => a.status === 201)).toHaveLength(MAX_CHATS);
    expect(answers.filter((a) => a.status === 403)).toHaveLength(attempts - MAX_CHATS);
    const listed = await api<Chat[]>(node(1).url, 'GET', '/api/chats', { token: token('quota') });
    expect(listed.body).toHaveLength(MAX_CHATS);
  });
});

describe.skipIf(redisUrl === null || !storeAvailable('postgres'))('read-modify-writes from several nodes', () => {
  let cluster: Cluster;
  beforeAll(async () => {
    // Local mode (no user): nothing is rate limited, so the requests race as they come.
    cluster = await startCluster(['node-a', 'node-b'], { env: { AGENT_PREWARM: 'false' } });
  });
  afterAll(async () => {
    await cluster?.close();
  });

  it('keeps every setting of concurrent PATCHes of one chat on both nodes (none is lost)', async () => {
    const [a, b] = cluster.nodes as [(typeof cluster.nodes)[0], (typeof cluster.nodes)[0]];
    const chat = (await api<Chat>(a.url, 'POST', '/api/chats', { json: { title: 'settings' } })).body;
    for (let round = 0; round < 10; round++) {
      const model = `model-${round}`;
      const prompt = `append ${round}`;
      const [onA, onB] = await Promise.all([
        api(a.url, 'PATCH', `/api/chats/${chat.id}`, { json: { settings: { model } } }),
        api(b.url, 'PATCH', `/api/chats/${chat.id}`, { json: { settings: { system_prompt_append: prompt } } }),
      ]);
      expect([onA.status, onB.status]).toEqual([200, 200]);
      const stored = (await api<Chat>(b.url, 'GET', `/api/chats/${chat.id}`)).body;
      expect(stored.settings).toMatchObject({ model, system_prompt_append: prompt });
    }
  });
});
