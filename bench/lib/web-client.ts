import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { chromium, type CDPSession } from 'playwright-core';
import { ensureWebBuild } from '../../scripts/build-web.js';
import { REPO_ROOT } from './children.js';
import { seedDatabase } from './rest.js';
import { ServiceProcess } from './service.js';
import { round } from './util.js';

export interface WebClientResult {
  /** Every JS and CSS file index.html loads, gzip -9: what a first visit downloads before the page works. */
  firstLoad: { files: { name: string; bytes: number; gzipBytes: number }[]; jsGzipBytes: number; cssGzipBytes: number; totalGzipBytes: number };
  /** Opening a chat of 1,000 messages from another chat: click to all 1,000 on screen and painted (ms). */
  render1000: { runs: number[]; medianMs: number };
  /** Main-thread busy time (Chrome's TaskDuration) per 100 text deltas while an answer streams. */
  streaming: { deltas: number; deltaIntervalMs: number; mainThreadMsPer100Deltas: number; wallS: number };
  chromium: string;
}

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export function chromiumPresent(): boolean {
  return fs.existsSync(CHROMIUM);
}

function firstLoadSizes(): WebClientResult['firstLoad'] {
  const dist = path.join(REPO_ROOT, 'web/dist');
  const html = fs.readFileSync(path.join(dist, 'index.html'), 'utf8');
  const names = [...html.matchAll(/(?:src|href)="\/(assets\/[^"]+\.(?:js|css))"/g)].map((m) => m[1]!);
  const files = names.map((name) => {
    const body = fs.readFileSync(path.join(dist, name));
    return { name, bytes: body.length, gzipBytes: zlib.gzipSync(body, { level: 9 }).length };
  });
  const sum = (ext: string) => files.filter((f) => f.name.endsWith(ext)).reduce((a, f) => a + f.gzipBytes, 0);
  return { files, jsGzipBytes: sum('.js'), cssGzipBytes: sum('.css'), totalGzipBytes: sum('.js') + sum('.css') };
}

/** The page's main-thread task time so far (ms), from the Chrome DevTools Protocol. */
async function taskMs(cdp: CDPSession): Promise<number> {
  const { metrics } = await cdp.send('Performance.getMetrics');
  return (metrics.find((m) => m.name === 'TaskDuration')?.value ?? 0) * 1000;
}

/**
 * The web client in headless Chromium against the real service (fake model): first-load size, time to render a
 * 1,000-message chat, main-thread cost of streaming.
 */
export async function measureWebClient(dataDir: string, fakeUrl: string, { renderRuns = 5, deltas = 500 } = {}): Promise<WebClientResult> {
  ensureWebBuild({ log: () => {} });
  const firstLoad = firstLoadSizes();
  const seed = await seedDatabase(dataDir, { chats: 2, messages: 1000 });
  const service = await ServiceProcess.start({ dataDir, fakeUrl, env: { PAGE_SIZE: '1000', MESSAGES_PER_MINUTE: '0' } });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    const other = (await (await fetch(`${service.url}/api/chats`, { method: 'POST' })).json()) as { id: string };
    const runs: number[] = [];
    for (let i = 0; i < renderRuns; i++) {
      // Start on another chat (page loaded, socket open), then open the long chat: what a user waits for.
      await page.goto(`${service.url}/c/${other.id}`);
      await page.locator('[data-connection="open"]').waitFor();
      const link = page.locator(`a[href="/c/${seed.historyChatId}"]`);
      await link.waitFor();
      // Runs in the page (a string: this file is type-checked without the DOM library).
      const ms = (await page.evaluate(`new Promise((resolve) => {
        const start = performance.now();
        document.querySelector('a[href="/c/${seed.historyChatId}"]').click();
        const check = () => {
          if (document.querySelectorAll('.msg').length >= 1000) {
            // One more frame: layout and paint of the complete list are included.
            requestAnimationFrame(() => setTimeout(() => resolve(performance.now() - start), 0));
          } else requestAnimationFrame(check);
        };
        check();
      })`)) as number;
      runs.push(round(ms, 1));
    }
    runs.sort((a, b) => a - b);

    // Streaming: a new chat, one answer of `deltas` deltas 10 ms apart; Chrome's main-thread task time around it.
    const chat = (await (await fetch(`${service.url}/api/chats`, { method: 'POST' })).json()) as { id: string };
    await page.goto(`${service.url}/c/${chat.id}`);
    await page.locator('[data-connection="open"]').waitFor();
    const box = page.getByRole('textbox', { name: 'Message' });
    await box.fill('warm up');
    await box.press('Enter');
    await page.locator('.end-line').first().waitFor({ timeout: 60_000 });
    const cdp = await context.newCDPSession(page);
    await cdp.send('Performance.enable');
    const before = await taskMs(cdp);
    const started = performance.now();
    await box.fill(`/slow ${deltas} 10`);
    await box.press('Enter');
    await page.locator('.end-line').nth(1).waitFor({ timeout: 120_000 });
    const after = await taskMs(cdp);
    const text = await page.locator('.msg.assistant').last().textContent();
    if (!text?.includes(`chunk${deltas} `.trim())) throw new Error('the streamed answer did not arrive complete');
    return {
      firstLoad,
      render1000: { runs, medianMs: runs[Math.floor(runs.length / 2)]! },
      streaming: {
        deltas,
        deltaIntervalMs: 10,
        mainThreadMsPer100Deltas: round(((after - before) / deltas) * 100, 1),
        wallS: round((performance.now() - started) / 1000, 1),
      },
      chromium: browser.version(),
    };
  } finally {
    await browser.close();
    await service.stop();
  }
}

export function renderWebClientTable(r: WebClientResult): string {
  const kb = (b: number) => `${(b / 1024).toFixed(1)} KB`;
  return [
    `\n### 6. Web client (headless Chromium ${r.chromium})\n`,
    '| figure | value | goal |',
    '|---|---|---|',
    `| first load, JS + CSS gzip | **${kb(r.firstLoad.totalGzipBytes)}** (JS ${kb(r.firstLoad.jsGzipBytes)}, CSS ${kb(r.firstLoad.cssGzipBytes)}) | ≤ 200 KB |`,
    `| open a 1,000-message chat, median of ${r.render1000.runs.length} (ms) | **${r.render1000.medianMs}** (runs ${r.render1000.runs.join(', ')}) | ≤ 500 ms |`,
    `| main-thread time per 100 deltas while streaming (${r.streaming.deltas} deltas, one per ${r.streaming.deltaIntervalMs} ms) | **${r.streaming.mainThreadMsPer100Deltas} ms** | |`,
  ].join('\n');
}
