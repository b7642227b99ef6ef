import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { revokeToken } from '../../src/auth/accounts.js';
import { openStore, startAuthServer, type TestUser } from '../helpers/auth.js';
import { chromiumAvailable, launchBrowser, openPage, screenshot } from '../helpers/browser.js';
import type { TestServer } from '../helpers/test-server.js';
import { onePixelPng } from './support.js';

/** Signing in to the web client with an API token, and being sent back when it is revoked. */
describe.runIf(chromiumAvailable())('web client sign-in', { timeout: 120_000 }, () => {
  let server: TestServer;
  let users: Record<string, TestUser>;
  let browser: Browser;

  beforeAll(async () => {
    [{ server, users }, browser] = await Promise.all([startAuthServer(['alice']), launchBrowser()]);
  }, 180_000);
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('asks for a token, refuses a wrong one, keeps it out of the URL, and signs out when it is revoked', async () => {
    const w = await openPage(browser, server.url);
    const page = w.page;
    try {
      const token = page.getByLabel('API token');
      await token.waitFor();
      await screenshot(page, 'desktop-sign-in');
      await token.fill('act_not-a-real-token');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await expect.poll(() => page.locator('.form-error').textContent()).toContain('not accepted');

      await token.fill(users.alice!.token);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('button', { name: 'New chat' }).click();
      await page.waitForURL(/\/c\//);
      await page.locator('[data-connection="open"]').waitFor();
      expect(page.url()).not.toContain(users.alice!.token);
      expect(await page.evaluate("localStorage.getItem('agent-chat.token')")).toBe(users.alice!.token);

      // A stored image in the chat: the page gets it by reference and fetches it with the token in a header.
      const chatId = new URL(page.url()).pathname.split('/').pop()!;
      const seeded = await openStore(server.dir);
      try {
        await seeded.store.messages.add({ chatId, role: 'user', content: 'a picture', images: [{ mediaType: 'image/png', data: onePixelPng() }] });
      } finally {
        await seeded.close();
      }
      const urls: string[] = [];
      page.on('request', (r) => urls.push(r.url()));

      // Remembered across a reload.
      await page.reload();
      await page.getByRole('button', { name: 'New chat' }).waitFor();
      await expect.poll(() => page.locator('.chat-link').count()).toBe(1);
      const image = page.locator('.msg.user img');
      await expect.poll(() => image.count()).toBe(1);
      expect(await image.getAttribute('src')).toMatch(/^blob:/);
      await expect
        .poll(() => image.evaluate((img) => (img as unknown as { complete: boolean; naturalWidth: number }).naturalWidth))
        .toBe(1);
      expect(urls.some((u) => /\/api\/chats\/[^/]+\/images\//.test(u))).toBe(true);
      expect(urls.filter((u) => u.includes(users.alice!.token))).toEqual([]);

      const { store, close } = await openStore(server.dir);
      await revokeToken(store, users.alice!.tokenId);
      await close();
      await page.getByRole('button', { name: 'New chat' }).click();
      await expect.poll(() => page.locator('.form-error').textContent()).toContain('revoked');
      expect(await page.evaluate("localStorage.getItem('agent-chat.token')")).toBeNull();
      await screenshot(page, 'desktop-signed-out');
      // The refused requests are expected (401); nothing else may have gone wrong.
      expect(w.errors.filter((e) => !/401|Unauthorized/.test(e))).toEqual([]);
    } finally {
      await w.context.close();
    }
  });
});
