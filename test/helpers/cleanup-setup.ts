// Runs in every test file (vitest setupFiles), after the file's own afterAll hooks: service processes a failed or
// timed-out test left running are killed, then the file's temporary folders are removed.
import { afterAll } from 'vitest';
import { killServiceProcesses } from './service-process.js';
import { removeTempDirs } from './temp-dirs.js';

afterAll(() => {
  killServiceProcesses();
  removeTempDirs();
});
