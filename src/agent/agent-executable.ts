import fs from 'node:fs';
import { createRequire } from 'node:module';

const SDK_PACKAGE = '@anthropic-ai/claude-agent-sdk';

/**
 * The path of the agent CLI binary that the SDK ships as a platform package (`<sdk>-linux-x64/claude`, ...),
 * resolved ONCE for the whole service.
 *
 * Why not let the SDK find it: without `pathToClaudeCodeExecutable`, every `query()` decides between the glibc and
 * musl builds by calling `process.report.getReport()`, which is synchronous and takes 30-300 ms here. Every agent
 * start would block the event loop, and so every other chat's stream, for that long. Here the platform packages
 * that npm actually installed answer the question (npm installs only the one matching the libc); only when both
 * are present is the report consulted, once.
 */
export function resolveAgentExecutable(): string | undefined {
  const require = createRequire(import.meta.url);
  // Resolved from the SDK's own folder, as the SDK itself does, so a hoisted or nested install is found alike.
  const fromSdk = createRequire(require.resolve(SDK_PACKAGE));
  const exe = process.platform === 'win32' ? '.exe' : '';
  const base = `${SDK_PACKAGE}-${process.platform}-${process.arch}`;
  const find = (pkg: string): string | undefined => {
    try {
      const file = fromSdk.resolve(`${pkg}/claude${exe}`);
      return fs.existsSync(file) ? file : undefined;
    } catch {
      return undefined;
    }
  };
  if (process.platform === 'android') return find(`${SDK_PACKAGE}-linux-${process.arch}-android`);
  if (process.platform !== 'linux') return find(base);
  const glibc = find(base);
  const musl = find(`${base}-musl`);
  if (glibc && musl) return isMusl() ? musl : glibc;
  return glibc ?? musl;
}

function isMusl(): boolean {
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
  return report !== undefined && report.header?.glibcVersionRuntime === undefined;
}
