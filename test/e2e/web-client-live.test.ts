import fs from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { startAgentServer, type AgentTestServer } from '../helpers/agent-server.js';
import { openStore } from '../helpers/auth.js';
import { chromiumAvailable, launchBrowser, openPage, screenshot, type WatchedPage } from '../helpers/browser.js';
import { onePixelPng } from './support.js';

/**
 * The web client while answers run, in real headless Chromium against the real service, SDK and CLI answered by
 * the scripted fake model: following the answer and pausing when the reader scrolls up, images by paste and by
 * drop, "Allow for this chat", several prompts and prompts answered in another tab, the session_restarted notice.
 * Bash asks for permission (PERMISSION_MODE=default).
 */
describe.runIf(chromiumAvailable())('web client while answers run', { timeout: 180_000 }, () => {
  let server: AgentTestServer;
  let browser: Browser;
  let w: WatchedPage;
  let page: Page;
  /** Frames the page's sockets sent and received, parsed. */
  const sent: Record<string, unknown>[] = [];
  const received: Record<string, unknown>[] = [];

  beforeAll(async () => {
    [server, browser] = await Promise.all([
      startAgentServer({ PERMISSION_MODE: 'default', MESSAGES_PER_MINUTE: '0' }),
      launchBrowser(),
    ]);
    w = await openPage(browser, server.url);
    page = w.page;
    page.on('websocket', (ws) => {
      ws.on('framesent', (f) => typeof f.payload === 'string' && sent.push(JSON.parse(f.payload) as Record<string, unknown>));
      ws.on('framereceived', (f) => typeof f.payload === 'string' && received.push(JSON.parse(f.payload) as Record<string, unknown>));
    });
    // Again, now that the frames are watched from the first one.
    await page.reload();
  }, 180_000);

  afterEach(async (ctx) => {
    if (ctx.task.result?.state === 'fail') await screenshot(page, `failed-live-${ctx.task.name.slice(0, 40).replace(/\W+/g, '-')}`);
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  const composer = () => page.getByRole('textbox', { name: 'Message' });
  const lastAssistant = () => page.locator('.msg.assistant').last();
  const jumpButton = () => page.getByRole('button', { name: 'Jump to latest' });
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
   * Waits until the answer to the last message sent in this chat has ended: its end line (cost, stopped or failed)
   * is shown and the Stop button is gone. Not the Stop button alone: right after sending, it may not be there yet.
   */
  async function answerEnded(): Promise<void> {
    await expect.poll(endLines, { timeout: 60_000 }).toBeGreaterThan(endedBeforeSend);
    await page.getByRole('button', { name: 'Stop' }).waitFor({ state: 'detached', timeout: 60_000 });
  }

  async function newChat(): Promise<string> {
    const before = page.url();
    await page.getByRole('button', { name: 'New chat' }).click();
    await page.waitForURL((u) => u.href !== before && /\/c\/[0-9a-f-]{36}$/.test(u.pathname));
    return chatIdFromUrl();
  }

  /** How far the conversation is scrolled from its bottom, in pixels. */
  const distanceFromBottom = () =>
    page.locator('.scroller').evaluate((el) => Math.round(el.scrollHeight - el.scrollTop - el.clientHeight));

  it('follows a streaming answer, stops following when the reader scrolls up, and jumps back to the latest', async () => {
    await page.setViewportSize({ width: 1280, height: 560 });
    onTestFinished(() => page.setViewportSize({ width: 1280, height: 800 }));
    await newChat();
    // Enough text above to scroll: a long first answer.
    await send('/slow 400 2');
    await answerEnded();
    await expect.poll(() => lastAssistant().textContent()).toContain('chunk400');
    expect(await distanceFromBottom()).toBeLessThan(80);

    await send('/slow 400 40');
    // The second answer of this chat (the first one holds `chunk5 ` too).
    const streaming = page.locator('.msg.assistant').nth(1);
    await expect.poll(() => streaming.textContent(), { timeout: 60_000 }).toContain('chunk5 ');
    // Following: the newest text stays in view while it streams.
    await expect.poll(() => distanceFromBottom()).toBeLessThan(80);
    expect(await jumpButton().count()).toBe(0);

    // The reader scrolls up with the wheel: the view stays where they put it while the answer grows.
    await page.locator('.scroller').hover();
    await page.mouse.wheel(0, -1500);
    await jumpButton().waitFor();
    const readerTop = await page.locator('.scroller').evaluate((el) => el.scrollTop);
    const grownFrom = (await streaming.textContent())!.length;
    await expect.poll(async () => (await streaming.textContent())!.length, { timeout: 30_000 }).toBeGreaterThan(grownFrom + 100);
    expect(await page.locator('.scroller').evaluate((el) => el.scrollTop)).toBe(readerTop);
    expect(await distanceFromBottom()).toBeGreaterThan(200);
    await screenshot(page, 'desktop-scrolled-up-while-streaming');

    // "Jump to latest" goes to the bottom, and the view follows the answer again.
    await jumpButton().click();
    await expect.poll(() => distanceFromBottom()).toBeLessThan(80);
    await expect.poll(() => jumpButton().count()).toBe(0);
    const followedFrom = (await streaming.textContent())!.length;
    await expect.poll(async () => (await streaming.textContent())!.length, { timeout: 30_000 }).toBeGreaterThan(followedFrom + 100);
    await expect.poll(() => distanceFromBottom()).toBeLessThan(80);
    // Done: stop the rest (unless it ended meanwhile).
    await page.getByRole('button', { name: 'Stop' }).click({ timeout: 2_000 }).catch(() => undefined);
    await answerEnded();
  });

  it('takes images pasted into the message box and dropped on the conversation, as thumbnails the model sees', async () => {
    await newChat();
    const png = onePixelPng().toString('base64');
    // A paste of an image (as a screenshot tool puts it on the clipboard).
    // (Browser code: this file is type-checked without the DOM library, hence `any`.)
    await composer().evaluate((box, base64) => {
      const web = globalThis as any;
      const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
      const data = new web.DataTransfer();
      data.items.add(new web.File([bytes], 'pasted.png', { type: 'image/png' }));
      box.dispatchEvent(new web.ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }));
    }, png);
    await expect.poll(() => page.locator('.thumb img').count()).toBe(1);
    expect(await page.getByRole('button', { name: 'Remove image pasted.png' }).count()).toBe(1);

    // A file dragged from the desktop and dropped on the conversation.
    await page.locator('main.conversation').evaluate((main, base64) => {
      const web = globalThis as any;
      const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
      const data = new web.DataTransfer();
      data.items.add(new web.File([bytes], 'dropped.png', { type: 'image/png' }));
      main.dispatchEvent(new web.DragEvent('dragover', { dataTransfer: data, bubbles: true, cancelable: true }));
      main.dispatchEvent(new web.DragEvent('drop', { dataTransfer: data, bubbles: true, cancelable: true }));
    }, png);
    await expect.poll(() => page.locator('.thumb img').count()).toBe(2);
    expect(await page.getByRole('button', { name: 'Remove image dropped.png' }).count()).toBe(1);
    expect(await page.locator('.drop-overlay').count()).toBe(0);
    await screenshot(page, 'desktop-pasted-and-dropped');

    await send('/images');
    await answerEnded();
    await expect.poll(() => lastAssistant().textContent()).toContain('Saw 2 image(s)');
    expect(await page.locator('.msg.user').last().locator('img').count()).toBe(2);
    expect(await page.locator('.thumb').count()).toBe(0);
  });

  it('"Allow for this chat" sends remember, and the same command then runs without asking', async () => {
    await newChat();
    const command = 'touch remembered.txt && echo remembered-once';
    await send(`/bash ${command}`);
    const prompt = page.getByRole('group', { name: 'Permission: Bash' });
    await prompt.waitFor({ timeout: 60_000 });
    await screenshot(page, 'desktop-permission-remember');
    await prompt.getByRole('button', { name: 'Allow for this chat' }).click();
    await answerEnded();
    await expect.poll(() => page.locator('.tool-card').last().getAttribute('data-state')).toBe('done');
    const answers = sent.filter((f) => f.type === 'permission_response');
    expect(answers.at(-1)).toMatchObject({ type: 'permission_response', chat_id: chatIdFromUrl(), allow: true, remember: true });

    const promptsBefore = received.filter((f) => f.type === 'permission_request').length;
    await send(`/bash ${command}`);
    await answerEnded();
    await expect.poll(() => page.locator('.tool-card').count()).toBe(2);
    await expect.poll(() => page.locator('.tool-card').last().getAttribute('data-state')).toBe('done');
    await expect.poll(() => lastAssistant().textContent()).toContain('Tool result: remembered-once');
    // Not asked again: no question came to the page, none was shown.
    expect(received.filter((f) => f.type === 'permission_request').length).toBe(promptsBefore);
    expect(await page.getByRole('group', { name: /^Permission/ }).count()).toBe(0);
  });

  it('keeps several open prompts, each with its chat, and drops a prompt another tab answered', async () => {
    // The CLI asks about one call at a time within a chat: several prompts are open at once across chats.
    const first = await newChat();
    await send('/bash touch first-chat.txt && echo first');
    const prompt = () => page.getByRole('group', { name: 'Permission: Bash' });
    await prompt().waitFor({ timeout: 60_000 });
    const second = await newChat();
    await send('/bash touch second-chat.txt && echo second');
    await expect.poll(() => prompt().locator('.perm-code').textContent(), { timeout: 60_000 }).toContain('second-chat.txt');
    expect(await prompt().count()).toBe(1);

    // Another tab on the second chat shows its open question and answers it: it is gone from this tab too.
    const other = await openPage(browser, `${server.url}/c/${second}`);
    try {
      const otherPrompt = other.page.getByRole('group', { name: 'Permission: Bash' });
      await expect.poll(() => otherPrompt.locator('.perm-code').textContent(), { timeout: 30_000 }).toContain('second-chat.txt');
      await screenshot(page, 'desktop-prompt-before-other-tab');
      await otherPrompt.getByRole('button', { name: 'Allow', exact: true }).click();
      await expect.poll(() => prompt().count()).toBe(0);
      await answerEnded();
      await expect.poll(() => lastAssistant().textContent()).toContain('Tool result: second');
      expect(other.errors).toEqual([]);
    } finally {
      await other.context.close();
    }

    // The first chat's question is still open, with its own command, and answered here.
    await page.locator(`a[href="/c/${first}"]`).click();
    await expect.poll(() => prompt().locator('.perm-code').textContent()).toContain('first-chat.txt');
    await prompt().getByRole('button', { name: 'Allow', exact: true }).click();
    await answerEnded();
    await expect.poll(() => lastAssistant().textContent()).toContain('Tool result: first');
    for (const [chatId, file] of [[first, 'first-chat.txt'], [second, 'second-chat.txt']] as const) {
      expect(fs.existsSync(path.join(server.config.WORKSPACE_DIR, chatId, file))).toBe(true);
    }
  });

  it('shows the session_restarted notice when the agent cannot continue the chat\'s earlier session', async () => {
    // A chat whose agent session is gone (its transcript lost): the next answer starts a new session and says so.
    const chat = (await (await fetch(`${server.url}/api/chats`, { method: 'POST' })).json()) as { id: string };
    const { store, close } = await openStore(server.dir);
    try {
      await store.chats.setSdkSessionId(chat.id, randomUUID());
    } finally {
      await close();
    }
    await page.goto(`${server.url}/c/${chat.id}`);
    await composer().waitFor();
    await send('/recall');
    await answerEnded();
    const notice = page.getByRole('note').filter({ hasText: 'could not be restored' });
    await expect.poll(() => notice.count()).toBe(1);
    expect(await notice.textContent()).toBe('The agent’s earlier context could not be restored; it starts fresh from here.');
    await expect.poll(() => lastAssistant().textContent()).toContain('Earlier: (nothing)');
    await screenshot(page, 'desktop-session-restarted');
  });

  it('logged no console errors', () => {
    expect(w.errors).toEqual([]);
  });
});
