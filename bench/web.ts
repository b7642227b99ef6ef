/**
 * `npm run bench:web`: only the web client's figures (section 6 of `npm run bench`): first-load size, rendering a
 * 1,000-message chat, main-thread time while streaming. Needs Chromium (/usr/bin/chromium or CHROMIUM_PATH).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { killAllNow } from './lib/children.js';
import { startFake } from './lib/fake.js';
import { chromiumPresent, measureWebClient, renderWebClientTable } from './lib/web-client.js';

if (!chromiumPresent()) {
  console.error('bench:web needs Chromium at /usr/bin/chromium (or CHROMIUM_PATH)');
  process.exit(1);
}
const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'agent-chat-bench-web-')));
const fake = await startFake();
try {
  const result = await measureWebClient(dir, fake.url);
  process.stdout.write(`${renderWebClientTable(result)}\n\n${JSON.stringify(result)}\n`);
} finally {
  await fake.stop().catch(() => undefined);
  killAllNow();
  fs.rmSync(dir, { recursive: true, force: true });
}
