import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { ensureWebBuild } from '../../scripts/build-web.js';

const root = path.resolve(import.meta.dirname, '../..');

/**
 * Before any test file, once, so parallel test files never build into the same folder: the web client when its
 * build is stale (tests that serve it), and the compiled service in dist/ when a source changed (tests that run
 * the service as its own process run what `npm start` runs).
 */
export default function setup(): void {
  ensureWebBuild({ log: () => {} });
  execFileSync(process.execPath, [path.join(root, 'scripts/build-server.mjs')], { cwd: root, stdio: 'ignore' });
}
