import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/config.js';
import { maxFrameBytes } from '../../src/transport/ws/ws.routes.js';
import { openSocket, startAuthServer } from '../helpers/auth.js';
import { makeTempDir, startTestServer, type TestServer } from '../helpers/test-server.js';
import { TestClient } from '../helpers/ws-client.js';
import path from 'node:path';
import type { AddressInfo } from 'node:net';

/**
 * The largest frame a client may send is what the message and image limits allow; a bigger one is never buffered:
 * the connection is closed with 1009 (Message Too Big), the one frame that closes it. Errors answer a frame without
 * carrying it back.
 */
describe('WebSocket frame size limit', () => {
  let server: TestServer;
  const limits = { MAX_IMAGE_BYTES: '1000', MAX_IMAGES_PER_MESSAGE: '1', MAX_MESSAGE_CHARS: '1000' };
  beforeAll(async () => {
    server = await startTestServer(limits);
  });
  afterAll(async () => {
    await server?.close();
  });

  it('is sized from the limits: the default is the biggest valid chat frame, not more', () => {
    const defaults = loadConfig({});
    const bytes = maxFrameBytes({
      images: { maxBytes: defaults.MAX_IMAGE_BYTES, maxCount: defaults.MAX_IMAGES_PER_MESSAGE },
      maxMessageChars: defaults.MAX_MESSAGE_CHARS,
    });
    // 10 images of 5 MiB in base64 (69.9 MB) and 100,000 characters at 6 bytes: about 70.5 MB, not ~74 MB.
    expect(bytes).toBeGreaterThan(10 * Math.ceil((5 * 1024 * 1024) / 3) * 4 + 600_000);
    expect(bytes).toBeLessThan(71 * 1000 * 1000);
  });

  it('reads the biggest valid frame, and closes with 1009 on a frame over the limit', async () => {
    const ok = await TestClient.connect(server.wsUrl);
    // The worst case the limits allow: a full image with a data: prefix and text that JSON escapes to 6 bytes a char.
    const frame = JSON.stringify({
      type: 'chat',
      chat_id: '0b8f1c2e-4d7a-4c51-9f0e-2a6b3c4d5e6f',
      content: '\u0001'.repeat(1000),
      images: [{ base64: `data:image/png;base64,${Buffer.alloc(1000, 7).toString('base64')}`, media_type: 'image/png' }],
    });
    ok.send(frame);
    expect(await ok.waitFor((e) => e.type === 'error')).toMatchObject({ code: 'not_found' });
    await ok.close();

    const big = await TestClient.connect(server.wsUrl);
    const closed = new Promise<number>((resolve) => big.socket.once('close', (code) => resolve(code)));
    big.send({ type: 'chat', chat_id: 'x', content: 'y'.repeat(200_000) });
    expect(await closed).toBe(1009);
  });

  it('never echoes unbounded input in an error', async () => {
    const client = await TestClient.connect(server.wsUrl);
    const long = 'x'.repeat(3000);
    client.send({ type: 'subscribe', chat_id: long });
    client.send({ type: long, chat_id: long });
    client.send({ type: 'chat', chat_id: long, content: 5, images: Array(50).fill({ base64: 1 }) });
    await client.waitFor(() => client.events.filter((e) => e.type === 'error').length === 3);
    const errors = client.events.filter((e) => e.type === 'error');
    expect(errors.map((e) => e.type === 'error' && e.code)).toEqual(['bad_frame', 'unknown_type', 'bad_frame']);
    for (const error of errors) {
      expect(JSON.stringify(error).length).toBeLessThan(1200);
      expect(JSON.stringify(error)).not.toContain('x'.repeat(200));
    }
    await client.close();
  });
});

describe('sockets per user (MAX_SOCKETS_PER_USER)', () => {
  it('closes one socket too many with 4429, and admits again once one closed', async () => {
    const { server, users } = await startAuthServer(['alice', 'bob'], { MAX_SOCKETS_PER_USER: '2' });
    try {
      const protocols = (name: string) => ['agent-chat', `bearer.${users[name]!.token}`];
      const [a1, a2] = [await openSocket(server.wsUrl, protocols('alice')), await openSocket(server.wsUrl, protocols('alice'))];
      expect([a1.admitted, a2.admitted]).toEqual([true, true]);
      const third = await openSocket(server.wsUrl, protocols('alice'));
      expect(third).toMatchObject({ admitted: false, code: 4429, reason: expect.stringMatching(/at most 2 per user/) });
      // Another user has their own allowance.
      const bob = await openSocket(server.wsUrl, protocols('bob'));
      expect(bob.admitted).toBe(true);
      if (a1.admitted) {
        a1.socket.close();
        await a1.closed;
      }
      await new Promise((r) => setTimeout(r, 100));
      const again = await openSocket(server.wsUrl, protocols('alice'));
      expect(again.admitted).toBe(true);
      for (const s of [a2, bob, again]) if (s.admitted) s.socket.close();
    } finally {
      await server.close();
    }
  });
});

describe('invalid frames in the log', () => {
  it('are logged once per socket, at warn, without a stack or the input', async () => {
    const lines: string[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(...chunk.toString().split('\n').filter((l) => l.length > 0));
        done();
      },
    });
    const dir = makeTempDir();
    const config = loadConfig({
      DATABASE_URL: `sqlite:${path.join(dir, 'chat.db')}`,
      WORKSPACE_DIR: path.join(dir, 'workspaces'),
      AGENT_HOME_DIR: path.join(dir, 'agent-home'),
    });
    const app = await buildApp(config, { logger: { level: 'debug', stream } });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const wsUrl = `ws://127.0.0.1:${(app.server.address() as AddressInfo).port}/ws/chat`;
    try {
      const client = await TestClient.connect(wsUrl);
      for (let i = 0; i < 5; i++) client.send(`not json ${'z'.repeat(500)}`);
      await client.waitFor(() => client.events.filter((e) => e.type === 'error').length === 5);
      await client.close();

      // Invalid UTF-8 in a text frame: a protocol error that ends the connection (1007).
      const raw = new WebSocket(wsUrl);
      await new Promise((r) => raw.once('open', r));
      const code = new Promise<number>((resolve) => raw.once('close', (c) => resolve(c)));
      raw.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { binary: false });
      expect(await code).toBe(1007);
      await new Promise((r) => setTimeout(r, 200));

      const warnings = lines.map((l) => JSON.parse(l) as { level: number; msg: string; err?: unknown }).filter((l) => l.level >= 40);
      expect(warnings.filter((l) => l.msg.startsWith('invalid websocket frame'))).toHaveLength(1);
      expect(warnings.filter((l) => l.msg.startsWith('websocket protocol error'))).toHaveLength(1);
      expect(lines.filter((l) => l.includes('"stack"'))).toEqual([]);
      expect(lines.filter((l) => l.includes('z'.repeat(100)))).toEqual([]);
      expect(warnings.filter((l) => l.level >= 50)).toEqual([]);
    } finally {
      await app.close();
    }
  });
});

describe('errors before routing', () => {
  it('answers headers too large with 431 {detail}', async () => {
    const server = await startTestServer();
    try {
      const res = await fetch(`${server.url}/api/chats`, { headers: { 'x-big': 'a'.repeat(20_000) } });
      expect(res.status).toBe(431);
      expect(await res.json()).toEqual({ detail: 'request headers too large' });
    } finally {
      await server.close();
    }
  });
});

/**
 * Large frames from many sockets at once (large-frame-gate.ts): a few are received at a time, the others wait unread,
 * are not dropped by the heartbeat while they wait, and every frame is answered in the end.
 */
describe('large frames from many sockets at once', () => {
  it('are all read and answered, with every socket still open', async () => {
    const server = await startTestServer({ WS_HEARTBEAT_MS: '10000' });
    try {
      const frame = JSON.stringify({ type: 'chat', chat_id: 'c'.repeat(8 * 1000 * 1000), content: 'x' });
      const clients = await Promise.all(Array.from({ length: 6 }, () => TestClient.connect(server.wsUrl)));
      for (const client of clients) {
        client.send({ type: 'subscribe', chat_id: 'before' });
        client.socket.send(frame);
        client.send({ type: 'subscribe', chat_id: 'after' });
      }
      for (const client of clients) {
        const answers = await Promise.all([
          client.waitFor((e) => e.type === 'error' && e.code === 'bad_frame', { timeoutMs: 120_000 }),
          client.waitFor((e) => e.type === 'error' && e.chat_id === 'after', { timeoutMs: 120_000 }),
        ]);
        expect(answers[0]).toMatchObject({ code: 'bad_frame' });
        expect(client.socket.readyState).toBe(WebSocket.OPEN);
      }
      await Promise.all(clients.map((c) => c.close()));
    } finally {
      await server.close();
    }
  }, 180_000);
});
