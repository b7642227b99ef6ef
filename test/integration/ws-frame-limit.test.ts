import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/test-server.js';
import { TestClient } from '../helpers/ws-client.js';

/**
 * The largest frame a client may send is what the message and image limits allow (plus room for JSON); a bigger
 * one is never buffered: the connection is closed with 1009 (Message Too Big), the one frame that closes it.
 */
describe('WebSocket frame size limit', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ MAX_IMAGE_BYTES: '1000', MAX_IMAGES_PER_MESSAGE: '1', MAX_MESSAGE_CHARS: '1000' });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('closes with 1009 on a frame over the limit, and serves a frame under it', async () => {
    const ok = await TestClient.connect(server.wsUrl);
    ok.send({ type: 'subscribe', chat_id: 'x'.repeat(50_000) });
    expect(await ok.waitFor((e) => e.type === 'error')).toMatchObject({ code: 'not_found' });
    await ok.close();

    const big = await TestClient.connect(server.wsUrl);
    const closed = new Promise<number>((resolve) => big.socket.once('close', (code) => resolve(code)));
    big.send({ type: 'chat', chat_id: 'x', content: 'y'.repeat(200_000) });
    expect(await closed).toBe(1009);
  });
});
