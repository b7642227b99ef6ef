// A node's connection to the shared Redis (REDIS_URL), on the real Redis: start-up refuses an unreachable one with a
// message that names it without its password; a Redis lost while running is logged, reported by /readyz, never
// fatal (what needs only the database keeps working), and found again by itself; every log line and metric names
// the node.
import net from 'node:net';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { openRedis, RedisUnavailableError } from '../../src/cluster/redis.js';
import { loadConfig } from '../../src/config/config.js';
import { loggerOptions } from '../../src/observability/logger.js';
import type { Chat } from '../../src/protocol/chat.js';
import { api, openSocket, request, seedUsers } from '../helpers/auth.js';
import { describeWithRedis, testRedis, type TestRedis } from '../helpers/redis.js';
import { startService, type Service } from '../helpers/service.js';
import { makeTempDir } from '../helpers/temp-dirs.js';

/** A port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * A TCP relay to the real Redis that the test can cut and restore on the same port: what a node sees when the
 * network to Redis fails and comes back.
 */
class RedisRelay {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  port = 0;

  constructor(private readonly target: URL) {}

  async up(): Promise<void> {
    this.server = net.createServer((client) => {
      const upstream = net.connect(Number(this.target.port || 6379), this.target.hostname);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('error', () => s.destroy());
        s.on('close', () => this.sockets.delete(s));
      }
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve) => this.server!.listen(this.port, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  async down(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((resolve) => this.server?.close(resolve));
  }

  url(): string {
    return `redis://127.0.0.1:${this.port}${this.target.pathname}`;
  }
}

const METRICS_TOKEN = 'metrics-token-0123456789';

const silent = { warn: () => undefined, info: () => undefined } as unknown as Parameters<typeof openRedis>[1];

describeWithRedis('the shared Redis', () => {
  let redis: TestRedis;
  beforeAll(() => {
    redis = testRedis();
  });
  afterAll(async () => {
    await redis?.clean();
  });

  it('is unreachable at start-up: the node does not start, and says where it looked without the password', async () => {
    const port = await closedPort();
    const url = `redis://admin:s3cret-pass@127.0.0.1:${port}/0`;
    const err = await openRedis({ url, keyPrefix: redis.prefix }, silent).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RedisUnavailableError);
    expect((err as Error).message).toBe(
      `Redis at redis://admin:***@127.0.0.1:${port}/0 (REDIS_URL) is unreachable: connect ECONNREFUSED 127.0.0.1:${port}`,
    );

    const dir = makeTempDir();
    const config = loadConfig({
      DATABASE_URL: `sqlite:${path.join(dir, 'chat.db')}`,
      WORKSPACE_DIR: path.join(dir, 'w'),
      AGENT_HOME_DIR: path.join(dir, 'h'),
      REDIS_URL: url,
    });
    await expect(buildApp(config)).rejects.toBeInstanceOf(RedisUnavailableError);
  });

  it('builds keys under the deployment prefix and answers commands', async () => {
    const handle = await openRedis({ url: redis.url, keyPrefix: redis.prefix }, silent);
    try {
      expect(handle.key('ticket', 'abc')).toBe(`${redis.prefix}ticket:abc`);
      await handle.client.set(handle.key('probe'), '1', 'PX', 10_000);
      const other = await handle.open('second');
      expect(await other.get(handle.key('probe'))).toBe('1');
      await handle.ping();
    } finally {
      await handle.close();
    }
    expect(handle.client.status).toBe('end');
  });

  describe('lost while the node runs', () => {
    let relay: RedisRelay;
    let service: Service;
    const lines: Array<Record<string, unknown>> = [];
    afterEach(async () => {
      await service?.close();
      await relay?.down();
    });

    it('is logged and reported by /readyz, never fatal (limits let requests through), found again by itself; logs and metrics name the node', async () => {
      relay = new RedisRelay(new URL(redis.url));
      await relay.up();
      const sink = new Writable({
        write(chunk: Buffer, _enc, done) {
          for (const line of chunk.toString('utf8').split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
          done();
        },
      });
      const dir = makeTempDir();
      const token = (await seedUsers(dir, ['alice'])).alice!.token;
      const auth = { authorization: `Bearer ${token}` };
      const env = { ...redis.env('node-a'), REDIS_URL: relay.url(), LOG_LEVEL: 'info', METRICS_TOKEN };
      service = await startService({ dir, env, logger: (config) => ({ ...(loggerOptions(config) as object), stream: sink }) });
      const chat = (await api<Chat>(service.url, 'POST', '/api/chats', { token })).body;

      expect(await (await fetch(`${service.url}/readyz`)).json()).toEqual({ status: 'ok' });
      const metrics = await (await fetch(`${service.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).text();
      expect(metrics).toMatch(/^ws_connections\{node="node-a"\} 0$/m);

      await relay.down();
      const down = await fetch(`${service.url}/readyz`);
      expect(down.status).toBe(503);
      expect(await down.json()).toEqual({ status: 'unavailable', detail: 'redis unreachable' });
      // What needs only the database keeps working, uncounted by the limits in Redis; tickets, which live in Redis,
      // are refused for now.
      expect((await fetch(`${service.url}/api/chats`, { headers: auth })).status).toBe(200);
      const socket = await openSocket(service.wsUrl, ['agent-chat', `bearer.${token}`]);
      if (!socket.admitted) throw new Error(`refused: ${socket.code}`);
      const answer = await request(socket.socket, socket.events, { type: 'chat', chat_id: chat.id, content: 'hi' }, (e) =>
        'chat_id' in e && e.chat_id === chat.id && (e.type === 'error' || e.type === 'user_message'),
      );
      // This node has no model: the message got past the limit to the agent's own refusal.
      expect(answer).toMatchObject({ type: 'error', code: 'agent_unavailable' });
      socket.socket.terminate();
      const ticket = await fetch(`${service.url}/api/ws-ticket`, { method: 'POST', headers: auth });
      expect(ticket.status).toBe(503);
      expect(await ticket.json()).toEqual({ detail: 'tickets unavailable: try again shortly' });

      await relay.up();
      await expect.poll(async () => (await fetch(`${service.url}/readyz`)).status, { timeout: 10_000 }).toBe(200);
      expect((await fetch(`${service.url}/api/ws-ticket`, { method: 'POST', headers: auth })).status).toBe(200);

      expect(lines.some((l) => l.msg === 'Redis connection error; reconnecting')).toBe(true);
      expect(lines.some((l) => l.msg === 'Redis connection restored')).toBe(true);
      expect(lines.filter((l) => l.node !== 'node-a')).toEqual([]);
    });
  });
});
