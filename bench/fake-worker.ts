/**
 * The repo's fake Anthropic API in a process of its own, for the benchmark. Separate so that its CPU is charged
 * neither to the service nor to the bare SDK, and so both sides stream from the same fake. Prints one JSON line
 * on stdout — its URL and its clock offset (see lib/clock.ts) — then serves until SIGTERM/SIGINT.
 */
import { startFakeModel } from '../fake-model/server.js';
import { clockOffsetMs } from './lib/clock.js';

const fake = await startFakeModel({ port: 0 });
process.stdout.write(`${JSON.stringify({ url: fake.url, clockOffsetMs: clockOffsetMs() })}\n`);

// The fake keeps a log of every request; over a full run that is a few MB: fine, but never let it grow unbounded.
setInterval(() => fake.requests.splice(0, fake.requests.length), 5_000).unref();

const stop = (): void => {
  void fake.close().then(() => process.exit(0));
  setTimeout(() => process.exit(0), 2_000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// The benchmark owns this process: if it goes away without stopping us, stop too.
process.stdin.on('end', stop);
process.stdin.resume();
