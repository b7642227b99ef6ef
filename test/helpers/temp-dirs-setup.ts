// Runs in every test file (vitest setupFiles): its temporary folders go once its own afterAll hooks (which close
// the services using them) have run.
import { afterAll } from 'vitest';
import { removeTempDirs } from './temp-dirs.js';

afterAll(() => removeTempDirs());
