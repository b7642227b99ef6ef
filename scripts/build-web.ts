/**
 * Builds the web client (web/ → web/dist) when the build is missing or older than its sources. Runs from `npm
 * install` (prepare), `npm start`, `npm run demo` and the browser tests, so a fresh clone serves the page with no
 * extra step and an edited client is never served stale. `--force` builds regardless.
 *
 * Without Vite installed (e.g. `npm ci --omit=dev`) it says so and exits 0: the service still runs, and `/` explains
 * how to build the page.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const root = path.resolve(import.meta.dirname, '..');
const SOURCES = ['web/src', 'web/public', 'web/index.html', 'web/vite.config.ts', 'src/protocol'];
const BUILT = path.join(root, 'web/dist/index.html');

function newestMtime(p: string): number {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(p);
  } catch {
    return 0;
  }
  if (!stat.isDirectory()) return stat.mtimeMs;
  return Math.max(stat.mtimeMs, ...fs.readdirSync(p).map((e) => newestMtime(path.join(p, e))));
}

export function webBuildIsStale(): boolean {
  const built = newestMtime(BUILT);
  return built === 0 || SOURCES.some((s) => newestMtime(path.join(root, s)) > built);
}

/** Builds when stale (or forced); returns what it did. Throws when the build itself fails. */
export function ensureWebBuild({ force = false, log = console.log } = {}): 'fresh' | 'built' | 'no-vite' {
  if (!force && !webBuildIsStale()) return 'fresh';
  const vite = path.join(root, 'node_modules/vite/bin/vite.js');
  if (!fs.existsSync(vite)) {
    log('web client: Vite is not installed (production install?), skipping the build of web/');
    return 'no-vite';
  }
  const started = Date.now();
  const run = spawnSync(process.execPath, [vite, 'build', '--config', 'web/vite.config.ts', '--logLevel', 'warn'], {
    cwd: root,
    stdio: 'inherit',
  });
  if (run.status !== 0) throw new Error(`web client build failed (exit ${run.status})`);
  log(`web client built in ${((Date.now() - started) / 1000).toFixed(1)} s (web/dist)`);
  return 'built';
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  try {
    ensureWebBuild({ force: process.argv.includes('--force') });
  } catch (err) {
    console.error((err as Error).message);
    process.exit(1);
  }
}
