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
  /**
   * Opening a chat of 1,000 messages from another chat: click to its newest message painted (ms), wall clock, and
   * Chromium's CPU time over the same span. `mounted`: messages in the DOM then (the client mounts the newest part
   * and the rest as the reader scrolls up).
   */
  render1000: {
    runs: number[];
    medianMs: number;
    cpuMs: number[];
    medianCpuMs: number;
    mounted: number;
    /**
     * The same span cut in two at the moment the page receives the chat's `history` frame: the service reading and
     * sending 1,000 messages, then the page parsing and painting them.
     */
    historyReceivedMs: number[];
    medianHistoryReceivedMs: number;
    pageMs: number[];
    medianPageMs: number;
  };
  /**
   * Per 100 text deltas while an answer streams: the page's main-thread busy time (Chrome's TaskDuration, wall
   * clock: inflated when the machine is busy) and Chromium's CPU time (all its processes).
   */
  streaming: { deltas: number; deltaIntervalMs: number; mainThreadMsPer100Deltas: number; cpuMsPer100Deltas: number; wallS: number };
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

/**
 * CPU time (user + system, ms) of this benchmark's Chromium, all its processes together: unlike wall-clock task
 * times it does not grow when other work on the machine takes the cores. Found by a marker switch on the browser
 * process and its process tree in /proc.
 */
function chromiumCpuMs(marker: string): number {
  const stats = new Map<number, { ppid: number; ticks: number }>();
  let root = -1;
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      stats.set(Number(entry), { ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) });
      if (root < 0 && fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(marker)) root = Number(entry);
    } catch {
      /* the process ended meanwhile */
    }
  }
  const inTree = (pid: number): boolean => {
    for (let p = pid, hops = 0; p > 1 && hops < 50; hops++) {
      if (p === root) return true;
      p = stats.get(p)?.ppid ?? 0;
    }
    return false;
  };
  let ticks = 0;
  for (const [pid, s] of stats) if (inTree(pid)) ticks += s.ticks;
  return (ticks * 1000) / 100; // USER_HZ is 100 on Linux
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
  const seed = await seedDatabase({ kind: 'sqlite', file: path.join(dataDir, 'chat.db') }, { chats: 2, messages: 1000 });
  const service = await ServiceProcess.start({
    dataDir,
    fakeUrl,
    env: { PAGE_SIZE: '1000', MESSAGES_PER_MINUTE: '0' },
    startTimeoutMs: 120_000,
  });
  const marker = `web-bench-${process.pid}-${Date.now()}`;
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', `--bench-marker=${marker}`],
  });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    // Notes when each `history` frame arrives, before the page's own handler runs (a listener added first).
    await context.addInitScript(`(() => {
      const Base = window.WebSocket;
      window.__historyAt = [];
      window.WebSocket = class extends Base {
        constructor(...args) {
          super(...args);
          this.addEventListener('message', (e) => {
            if (typeof e.data === 'string' && e.data.startsWith('{"type":"history"')) window.__historyAt.push(performance.now());
          });
        }
      };
    })()`);
    const page = await context.newPage();
    const other = (await (await fetch(`${service.url}/api/chats`, { method: 'POST' })).json()) as { id: string };
    const runs: number[] = [];
    const cpuRuns: number[] = [];
    const historyRuns: number[] = [];
    const pageRuns: number[] = [];
    let mounted = 0;
    for (let i = 0; i < renderRuns; i++) {
      // Start on another chat (page loaded, socket open), then open the long chat: what a user waits for.
      await page.goto(`${service.url}/c/${other.id}`);
      await page.locator('[data-connection="open"]').waitFor();
      const link = page.locator(`a[href="/c/${seed.historyChatId}"]`);
      await link.waitFor();
      // Runs in the page (a string: this file is type-checked without the DOM library).
      const cpuBefore = chromiumCpuMs(marker);
      const { ms, historyMs } = (await page.evaluate(`new Promise((resolve) => {
        const start = performance.now();
        window.__historyAt = [];
        document.querySelector('a[href="/c/${seed.historyChatId}"]').click();
        const check = () => {
          const all = document.querySelectorAll('.msg');
          const last = all[all.length - 1];
          if (last && last.textContent.includes('(#999)')) {
            // One more frame: layout and paint of the complete list are included.
            requestAnimationFrame(() =>
              setTimeout(() => resolve({ ms: performance.now() - start, historyMs: window.__historyAt[0] - start }), 0),
            );
          } else requestAnimationFrame(check);
        };
        check();
      })`)) as { ms: number; historyMs: number };
      cpuRuns.push(round(chromiumCpuMs(marker) - cpuBefore, 0));
      runs.push(round(ms, 1));
      historyRuns.push(round(historyMs, 1));
      pageRuns.push(round(ms - historyMs, 1));
      mounted = await page.locator('.msg').count();
    }
    for (const list of [runs, cpuRuns, historyRuns, pageRuns]) list.sort((a, b) => a - b);
    const median = (list: number[]) => list[Math.floor(list.length / 2)]!;

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
    const cpuBefore = chromiumCpuMs(marker);
    const started = performance.now();
    await box.fill(`/slow ${deltas} 10`);
    await box.press('Enter');
    await page.locator('.end-line').nth(1).waitFor({ timeout: 120_000 });
    const after = await taskMs(cdp);
    const cpuAfter = chromiumCpuMs(marker);
    const text = await page.locator('.msg.assistant').last().textContent();
    if (!text?.includes(`chunk${deltas} `.trim())) throw new Error('the streamed answer did not arrive complete');
    return {
      firstLoad,
      render1000: {
        runs,
        medianMs: median(runs),
        cpuMs: cpuRuns,
        medianCpuMs: median(cpuRuns),
        mounted,
        historyReceivedMs: historyRuns,
        medianHistoryReceivedMs: median(historyRuns),
        pageMs: pageRuns,
        medianPageMs: median(pageRuns),
      },
      streaming: {
        deltas,
        deltaIntervalMs: 10,
        mainThreadMsPer100Deltas: round(((after - before) / deltas) * 100, 1),
        cpuMsPer100Deltas: round(((cpuAfter - cpuBefore) / deltas) * 100, 1),
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
    `| open a 1,000-message chat: click → newest message painted, median of ${r.render1000.runs.length} | **${r.render1000.medianMs} ms** wall (runs ${r.render1000.runs.join(', ')}); Chromium CPU ${r.render1000.medianCpuMs} ms; ${r.render1000.mounted} messages mounted, the rest on scrolling up | ≤ 500 ms |`,
    `| … of which: click → \`history\` received (the service) | ${r.render1000.medianHistoryReceivedMs} ms (runs ${r.render1000.historyReceivedMs.join(', ')}) | |`,
    `| … of which: \`history\` received → painted (the page) | **${r.render1000.medianPageMs} ms** (runs ${r.render1000.pageMs.join(', ')}) | |`,
    `| per 100 deltas while streaming (${r.streaming.deltas} deltas, one per ${r.streaming.deltaIntervalMs} ms) | main thread **${r.streaming.mainThreadMsPer100Deltas} ms** (wall); Chromium CPU ${r.streaming.cpuMsPer100Deltas} ms | |`,
  ].join('\n');
}
