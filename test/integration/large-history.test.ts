// A chat too big for one frame budget still opens: subscribe always delivers the whole snapshot (history,
// tool_history, processing_state) and the socket stays open; the snapshot is bounded in bytes (images by reference
// for clients that say they can, long tool outputs cut), and REST serves the rest.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { openDatabase } from '../../src/db/database.js';
import type { EventOf, ServerEvent } from '../../src/protocol/ws.js';
import { Store } from '../../src/store/store.js';
import { makeTempDir, startTestServer, type TestServer } from '../helpers/test-server.js';
import { TestClient } from '../helpers/ws-client.js';
import { loadConfig } from '../../src/config/config.js';

const MiB = 1024 * 1024;
const IMAGE_BYTES = 5 * MiB;
const TOOL_OUTPUT_CHARS = 30 * 1000 * 1000;

/** A 5 MiB "PNG": the signature the service checks, then filler (the bytes are never decoded here). */
function bigPng(fill: number): Buffer {
  const data = Buffer.alloc(IMAGE_BYTES, fill);
  Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]).copy(data);
  return data;
}

/**
 * A client that stops reading right after `subscribe` (its TCP window fills, the server's buffer grows far past
 * WS_MAX_BUFFERED_BYTES), then reads everything it was sent.
 */
async function slowSubscribe(wsUrl: string, frame: unknown, pauseMs: number): Promise<{ events: ServerEvent[]; socket: WebSocket }> {
  const socket = new WebSocket(wsUrl);
  const events: ServerEvent[] = [];
  socket.on('message', (data) => events.push(JSON.parse(data.toString()) as ServerEvent));
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  socket.send(JSON.stringify(frame));
  socket.pause();
  await new Promise((r) => setTimeout(r, pauseMs));
  socket.resume();
  const deadline = Date.now() + 60_000;
  while (!events.some((e) => e.type === 'processing_state') && socket.readyState === WebSocket.OPEN && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  return { events, socket };
}

const ofType = <T extends ServerEvent['type']>(events: ServerEvent[], type: T) =>
  events.find((e) => e.type === type) as EventOf<T> | undefined;

describe('a chat with a 28 MB history and a 30 MB tool output', () => {
  const dir = makeTempDir();
  let chatId: string;
  let imageIds: string[];
  const images = [bigPng(1), bigPng(2), bigPng(3), bigPng(4)];

  beforeAll(async () => {
    // The chat's stored state, written through the service's own store into its real database: what four 5 MiB
    // images (each within MAX_IMAGE_BYTES) and one huge tool output leave behind.
    const seed = await startTestServer({ AGENT_PREWARM: 'false' }, dir);
    const res = await fetch(`${seed.url}/api/chats`, { method: 'POST' });
    chatId = ((await res.json()) as { id: string }).id;
    await seed.close();
    const db = await openDatabase(loadConfig({ DATABASE_URL: `sqlite:${path.join(dir, 'chat.db')}` }).DATABASE_URL);
    const store = new Store(db);
    const user = await store.messages.add({
      chatId,
      role: 'user',
      content: 'what are these?',
      images: images.map((data) => ({ mediaType: 'image/png' as const, data })),
    });
    imageIds = user!.images!.map((i) => i.id);
    await store.toolUses.recordCall({ chatId, queryId: null, toolUseId: 'toolu_big', toolName: 'Bash', input: { command: 'cat big.log' } });
    const output = 'a line of a very long log\n'.repeat(Math.ceil(TOOL_OUTPUT_CHARS / 26)).slice(0, TOOL_OUTPUT_CHARS);
    await store.toolUses.recordResult({ chatId, toolUseId: 'toolu_big', content: output, isError: false });
    await store.messages.add({ chatId, role: 'assistant', content: 'Four images.' });
    await db.destroy();
  }, 60_000);

  describe('with a history budget that holds it all (the original client gets it inline)', () => {
    let server: TestServer;
    beforeAll(async () => {
      // The smallest slow-client cap: before, `history` alone put the socket past it and it was closed (4008)
      // before `tool_history` and `processing_state`.
      server = await startTestServer(
        { AGENT_PREWARM: 'false', HISTORY_MAX_BYTES: String(64 * MiB), WS_MAX_BUFFERED_BYTES: String(64 * 1024) },
        dir,
      );
    });
    afterAll(async () => {
      await server?.close();
    });

    it('a client that reads slowly gets history, tool_history and processing_state, and stays connected', async () => {
      const { events, socket } = await slowSubscribe(server.wsUrl, { type: 'subscribe', chat_id: chatId }, 1500);
      try {
        expect(socket.readyState).toBe(WebSocket.OPEN);
        expect(events.map((e) => e.type)).toEqual(['connected', 'history', 'tool_history', 'processing_state']);
        const history = ofType(events, 'history')!;
        expect(history.has_more).toBe(false);
        expect(history.messages.map((m) => m.content)).toEqual(['what are these?', 'Four images.']);
        // The original client's shape: every image inline, exactly {id, base64, mimeType}.
        const inline = history.messages[0]!.images!;
        expect(inline.map((i) => Object.keys(i).sort())).toEqual(Array(4).fill(['base64', 'id', 'mimeType']));
        expect(inline.map((i) => ('base64' in i ? Buffer.from(i.base64!, 'base64').equals(images[inline.indexOf(i)]!) : false))).toEqual([
          true,
          true,
          true,
          true,
        ]);
        const tools = ofType(events, 'tool_history')!;
        const [tool] = tools.tool_uses;
        expect(tool!.result_truncated).toBe(true);
        expect(tool!.result_content!.length).toBeLessThan(server.config.TOOL_OUTPUT_MAX_CHARS + 300);
        expect(tool!.result_content).toContain(`GET /api/chats/${chatId}/tool-uses/toolu_big`);
        expect(ofType(events, 'processing_state')).toMatchObject({ is_processing: false });
        // Still usable after the snapshot.
        socket.send(JSON.stringify({ type: 'unsubscribe', chat_id: chatId }));
        socket.send('not json');
        await expect.poll(() => events.at(-1), { timeout: 10_000 }).toMatchObject({ type: 'error', code: 'bad_frame' });
        expect(socket.readyState).toBe(WebSocket.OPEN);
      } finally {
        socket.close();
      }
    }, 90_000);
  });

  describe('with the default budget', () => {
    let server: TestServer;
    beforeAll(async () => {
      server = await startTestServer({ AGENT_PREWARM: 'false', WS_MAX_BUFFERED_BYTES: String(64 * 1024) }, dir);
    });
    afterAll(async () => {
      await server?.close();
    });

    it('the original client gets the newest messages that fit, inline, and has_more for the rest', async () => {
      const client = await TestClient.connect(server.wsUrl);
      client.send({ type: 'subscribe', chat_id: chatId });
      await client.waitFor((e) => e.type === 'processing_state');
      const history = ofType(client.events, 'history')!;
      expect(history.messages.map((m) => m.content)).toEqual(['Four images.']);
      expect(history.has_more).toBe(true);
      expect(Object.keys(history.messages[0]!).sort()).toEqual(['chat_id', 'content', 'id', 'images', 'role', 'status', 'timestamp']);
      // The message left out is one REST page away, images inline as ever.
      const older = await fetch(`${server.url}/api/chats/${chatId}/messages?before=${history.messages[0]!.id}`);
      const [user] = (await older.json()) as { images: { base64: string }[] }[];
      expect(user!.images.map((i) => i.base64.length)).toEqual(Array(4).fill(Math.ceil(IMAGE_BYTES / 3) * 4));
      await client.close();
    }, 90_000);

    it('a client with image_urls gets every message in a small snapshot, and fetches the images by URL', async () => {
      const client = await TestClient.connect(server.wsUrl);
      const raw: number[] = [];
      client.socket.on('message', (data: Buffer) => raw.push(data.length));
      client.send({ type: 'subscribe', chat_id: chatId, capabilities: ['image_urls', 'something_from_the_future'] });
      await client.waitFor((e) => e.type === 'processing_state');
      const history = ofType(client.events, 'history')!;
      expect(history.has_more).toBe(false);
      expect(history.messages.map((m) => m.content)).toEqual(['what are these?', 'Four images.']);
      expect(Math.max(...raw)).toBeLessThan(200 * 1024);
      const refs = history.messages[0]!.images!;
      expect(refs.map((r) => r.id)).toEqual(imageIds);
      for (const [n, ref] of refs.entries()) {
        expect(ref).toEqual({ id: imageIds[n], mimeType: 'image/png', url: `/api/chats/${chatId}/images/${imageIds[n]}`, size: IMAGE_BYTES });
        const res = await fetch(`${server.url}${'url' in ref ? ref.url : ''}`);
        expect(res.status).toBe(200);
        expect(res.headers.get('content-type')).toBe('image/png');
        expect(Buffer.from(await res.arrayBuffer()).equals(images[n]!)).toBe(true);
      }
      await client.close();
    }, 90_000);

    it('REST serves the whole tool output, and 404 {detail} for unknown images and tool uses', async () => {
      const res = await fetch(`${server.url}/api/chats/${chatId}/tool-uses/toolu_big`);
      expect(res.status).toBe(200);
      const tool = (await res.json()) as { result_content: string; result_truncated?: boolean };
      expect(tool.result_content.length).toBe(TOOL_OUTPUT_CHARS);
      expect(tool.result_truncated).toBeUndefined();
      for (const url of [`/api/chats/${chatId}/tool-uses/nope`, `/api/chats/${chatId}/images/nope`]) {
        const missing = await fetch(`${server.url}${url}`);
        expect(missing.status).toBe(404);
        expect(await missing.json()).toEqual({ detail: expect.any(String) });
      }
    }, 90_000);
  });
});
