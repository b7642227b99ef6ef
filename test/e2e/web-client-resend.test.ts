import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startAgentServer, type AgentTestServer } from '../helpers/agent-server.js';
import { chromiumAvailable, launchBrowser, openPage, screenshot, type WatchedPage } from '../helpers/browser.js';

/**
 * The web client when its connection is cut and when an answer is retried, in real headless Chromium against the
 * real service, SDK and CLI answered by the scripted fake model. The page's own WebSocket is cut from inside the
 * page: a `chat` frame dropped before it reaches the wire (lost in flight), or the echo of a message dropped on
 * arrival (the service got it, the page never heard); the page must reconnect, and every message must be answered
 * exactly once.
 */
describe.runIf(chromiumAvailable())('web client: messages across a connection reset, and retry', { timeout: 180_000 }, () => {
  let server: AgentTestServer;
  let browser: Browser;
  let w: WatchedPage;
  let page: Page;
  /** Every frame the page's sockets put on the wire, parsed. */
  const sent: Record<string, unknown>[] = [];

  beforeAll(async () => {
    [server, browser] = await Promise.all([startAgentServer({ MESSAGES_PER_MINUTE: '0' }), launchBrowser()]);
    w = await openPage(browser, server.url);
    page = w.page;
    // The page's sockets, with two one-shot cuts the tests arm (browser code: typed loosely, no DOM library here).
    await page.addInitScript(() => {
      const web = globalThis as any;
      const Native = web.WebSocket;
      web.__cut = { dropNextChat: false, dropEchoOf: null as string | null, cuts: 0, sockets: [] as unknown[] };
      web.WebSocket = class extends Native {
        constructor(...args: unknown[]) {
          super(...args);
          web.__cut.sockets.push(this);
          // Registered before the page's own onmessage: it can hide a frame from the page.
          this.addEventListener('message', (e: any) => {
            const cut = web.__cut;
            if (cut.dropEchoOf === null || typeof e.data !== 'string') return;
            const frame = JSON.parse(e.data);
            if (frame.type !== 'user_message' || frame.content !== cut.dropEchoOf) return;
            cut.dropEchoOf = null;
            cut.cuts++;
            e.stopImmediatePropagation();
            this.close();
          });
        }
        send(data: unknown) {
          const cut = web.__cut;
          if (cut.dropNextChat && typeof data === 'string' && JSON.parse(data).type === 'chat') {
            cut.dropNextChat = false;
            cut.cuts++;
            this.close();
            return;
          }
          super.send(data);
        }
      };
    });
    page.on('websocket', (ws) => {
      ws.on('framesent', (f) => typeof f.payload === 'string' && sent.push(JSON.parse(f.payload) as Record<string, unknown>));
    });
    await page.reload();
  }, 180_000);

  afterEach(async (ctx) => {
    if (ctx.task.result?.state === 'fail') await screenshot(page, `failed-resend-${ctx.task.name.slice(0, 40).replace(/\W+/g, '-')}`);
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  const composer = () => page.getByRole('textbox', { name: 'Message' });
  const retryButton = () => page.getByRole('button', { name: 'Retry' });
  const chatIdFromUrl = () => new URL(page.url()).pathname.split('/').pop()!;
  const endLines = () => page.locator('.end-line').count();
  const cuts = () => page.evaluate(() => (globalThis as any).__cut.cuts as number);
  const chatFramesSent = (content: string) => sent.filter((f) => f.type === 'chat' && f.content === content).length;

  async function newChat(): Promise<string> {
    const before = page.url();
    await page.getByRole('button', { name: 'New chat' }).click();
    await page.waitForURL((u) => u.href !== before && /\/c\/[0-9a-f-]{36}$/.test(u.pathname));
    await page.locator('.welcome').waitFor();
    return chatIdFromUrl();
  }

  /** Sends a message and waits for its answer's end line. */
  async function ask(text: string): Promise<void> {
    const ended = await endLines();
    await composer().fill(text);
    await composer().press('Enter');
    await expect.poll(endLines, { timeout: 60_000 }).toBeGreaterThan(ended);
  }

  /** What the service stored for the chat (superseded answers included). */
  async function stored(chatId: string): Promise<{ role: string; content: string; superseded?: boolean }[]> {
    const res = await fetch(`${server.url}/api/chats/${chatId}/messages`);
    expect(res.status).toBe(200);
    return (await res.json()) as { role: string; content: string; superseded?: boolean }[];
  }
  const count = (list: { content: string }[], content: string) => list.filter((m) => m.content === content).length;

  it('sends again, once, a message whose frame was lost when the connection dropped, after reconnecting', async () => {
    const chatId = await newChat();
    await ask('warm up'); // the chat's agent is running: the next message is stored at once
    await page.evaluate(() => ((globalThis as any).__cut.dropNextChat = true));
    const subscribesBefore = sent.filter((f) => f.type === 'subscribe').length;

    await composer().fill('lost in flight');
    await composer().press('Enter');
    // Shown at once, as sending, while the page reconnects.
    await page.locator('.msg.user.pending', { hasText: 'lost in flight' }).waitFor();
    await screenshot(page, 'desktop-sending-after-reset');
    expect(await cuts()).toBe(1);
    await expect.poll(() => page.locator('.msg.assistant', { hasText: 'Echo: lost in flight' }).count(), { timeout: 60_000 }).toBe(1);
    await expect.poll(() => page.locator('.msg.user.pending').count()).toBe(0);

    // After the reconnect the chat came back as a snapshot (its end tells what the service holds), then the resend.
    const resubscribe = sent.filter((f) => f.type === 'subscribe').slice(subscribesBefore);
    expect(resubscribe.find((f) => f.chat_id === chatId)).not.toHaveProperty('last_seq');
    expect(chatFramesSent('lost in flight')).toBe(1);
    // Answered exactly once, also after the resend's grace period has long passed.
    await page.waitForTimeout(3_000);
    const messages = await stored(chatId);
    expect(count(messages, 'lost in flight')).toBe(1);
    expect(count(messages, 'Echo: lost in flight')).toBe(1);
    expect(await page.locator('.msg.user', { hasText: 'lost in flight' }).count()).toBe(1);
    expect(chatFramesSent('lost in flight')).toBe(1);
  });

  it('does not send again a message the service received when only its echo was lost, nor one whose echo arrived', async () => {
    const chatId = await newChat();
    await ask('warm up');

    // The service gets the message; the connection drops as its echo arrives, before the page sees it.
    const cutsBefore = await cuts();
    await page.evaluate(() => ((globalThis as any).__cut.dropEchoOf = 'echo lost'));
    await ask('echo lost');
    expect(await cuts()).toBe(cutsBefore + 1);
    await expect.poll(() => page.locator('.msg.user.pending').count()).toBe(0);

    // The echo arrives; then the connection drops while the answer streams: nothing to send again.
    await composer().fill('/slow 30 60');
    await composer().press('Enter');
    await expect.poll(() => page.locator('.msg.assistant', { hasText: 'chunk3 ' }).count(), { timeout: 60_000 }).toBe(1);
    expect(await page.locator('.msg.user.pending').count()).toBe(0);
    const subscribesBefore = sent.filter((f) => f.type === 'subscribe').length;
    await page.evaluate(() => ((globalThis as any).__cut.sockets.at(-1) as { close(): void }).close());
    // Reconnected with a replay (nothing pending), and the rest of the answer came through it.
    await expect.poll(() => sent.filter((f) => f.type === 'subscribe').length, { timeout: 30_000 }).toBeGreaterThan(subscribesBefore);
    expect(sent.filter((f) => f.type === 'subscribe').slice(subscribesBefore)[0]).toHaveProperty('last_seq');
    await expect.poll(() => page.locator('.msg.assistant', { hasText: 'chunk30' }).count(), { timeout: 60_000 }).toBe(1);

    await page.waitForTimeout(3_000);
    const messages = await stored(chatId);
    expect(count(messages, 'echo lost')).toBe(1);
    expect(count(messages, 'Echo: echo lost')).toBe(1);
    expect(count(messages, '/slow 30 60')).toBe(1);
    expect(chatFramesSent('echo lost')).toBe(1);
    expect(chatFramesSent('/slow 30 60')).toBe(1);
    expect(await page.locator('.msg.user', { hasText: 'echo lost' }).count()).toBe(1);
    expect(w.errors).toEqual([]);
  });

  it('retries the last answer: the old one leaves the view, the new one streams in, and a reload shows the same', async () => {
    const chatId = await newChat();
    // Each answer to /stamp differs (times of day), so the old and the new answer are told apart.
    await ask('/stamp 12 150');
    const old = (await page.locator('.msg.assistant').last().textContent())!;
    expect(old).toContain('<t>');
    await retryButton().click();
    // The new answer streams in place of the old one; no Retry while it runs.
    await page.locator('.msg.assistant[data-status="streaming"]').waitFor({ timeout: 60_000 });
    expect(await page.locator('.msg.assistant').count()).toBe(1);
    expect(await page.locator('.thread').textContent()).not.toContain(old);
    expect(await retryButton().count()).toBe(0);
    expect(sent.filter((f) => f.type === 'retry' && f.chat_id === chatId)).toHaveLength(1);
    await expect.poll(() => page.locator('.msg.assistant[data-status="complete"]').count(), { timeout: 60_000 }).toBe(1);
    const fresh = (await page.locator('.msg.assistant').textContent())!;
    expect(fresh).not.toEqual(old);
    await expect.poll(endLines).toBe(1);
    await retryButton().waitFor();
    await screenshot(page, 'desktop-retried');

    // The service keeps the old answer, superseded; the page leaves it out after a reload too.
    const messages = await stored(chatId);
    expect(messages.filter((m) => m.role === 'assistant').map((m) => m.superseded ?? false)).toEqual([true, false]);
    await page.reload();
    await page.locator('.msg.assistant').first().waitFor();
    await expect.poll(() => page.locator('.msg.assistant').allTextContents()).toEqual([fresh]);
    expect(await page.locator('.thread').textContent()).not.toContain(old);
    expect(await endLines()).toBe(1);
    await retryButton().waitFor();
    expect(w.errors).toEqual([]);
  });
});
