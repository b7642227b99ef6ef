import { ensureWebBuild } from '../../scripts/build-web.js';

/**
 * Before any test file: the web client is built when its build is stale, once, so parallel test files that serve
 * it never run two Vite builds into the same folder.
 */
export default function setup(): void {
  ensureWebBuild({ log: () => {} });
}
