// End-to-end: images in chat messages, through the real agent to the (fake) model, and their validation.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventOf } from '../../src/protocol/ws.js';
import { createChat, startAgentServer, type AgentTestServer } from '../helpers/agent-server.js';
import { TestClient } from '../helpers/ws-client.js';
import { fakeRequestsFor, getMessages, nextError, onePixelPng, subscribe } from './support.js';

const png = onePixelPng();
const pngBase64 = png.toString('base64');
/** The same pixel with a trailing byte: one byte larger, still a PNG the CLI can decode. */
const pngPlusOne = Buffer.concat([png, Buffer.alloc(1)]);
// Note: bytes with only a PNG signature pass the service's magic check, but the CLI cannot decode them and sends the
// model a text note ("[Image could not be processed ...]") instead of the image, so the tests use a real PNG.

type ApiBlock = { type: string; source?: { type: string; media_type: string; data: string } };

/** Image blocks of the user turns the fake model received for a chat. */
function imageBlocksSent(server: AgentTestServer, chatId: string): ApiBlock[] {
  return fakeRequestsFor(server, chatId).flatMap((r) =>
    (r.body.messages as { role: string; content: unknown }[])
      .filter((m) => m.role === 'user' && Array.isArray(m.content))
      .flatMap((m) => (m.content as ApiBlock[]).filter((b) => b.type === 'image')),
  );
}

describe('images with the real agent', () => {
  let server: AgentTestServer;
  beforeAll(async () => {
    server = await startAgentServer();
  });
  afterAll(async () => {
    await server?.close();
  });

  it('a PNG reaches the model as an image block and comes back in history', async () => {
    const chatId = await createChat(server.url);
    const client = await TestClient.connect(server.wsUrl);
    const queryId = await client.chat(chatId, '/images', [{ base64: pngBase64, media_type: 'image/png' }]);
    expect(await client.waitForEnd(queryId)).toMatchObject({ type: 'result', success: true });
    expect(client.streamedText(queryId)).toBe(`Saw 1 image(s): image/png ${png.length} bytes`);

    const blocks = imageBlocksSent(server, chatId);
    expect(blocks.length).toBeGreaterThanOrEqual(1);
    expect(blocks[0]!.source).toEqual({ type: 'base64', media_type: 'image/png', data: pngBase64 });

    const fresh = await TestClient.connect(server.wsUrl);
    const { history } = await subscribe(fresh, chatId);
    const user = history.messages[0]!;
    expect(user).toMatchObject({ role: 'user', content: '/images' });
    expect(user.images).toEqual([{ id: expect.any(String), base64: pngBase64, mimeType: 'image/png' }]);
    expect(history.messages[1]).toMatchObject({ role: 'assistant', images: null });
    expect((await getMessages(server, chatId))[0]!.images).toEqual(user.images);
    await Promise.all([client.close(), fresh.close()]);
  });

  it('several images, one with a data: URL prefix', async () => {
    const chatId = await createChat(server.url);
    const client = await TestClient.connect(server.wsUrl);
    const images = [
      { base64: `data:image/png;base64,${pngBase64}`, media_type: 'image/png' },
      { base64: pngPlusOne.toString('base64'), media_type: 'image/png' },
    ];
    const queryId = await client.chat(chatId, '/images', images);
    expect(await client.waitForEnd(queryId)).toMatchObject({ type: 'result', success: true });
    expect(client.streamedText(queryId)).toMatch(/^Saw 2 image\(s\): image\/png \d+ bytes, image\/png \d+ bytes$/);
    expect(imageBlocksSent(server, chatId)).toHaveLength(2);
    // The prefix is not part of what is stored: history holds plain base64, in order.
    const [user] = await getMessages(server, chatId);
    expect(user!.images!.map((i) => [i.base64, i.mimeType])).toEqual([
      [pngBase64, 'image/png'],
      [pngPlusOne.toString('base64'), 'image/png'],
    ]);
    await client.close();
  });

  describe('an invalid image is refused with invalid_image and nothing is stored', () => {
    // Refused before any agent runs: a server that does not start one on subscribe keeps these tests cheap.
    let bare: AgentTestServer;
    beforeAll(async () => {
      bare = await startAgentServer({ AGENT_PREWARM: 'false' });
    });
    afterAll(async () => {
      await bare?.close();
    });
    const cases: { name: string; images: { base64: string; media_type: string }[]; code?: string }[] = [
      { name: 'PNG bytes declared as JPEG', images: [{ base64: pngBase64, media_type: 'image/jpeg' }] },
      { name: 'bytes that are no image at all', images: [{ base64: Buffer.from('hello world!').toString('base64'), media_type: 'image/png' }] },
      { name: 'bad base64', images: [{ base64: 'not*base64!', media_type: 'image/png' }] },
      { name: 'one good image and one bad', images: [{ base64: pngBase64, media_type: 'image/png' }, { base64: '@@@@', media_type: 'image/png' }] },
      { name: 'a media type that is not an image type', images: [{ base64: pngBase64, media_type: 'image/bmp' }], code: 'bad_frame' },
    ];
    for (const c of cases) {
      it(c.name, async () => {
        const chatId = await createChat(bare.url);
        const client = await TestClient.connect(bare.wsUrl);
        await subscribe(client, chatId);
        const from = client.events.length;
        client.send({ type: 'chat', chat_id: chatId, content: '/images', images: c.images });
        const error = await nextError(client, from);
        expect(error).toMatchObject({ code: c.code ?? 'invalid_image', chat_id: chatId });
        // Nothing else was sent for that frame (no user_message), and nothing reached the store or the model.
        const again = await subscribe(client, chatId);
        expect(client.events.slice(from).some((e) => e.type === 'user_message')).toBe(false);
        expect(again.history.messages).toEqual([]);
        expect(await getMessages(bare, chatId)).toEqual([]);
        expect(imageBlocksSent(bare, chatId)).toEqual([]);
        await client.close();
      });
    }
  });
});

describe('image limits', () => {
  let server: AgentTestServer;
  beforeAll(async () => {
    server = await startAgentServer({ MAX_IMAGES_PER_MESSAGE: '1', MAX_IMAGE_BYTES: String(png.length), AGENT_PREWARM: 'false' });
  });
  afterAll(async () => {
    await server?.close();
  });

  const refused = async (images: { base64: string; media_type: string }[]): Promise<EventOf<'error'>> => {
    const chatId = await createChat(server.url);
    const client = await TestClient.connect(server.wsUrl);
    await subscribe(client, chatId);
    const from = client.events.length;
    client.send({ type: 'chat', chat_id: chatId, content: 'look', images });
    const error = await nextError(client, from);
    expect(await getMessages(server, chatId)).toEqual([]);
    await client.close();
    return error;
  };

  it('too many images', async () => {
    const one = { base64: pngBase64, media_type: 'image/png' };
    const error = await refused([one, one]);
    expect(error.code).toBe('invalid_image');
    expect(error.error).toMatch(/too many/);
  });

  it('an image larger than MAX_IMAGE_BYTES', async () => {
    const error = await refused([{ base64: pngPlusOne.toString('base64'), media_type: 'image/png' }]);
    expect(error.code).toBe('invalid_image');
    expect(error.error).toMatch(/larger/);
  });

  it('an image exactly at the limit is accepted', async () => {
    const chatId = await createChat(server.url);
    const client = await TestClient.connect(server.wsUrl);
    const queryId = await client.chat(chatId, '/images', [{ base64: pngBase64, media_type: 'image/png' }]);
    expect(await client.waitForEnd(queryId)).toMatchObject({ type: 'result', success: true });
    expect(client.streamedText(queryId)).toBe(`Saw 1 image(s): image/png ${png.length} bytes`);
    await client.close();
  });
});

describe('a tiny MAX_IMAGE_BYTES', () => {
  let server: AgentTestServer;
  beforeAll(async () => {
    server = await startAgentServer({ MAX_IMAGE_BYTES: '10', AGENT_PREWARM: 'false' });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('refuses the 1x1 PNG as too large', async () => {
    const chatId = await createChat(server.url);
    const client = await TestClient.connect(server.wsUrl);
    const from = client.events.length;
    client.send({ type: 'chat', chat_id: chatId, content: 'look', images: [{ base64: pngBase64, media_type: 'image/png' }] });
    const error = await nextError(client, from);
    expect(error).toMatchObject({ code: 'invalid_image', chat_id: chatId });
    expect(await getMessages(server, chatId)).toEqual([]);
    await client.close();
  });
});
