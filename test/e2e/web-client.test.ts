import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgentServer, type AgentTestServer } from '../helpers/agent-server.js';
import { chromiumAvailable, launchBrowser, openPage, screenshot, type WatchedPage } from '../helpers/browser.js';
import { onePixelPng, until } from './support.js';

/**
 * The built-in web client in real headless Chromium, against the real service, SDK and CLI answered by the
 * scripted fake model. Bash asks for permission (PERMISSION_MODE=default), so prompts are answered in the page.
 */
describe.runIf(chromiumAvailable())('web client in a browser', () => {
  let server: AgentTestServer;
  let browser: Browser;
  let w: WatchedPage;
  let page: Page;

  beforeAll(async () => {
    [server, browser] = await Promise.all([
      startAgentServer({ PERMISSION_MODE: 'default', DEMO_MODE: 'true', MESSAGES_PER_MINUTE: '0' }),
      launchBrowser(),
    ]);
    w = await openPage(browser, server.url);
    page = w.page;
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  const composer = () => page.getByRole('textbox', { name: 'Message' });
  const lastAssistant = () => page.locator('.msg.assistant').last();

  async function send(text: string): Promise<void> {
    await composer().fill(text);
    await composer().press('Enter');
  }

  /** Waits until the selected chat has no answer running (its Stop button is gone). */
  async function answerEnded(): Promise<void> {
    await page.getByRole('button', { name: 'Stop' }).waitFor({ state: 'detached', timeout: 60_000 });
  }

  it('creates a chat and streams a Markdown answer; markup from the model stays inert', async () => {
    await page.getByRole('button', { name: 'New chat' }).click();
    await page.waitForURL(/\/c\/[0-9a-f-]{36}$/);
    expect(await page.locator('.demo-banner').textContent()).toContain('scripted fake model');

    const markdown = [
      '**bold** and a list:',
      '',
      '- one',
      '- two',
      '',
      '| a | b |',
      '|---|---|',
      '| 1 | 2 |',
      '',
      '```js',
      'const x = 1;',
      '```',
      '',
      'inert: <img src=x onerror="window.__pwned=1"> <script>window.__pwned=2</script>',
    ].join('\n');
    await send(markdown);
    await answerEnded();
    const answer = lastAssistant();
    await expect.poll(() => answer.locator('strong').first().textContent()).toBe('bold');
    expect(await answer.locator('li').count()).toBe(2);
    expect(await answer.locator('table td').allTextContents()).toEqual(['1', '2']);
    expect(await answer.locator('.code-block .hljs-keyword').first().textContent()).toBe('const');
    expect(await answer.getByRole('button', { name: 'Copy' }).count()).toBe(1);
    // The markup is shown as text, never parsed into elements, and never ran.
    expect(await answer.textContent()).toContain('<img src=x onerror="window.__pwned=1">');
    expect(await page.locator('img[src="x"], .markdown script').count()).toBe(0);
    expect(await page.evaluate(() => (globalThis as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
    // Cost and duration of the answer.
    await expect.poll(() => page.locator('.end-line').last().textContent()).toMatch(/\$\d+\.\d+ · \d+\.\d s/);
    await screenshot(page, 'desktop-markdown');
    expect(w.errors).toEqual([]);
  });
});
