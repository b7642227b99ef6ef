import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChatExport } from '../../src/protocol/export.js';
import { chromiumAvailable, launchBrowser, openPage, screenshot } from '../helpers/browser.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';
import { onePixelPng, withoutIdsAndDates } from './support.js';

const at = '2026-11-30T10:00:00.000Z';
/** An export as another service would have written it: a question with an image, a tool call, an answer. */
const file: ChatExport = {
  format: 'agent-chat-export',
  version: 1,
  exported_at: at,
  chat: { id: 'elsewhere-1', title: 'Imported here', title_source: 'user', created_at: at, updated_at: at, settings: {} },
  usage: { input_tokens: 120, output_tokens: 30, cost_usd: 0.0012, queries: 1 },
  queries: [
    {
      id: 'q1',
      status: 'complete',
      cost_usd: 0.0012,
      duration_ms: 1500,
      error: null,
      started_at: at,
      ended_at: at,
      usage: [{ model: 'claude-sonnet-4-5', input_tokens: 120, output_tokens: 30, cache_read_input_tokens: 0, cache_creation_input_tokens: 0, cost_usd: 0.0012 }],
    },
  ],
  entries: [
    {
      type: 'message', id: 'm1', role: 'user', content: 'Hello from the file', status: 'complete', created_at: at, query_id: 'q1',
      superseded: false, images: [{ media_type: 'image/png', base64: onePixelPng().toString('base64') }],
    },
    {
      type: 'tool_use', id: 'toolu_1', query_id: 'q1', name: 'Bash', input: { command: 'echo imported' }, result: 'imported',
      is_error: false, created_at: at, completed_at: at, superseded: false,
    },
    { type: 'message', id: 'm2', role: 'assistant', content: 'The answer from elsewhere', status: 'complete', created_at: at, query_id: 'q1', superseded: false, images: [] },
  ],
};

/** The web client's Import and Export controls, in real Chromium against the real service. */
describe.runIf(chromiumAvailable())('web client export and import', { timeout: 120_000 }, () => {
  let server: TestServer;
  let browser: Browser;

  beforeAll(async () => {
    [server, browser] = await Promise.all([startTestServer({ AGENT_PREWARM: 'false' }), launchBrowser()]);
  }, 180_000);
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('imports a JSON export file as a new chat, opens it, and downloads it again as JSON and as Markdown', async () => {
    const w = await openPage(browser, server.url);
    const page = w.page;
    try {
      await page.getByRole('button', { name: 'New chat' }).waitFor();
      const chooser = page.waitForEvent('filechooser');
      await page.getByRole('button', { name: 'Import chat' }).click();
      await (await chooser).setFiles({ name: 'chat.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(file)) });
      await page.waitForURL(/\/c\//);
      await expect.poll(() => page.locator('.topbar-title').textContent()).toBe('Imported here');
      await expect.poll(() => page.locator('.thread').textContent()).toContain('The answer from elsewhere');
      expect(await page.locator('.thread').textContent()).toContain('Hello from the file');
      await expect.poll(() => page.locator('.chat-link').count()).toBe(1);
      await screenshot(page, 'desktop-imported-chat');

      const json = page.waitForEvent('download');
      await page.getByRole('button', { name: 'Export JSON' }).click();
      const jsonDownload = await json;
      expect(jsonDownload.suggestedFilename()).toMatch(/^Imported-here-\d{4}-\d{2}-\d{2}\.json$/);
      const exported = JSON.parse(await readDownload(jsonDownload)) as ChatExport;
      expect(withoutIdsAndDates(exported)).toEqual(withoutIdsAndDates(file));

      const markdown = page.waitForEvent('download');
      await page.getByRole('button', { name: 'Export Markdown' }).click();
      const mdDownload = await markdown;
      expect(mdDownload.suggestedFilename()).toMatch(/^Imported-here-\d{4}-\d{2}-\d{2}\.md$/);
      const text = await readDownload(mdDownload);
      expect(text).toMatch(/^# Imported here\n/);
      expect(text).toContain('**Tool `Bash`**');
      expect(w.errors).toEqual([]);

      // A file that is not an export: the service's reason is shown, no chat is added.
      const again = page.waitForEvent('filechooser');
      await page.getByRole('button', { name: 'Import chat' }).click();
      await (await again).setFiles({ name: 'notes.json', mimeType: 'application/json', buffer: Buffer.from('{"format":"notes"}') });
      await expect.poll(() => page.getByRole('alert').textContent()).toMatch(/Import failed: .*format must be "agent-chat-export"/);
      expect(await page.locator('.chat-link').count()).toBe(1);
    } finally {
      await w.context.close();
    }
  });
});

async function readDownload(download: { createReadStream(): Promise<NodeJS.ReadableStream> }): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of await download.createReadStream()) chunks.push(Buffer.from(chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}
