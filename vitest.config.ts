import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Probes Postgres once (its tests skip, saying so, where none is reachable) and drops test databases left over;
    // builds the web client when stale, once (its browser tests and the static-serving test serve web/dist).
    globalSetup: ['test/global-setup.ts', 'test/helpers/web-build-setup.ts'],
    // Every test file ends the service processes and removes the temporary folders it left (cleanup-setup.ts).
    setupFiles: ['test/helpers/cleanup-setup.ts'],
    // End-to-end tests start real agent CLI processes (CPU-bound start-up): keep the parallelism at the core count.
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
