import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../helpers/auth.js';
import { chromiumAvailable, launchBrowser, openPage, screenshot } from '../helpers/browser.js';
import { makeTempDir, startTestServer, type TestServer } from '../helpers/test-server.js';

/** A chat longer than one page: the web client shows the latest page and loads older ones as the user scrolls up. */
describe.runIf(chromiumAvailable())('web client paging', { timeout: 120_000 }, () => {
  const MESSAGES = 75;
  let server: TestServer;
  let browser: Browser;
  let chatId: string;

  beforeAll(async () => {
    const dir = makeTempDir();
    const { store, close } = await openStore(dir);
    try {
      const chat = await store.chats.create('long chat');
      chatId = chat.id;
      for (let i = 0; i < MESSAGES; i++) {
        await store.messages.add({ chatId, role: i % 2 === 0 ? 'user' : 'assistant', content: `message number ${i}` });
      }
    } finally {
      await close();
    }
    // No model is needed to read history; no agent is started for it.
    [server, browser] = await Promise.all([startTestServer({ PAGE_SIZE: '20', AGENT_PREWARM: 'false' }, dir), launchBrowser()]);
  }, 180_000);
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('shows the latest page first and pages back, in order, as the reader scrolls up', async () => {
    const w = await openPage(browser, `${server.url}/c/${chatId}`);
    const page = w.page;
    try {
      const messages = page.locator('.msg');
      await expect.poll(async () => (await messages.last().textContent())?.trim()).toBe(`message number ${MESSAGES - 1}`);
      // Scrolling to the top pages back until the first message is there, in order.
      await expect
        .poll(
          async () => {
            // The reader scrolls up with the mouse wheel, again and again.
            await page.locator('.scroller').hover();
            await page.mouse.wheel(0, -5000);
            return messages.count();
          },
          { timeout: 60_000 },
        )
        .toBe(MESSAGES);
      const texts = (await messages.allTextContents()).map((t) => t.trim());
      expect(texts).toEqual(Array.from({ length: MESSAGES }, (_, i) => `message number ${i}`));
      await screenshot(page, 'desktop-paged-back');
      expect(w.errors).toEqual([]);
    } finally {
      await w.context.close();
    }
  });
});
