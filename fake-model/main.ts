// CLI entry: `tsx fake-model/main.ts [--port N] [--host H] [--quiet]`.
// Prints the base URL to use as ANTHROPIC_BASE_URL, logs each request, and stops on SIGINT/SIGTERM.

import { startFakeModel } from './server.js';

function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const portArg = argValue('--port');
const port = portArg === undefined ? 0 : Number.parseInt(portArg, 10);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`Invalid --port: ${portArg}`);
  process.exit(2);
}
const quiet = process.argv.includes('--quiet');

const fake = await startFakeModel({
  port,
  host: argValue('--host') ?? '127.0.0.1',
  log: quiet ? undefined : (line) => console.error(`[fake-model] ${line}`),
});
// stdout carries only the URL so scripts can capture it: URL=$(tsx fake-model/main.ts | head -1)
console.log(fake.url);

const stop = (): void => {
  void fake.close().then(() => process.exit(0));
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
