import fs from 'node:fs';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import type { Browser, Page, Request } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startAgentServer, type AgentTestServer } from '../helpers/agent-server.js';
import { chromiumAvailable, launchBrowser, openPage, screenshot, type WatchedPage } from '../helpers/browser.js';
import { onePixelPng, until } from './support.js';

/**
 * The built-in web client in real headless Chromium, against the real service, SDK and CLI answered by the
 * scripted fake model. Bash asks for permission (PERMISSION_MODE=default), so prompts are answered in the page.
 */
describe.runIf(chromiumAvailable())('web client in a browser', { timeout: 180_000 }, () => {
  let server: AgentTestServer;
  /** The service's upgraded (WebSocket) TCP connections, to cut them as a network failure would. */
  const sockets = new Set<Duplex>();
  let browser: Browser;
  let w: WatchedPage;
  let page: Page;

  beforeAll(async () => {
    [server, browser] = await Promise.all([
      startAgentServer({ PERMISSION_MODE: 'default', DEMO_MODE: 'true', MESSAGES_PER_MINUTE: '0' }),
      launchBrowser(),
    ]);
    server.app.server.on('upgrade', (_req, socket: Duplex) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
    });
    w = await openPage(browser, server.url);
    page = w.page;
  }, 180_000);

  afterEach(async (ctx) => {
    if (ctx.task.result?.state === 'fail') await screenshot(page, `failed-${ctx.task.name.slice(0, 40).replace(/\W+/g, '-')}`);
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  const composer = () => page.getByRole('textbox', { name: 'Message' });
  const lastAssistant = () => page.locator('.msg.assistant').last();

  /** The text of every message shown. */
  const conversationText = () => page.locator('.msg').allTextContents();

  const chatIdFromUrl = () => new URL(page.url()).pathname.split('/').pop()!;

  /** Answers ended (end lines shown) in the selected chat when the last message was sent. */
  let endedBeforeSend = 0;
  const endLines = () => page.locator('.end-line').count();

  async function send(text: string): Promise<void> {
    endedBeforeSend = await endLines();
    await composer().fill(text);
    await composer().press('Enter');
  }

  /**
   * Waits until the answer to the last message sent has ended: its end line (cost, stopped or failed) is shown and
   * the Stop button is gone. Not the Stop button alone: right after sending, it may not be there yet.
   */
  async function answerEnded(): Promise<void> {
    await expect.poll(endLines, { timeout: 60_000 }).toBeGreaterThan(endedBeforeSend);
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

  it('asks before Bash: one call allowed, one denied, both shown as tool cards', async () => {
    // Commands that change something: the CLI lets read-only ones (a bare `echo`) run without asking.
    await send('/bash touch allowed.txt && echo approved-$((40+2))');
    const prompt = page.getByRole('group', { name: 'Permission: Bash' });
    await prompt.waitFor({ timeout: 60_000 });
    expect(await prompt.locator('.perm-code').textContent()).toContain('touch allowed.txt && echo approved-$((40+2))');
    expect(await prompt.locator('.perm-timer').textContent()).toMatch(/\d/);
    // Beside "Allow for this chat": what it would allow from then on (this exact command, not every Bash command),
    // also as the button's accessible description.
    const scope = prompt.locator('.perm-remember');
    expect(await scope.textContent()).toContain('touch allowed.txt && echo approved-$((40+2))');
    const allowChat = prompt.getByRole('button', { name: 'Allow for this chat', exact: true });
    expect(await allowChat.getAttribute('aria-describedby')).toBe(await scope.getAttribute('id'));
    await screenshot(page, 'desktop-permission');
    await prompt.getByRole('button', { name: 'Allow', exact: true }).click();
    await answerEnded();
    const allowed = page.locator('.tool-card').last();
    await expect.poll(() => allowed.getAttribute('data-state')).toBe('done');
    await allowed.locator('summary').click();
    expect(await allowed.locator('.tool-pre').last().textContent()).toBe('approved-42');
    await expect.poll(() => lastAssistant().textContent()).toContain('Tool result: approved-42');
    const workspace = path.join(server.config.WORKSPACE_DIR, chatIdFromUrl());
    expect(fs.existsSync(path.join(workspace, 'allowed.txt'))).toBe(true);

    await send('/bash touch denied.txt && echo never-ran');
    await page.getByRole('group', { name: 'Permission: Bash' }).waitFor({ timeout: 60_000 });
    await page.getByRole('button', { name: 'Deny' }).click();
    await answerEnded();
    const denied = page.locator('.tool-card').last();
    await expect.poll(() => denied.getAttribute('data-state')).toBe('error');
    expect(await denied.locator('.tool-state').textContent()).toContain('Failed');
    expect(fs.existsSync(path.join(workspace, 'denied.txt'))).toBe(false);
    expect(await page.getByRole('group', { name: /^Permission/ }).count()).toBe(0);
    expect(await page.locator('.tool-card').count()).toBe(2);
    await screenshot(page, 'desktop-tools');
  });

  it('stops an answer mid-stream with the Stop button', async () => {
    await send('/slow 200 50');
    await expect.poll(() => lastAssistant().textContent(), { timeout: 60_000 }).toContain('chunk3 ');
    await page.getByRole('button', { name: 'Stop' }).click();
    await answerEnded();
    const stopped = lastAssistant();
    await expect.poll(() => stopped.getAttribute('data-status')).toBe('interrupted');
    expect(await stopped.textContent()).not.toContain('chunk200');
    expect(await page.locator('.end-line').last().textContent()).toBe('Answer stopped');
  });

  it('attaches an image that the model sees, with a thumbnail that can be removed', async () => {
    const attach = page.getByLabel('Attach image');
    const png = { name: 'pixel.png', mimeType: 'image/png', buffer: onePixelPng() };
    await attach.setInputFiles([png, { ...png, name: 'second.png' }]);
    // The thumbnails appear once the browser has read the files (FileReader is asynchronous).
    await expect.poll(() => page.locator('.thumb img').count()).toBe(2);
    await page.getByRole('button', { name: 'Remove image second.png' }).click();
    await expect.poll(() => page.locator('.thumb img').count()).toBe(1);
    // A file type the service refuses is caught before sending.
    await attach.setInputFiles({ name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('hi') });
    expect(await page.locator('.composer-problem').textContent()).toContain('only PNG, JPEG, GIF and WebP');
    await send('/images');
    await answerEnded();
    await expect.poll(() => lastAssistant().textContent()).toContain(`Saw 1 image(s): image/png ${onePixelPng().length} bytes`);
    expect(await page.locator('.msg.user').last().locator('img').count()).toBe(1);
    expect(await page.locator('.thumb').count()).toBe(0);
  });

  it('keeps everything across a reload: messages, tools, images, and each answer\'s cost and duration', async () => {
    expect(await page.locator('.tool-card').count()).toBe(2);
    const before = await conversationText();
    const endLines = await page.locator('.end-line').allTextContents();
    expect(endLines).toHaveLength(5);
    // The page asks for images by reference (`image_urls`) on every subscribe and chat.
    const subscribes: { type: string; capabilities?: string[] }[] = [];
    page.on('websocket', (ws) =>
      ws.on('framesent', (f) => typeof f.payload === 'string' && subscribes.push(JSON.parse(f.payload) as (typeof subscribes)[number])),
    );
    await page.reload();
    await page.locator('.msg.assistant').first().waitFor();
    await expect.poll(() => conversationText()).toEqual(before);
    await expect.poll(() => page.locator('.tool-card').count()).toBe(2);
    expect(await page.locator('.msg.assistant[data-status="interrupted"]').count()).toBe(1);
    // Cost and duration (or how the answer ended) read back from history, as they were shown live.
    await expect.poll(() => page.locator('.end-line').allTextContents()).toEqual(endLines);
    // REST pages (what the page loads when scrolling back) carry the same: one answer_end per answer, on its last message.
    const stored = (await (await fetch(`${server.url}/api/chats/${chatIdFromUrl()}/messages`)).json()) as {
      role: string;
      answer_end?: { status: string; cost: number | null; duration: number | null };
    }[];
    const ends = stored.filter((m) => m.answer_end).map((m) => [m.role, m.answer_end!.status]);
    expect(ends).toEqual([
      ['assistant', 'complete'],
      ['assistant', 'complete'],
      ['assistant', 'complete'],
      ['assistant', 'cancelled'],
      ['assistant', 'complete'],
    ]);
    expect(stored.find((m) => m.answer_end?.status === 'complete')?.answer_end).toMatchObject({ cost: expect.any(Number), duration: expect.any(Number) });
    expect(subscribes.find((f) => f.type === 'subscribe')?.capabilities).toEqual(['permission_prompts', 'image_urls']);
    // The image came by reference: fetched with the API's credentials into an object URL, and shown.
    const image = page.locator('.msg.user').last().locator('img');
    await expect.poll(() => image.count()).toBe(1);
    expect(await image.getAttribute('src')).toMatch(/^blob:/);
    await expect.poll(() => image.evaluate((img) => (img as unknown as { complete: boolean; naturalWidth: number }).complete && (img as unknown as { naturalWidth: number }).naturalWidth)).toBe(1);
  });

  it('switches between two chats, each keeping its own conversation', async () => {
    const firstUrl = page.url();
    await page.getByRole('button', { name: 'New chat' }).click();
    await page.waitForURL((u) => u.href !== firstUrl && /\/c\//.test(u.pathname));
    await send('second chat here');
    await answerEnded();
    await expect.poll(() => lastAssistant().textContent()).toContain('Echo: second chat here');
    const links = page.locator('.chat-link');
    await expect.poll(() => links.count()).toBe(2);
    // Newest activity first: the second chat is on top.
    await links.nth(1).click();
    await page.waitForURL(firstUrl);
    await expect.poll(() => lastAssistant().textContent()).toContain('Saw 1 image(s)');
    expect(await page.locator('.msg').filter({ hasText: 'second chat here' }).count()).toBe(0);
    await links.nth(0).click();
    await expect.poll(() => lastAssistant().textContent()).toContain('Echo: second chat here');
  });

  it('recovers an answer streamed while the connection was down: complete, no text twice', async () => {
    await send('/slow 40 80');
    await expect.poll(() => lastAssistant().textContent(), { timeout: 60_000 }).toContain('chunk2 ');
    // Cut every WebSocket connection at the TCP level, as a network failure would.
    expect(sockets.size).toBeGreaterThan(0);
    for (const socket of sockets) socket.destroy();
    await page.locator('[data-connection="waiting"], [data-connection="connecting"]').first().waitFor({ timeout: 10_000 });
    await screenshot(page, 'desktop-reconnecting');
    await page.locator('[data-connection="open"]').waitFor({ timeout: 30_000 });
    await answerEnded();
    const expected = Array.from({ length: 40 }, (_, i) => `chunk${i + 1} `).join('').trim();
    await expect.poll(async () => (await lastAssistant().locator('.markdown').textContent())?.trim()).toBe(expected);
    expect(await page.locator('.msg.assistant').filter({ hasText: 'chunk1 ' }).count()).toBe(1);
  });

  it('works on a phone (390 px): drawer with the chats, composer, no sideways scrolling', async () => {
    const phone = await openPage(browser, server.url, { viewport: { width: 390, height: 844 }, isMobile: true });
    try {
      const p = phone.page;
      await p.getByRole('textbox', { name: 'Message' }).waitFor();
      expect(await p.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
      await p.getByRole('button', { name: 'Chats' }).click();
      await p.locator('.chat-link').first().click();
      await p.locator('.msg.assistant').first().waitFor();
      await p.getByRole('textbox', { name: 'Message' }).fill('from the phone');
      await p.getByRole('button', { name: 'Send' }).click();
      await expect.poll(() => p.locator('.msg.assistant').last().textContent(), { timeout: 60_000 }).toContain('Echo: from the phone');
      expect(await p.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
      await screenshot(p, 'phone-conversation');
      await p.getByRole('button', { name: 'Chats' }).click();
      await screenshot(p, 'phone-chat-list');
      expect(phone.errors).toEqual([]);
    } finally {
      await phone.context.close();
    }
  });

  it('speaks Simplified Chinese to a Chinese browser, with the same accessible names', async () => {
    const zh = await openPage(browser, server.url, { locale: 'zh-CN', colorScheme: 'dark' });
    try {
      const box = zh.page.getByRole('textbox', { name: 'Message' });
      await box.waitFor();
      expect(await box.getAttribute('placeholder')).toContain('发消息');
      expect(await zh.page.getByRole('button', { name: 'New chat' }).textContent()).toContain('新对话');
      await zh.page.locator('.chat-link').first().click();
      await zh.page.locator('.msg.assistant').first().waitFor();
      await screenshot(zh.page, 'desktop-dark-zh');
      expect(zh.errors).toEqual([]);
    } finally {
      await zh.context.close();
    }
  });

  it('renames a chat inline, finds it by title and by message text, and deletes it after confirming', async () => {
    const rows = page.locator('.chat-row');
    const first = rows.first();
    const oldTitle = (await first.locator('.chat-title').textContent())!;
    // A list refresh the page sent before the rename answers only after it (the service read the list before the
    // rename): the page must not show the old title again. Every title the list shows from here on is recorded.
    await page.evaluate(`(() => {
      const seen = (window.listTitlesSeen = []);
      const record = () => document.querySelectorAll('.chat-title').forEach((el) => seen.push(el.textContent));
      new MutationObserver(record).observe(document.body, { subtree: true, childList: true, characterData: true });
    })()`);
    let releaseList!: () => void;
    const listHeld = new Promise<void>((resolve) => (releaseList = resolve));
    let heldRequest: Request | undefined;
    await page.route(/\/api\/chats$/, async (route) => {
      if (route.request().method() !== 'GET' || heldRequest) return route.continue();
      heldRequest = route.request();
      const before = await route.fetch();
      await listHeld;
      await route.fulfill({ response: before });
    });
    await page.evaluate(`window.dispatchEvent(new Event('focus'))`);
    await expect.poll(() => heldRequest !== undefined).toBe(true);

    await first.hover();
    await first.getByRole('button', { name: /^Rename/ }).click();
    const title = page.getByRole('textbox', { name: 'Chat title' });
    await title.fill('Renamed in the page');
    await title.press('Enter');
    await expect.poll(() => page.locator('.chat-title').first().textContent()).toBe('Renamed in the page');
    await expect.poll(() => page.locator('.topbar-title').textContent()).toBe('Renamed in the page');
    // The stale list arrives now. The page reads it, then renders within a frame: it must keep the new title.
    releaseList();
    await (await heldRequest!.response())!.finished();
    await page.unroute(/\/api\/chats$/);
    await page.evaluate('new Promise((resolve) => setTimeout(() => requestAnimationFrame(() => requestAnimationFrame(resolve)), 100))');
    const seenAfterRename = (await page.evaluate('window.listTitlesSeen')) as string[];
    expect(seenAfterRename).toContain('Renamed in the page');
    expect(seenAfterRename.slice(seenAfterRename.indexOf('Renamed in the page'))).not.toContain(oldTitle);
    const chats = (await (await fetch(`${server.url}/api/chats`)).json()) as { title: string }[];
    expect(chats.map((c) => c.title)).toContain('Renamed in the page');

    const search = page.getByRole('searchbox', { name: 'Search chats' });
    await search.fill('renamed in');
    await expect.poll(() => page.locator('.chat-title').allTextContents()).toEqual(['Renamed in the page']);
    await search.fill('approved-$((40+2))');
    await expect.poll(() => page.locator('.chat-link').count()).toBe(1);
    await search.fill('');
    await expect.poll(() => page.locator('.chat-link').count()).toBe(2);

    // A search still on its way when the box is cleared must not put its results back over the whole list.
    let releaseSearch!: () => void;
    const searchHeld = new Promise<void>((resolve) => (releaseSearch = resolve));
    let searchAsked = false;
    let searchAnswered!: () => void;
    const searchDelivered = new Promise<void>((resolve) => (searchAnswered = resolve));
    await page.route(/\/api\/chats\/search/, async (route) => {
      searchAsked = true;
      const response = await route.fetch();
      await searchHeld;
      await route.fulfill({ response });
      searchAnswered();
    });
    await search.fill('renamed in');
    await expect.poll(() => searchAsked).toBe(true);
    await search.fill('');
    await expect.poll(() => page.locator('.chat-link').count()).toBe(2);
    releaseSearch();
    await searchDelivered;
    await page.unroute(/\/api\/chats\/search/);
    await page.evaluate('new Promise((resolve) => setTimeout(() => requestAnimationFrame(() => requestAnimationFrame(resolve)), 100))');
    expect(await page.locator('.chat-link').count()).toBe(2);

    await rows.first().hover();
    await rows.first().getByRole('button', { name: /^Delete/ }).click();
    await screenshot(page, 'desktop-delete-confirm');
    await page.getByRole('group', { name: 'Delete this chat?' }).getByRole('button', { name: 'Delete' }).click();
    // Gone from the page (the confirmation row too) and from the service.
    await expect.poll(() => page.locator('.chat-row').count(), { timeout: 30_000 }).toBe(1);
    expect(await page.locator('.chat-title').allTextContents()).not.toContain('Renamed in the page');
    const left = (await (await fetch(`${server.url}/api/chats`)).json()) as { title: string }[];
    expect(left.map((c) => c.title)).not.toContain('Renamed in the page');
  });

  it('logged no console errors', () => {
    expect(w.errors).toEqual([]);
  });
});
