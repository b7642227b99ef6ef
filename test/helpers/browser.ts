import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { ensureWebBuild } from '../../scripts/build-web.js';

/** Debian's `chromium` package; `.ci/run` installs it. Override with CHROMIUM_PATH. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export function chromiumAvailable(): boolean {
  return fs.existsSync(CHROMIUM_PATH);
}

if (!chromiumAvailable()) {
  console.warn(`SKIPPED: browser tests of the web client need Chromium at ${CHROMIUM_PATH} (Debian: apt-get install chromium)`);
}

/** Screenshots of the main states, for people to look at (git-ignored). */
export const SCREENSHOT_DIR = path.resolve(import.meta.dirname, '../../test-artifacts/web');

/** Real headless Chromium driven by playwright-core; the web client is built first when its build is stale. */
export async function launchBrowser(): Promise<Browser> {
  ensureWebBuild({ log: () => {} });
  fs.mkdirSync(SCREENSHOT_DIR, { recursive: true });
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}

/** A page that records console errors and uncaught exceptions, so a test can require there were none. */
export interface WatchedPage {
  page: Page;
  context: BrowserContext;
  errors: string[];
}

export async function openPage(
  browser: Browser,
  url: string,
  options: { viewport?: { width: number; height: number }; isMobile?: boolean; locale?: string; colorScheme?: 'light' | 'dark' } = {},
): Promise<WatchedPage> {
  const context = await browser.newContext({
    viewport: options.viewport ?? { width: 1280, height: 800 },
    isMobile: options.isMobile ?? false,
    hasTouch: options.isMobile ?? false,
    locale: options.locale ?? 'en-US',
    colorScheme: options.colorScheme ?? 'light',
    deviceScaleFactor: 1,
  });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(`console: ${msg.text()}`);
  });
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
  await page.goto(url);
  return { page, context, errors };
}

export async function screenshot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: path.join(SCREENSHOT_DIR, `${name}.png`) });
}
