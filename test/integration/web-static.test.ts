import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureWebBuild } from '../../scripts/build-web.js';
import { WEB_DIST_DIR } from '../../src/transport/web/web.plugin.js';
import { seedUsers } from '../helpers/auth.js';
import { makeTempDir, startTestServer, type TestServer } from '../helpers/test-server.js';

/** The built web client served by the service itself: caching, the page's routes, and what it must not shadow. */
describe('web client serving', () => {
  let server: TestServer;
  let asset: string;
  beforeAll(async () => {
    ensureWebBuild({ log: () => {} });
    asset = fs.readdirSync(path.join(WEB_DIST_DIR, 'assets')).find((f) => f.endsWith('.js'))!;
    const dir = makeTempDir();
    await seedUsers(dir, ['alice']); // authentication on: the page's files must still be public
    server = await startTestServer({ DEMO_MODE: 'true' }, dir);
  }, 120_000);
  afterAll(async () => {
    await server?.close();
  });

  it('serves index.html at / and under /c/ with no-cache, and hashed assets as immutable', async () => {
    for (const p of ['/', '/c/0b8f1c2e-4d7a-4c51-9f0e-2a6b3c4d5e6f']) {
      const res = await fetch(server.url + p);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/text\/html/);
      expect(res.headers.get('cache-control')).toBe('no-cache');
      const html = await res.text();
      expect(html).toContain(`/assets/${asset}`);
      expect(html).toContain('<title>Agent Chat</title>');
    }
    const js = await fetch(`${server.url}/assets/${asset}`);
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toMatch(/javascript/);
    expect(js.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    const icon = await fetch(`${server.url}/favicon.svg`);
    expect(icon.status).toBe(200);
    expect(icon.headers.get('content-type')).toMatch(/svg/);
  });

  it('never shadows the API, the socket, the docs or the probes', async () => {
    // An unknown path is not the page: a {detail} answer (401 here, as every unknown path once auth is on).
    const missing = await fetch(`${server.url}/assets/nope.js`);
    expect(missing.status).not.toBe(200);
    expect(await missing.json()).toHaveProperty('detail');
    const api = await fetch(`${server.url}/api/chats`, { headers: { accept: 'text/html' } });
    expect(api.status).toBe(401);
    expect(await api.json()).toHaveProperty('detail');
    const unknownApi = await fetch(`${server.url}/api/nope`, { headers: { accept: 'text/html' } });
    expect(unknownApi.headers.get('content-type')).toMatch(/json/);
    for (const p of ['/healthz', '/readyz', '/openapi.json']) {
      const res = await fetch(server.url + p, { headers: { accept: 'text/html' } });
      expect(res.status, p).toBe(200);
      expect(res.headers.get('content-type'), p).toMatch(/json/);
    }
    expect((await fetch(`${server.url}/docs`, { redirect: 'manual' })).headers.get('content-type') ?? '').not.toContain('agent-chat');
    const metrics = await fetch(`${server.url}/metrics`, { headers: { accept: 'text/html' } });
    // Refused (401 without a token, 403 where METRICS_TOKEN guards it), never the page.
    expect([401, 403]).toContain(metrics.status);
    expect(metrics.headers.get('content-type') ?? '').not.toContain('text/html');
    const elsewhere = await fetch(`${server.url}/some/page`, { headers: { accept: 'text/html' } });
    expect(elsewhere.status).not.toBe(200);
  });

  it('GET /api/info gives the demo flag and the message limits (authenticated like the rest of /api)', async () => {
    expect((await fetch(`${server.url}/api/info`)).status).toBe(401);
    const users = await seedUsers(server.dir, ['bob']);
    const res = await fetch(`${server.url}/api/info`, { headers: { authorization: `Bearer ${users.bob!.token}` } });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      demo: true,
      limits: { max_message_chars: 100_000, max_images_per_message: 10, max_image_bytes: 5 * 1024 * 1024 },
    });
  });
});
