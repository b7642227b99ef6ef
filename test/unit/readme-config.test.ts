import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { EnvSchema } from '../../src/config/config.js';

describe('README configuration table', () => {
  it('lists every environment variable the service reads', () => {
    const readme = fs.readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const rows = readme.split('\n').filter((line) => line.startsWith('| `'));
    const missing = Object.keys(EnvSchema.shape).filter((key) => !rows.some((row) => row.includes(`\`${key}\``)));
    expect(missing).toEqual([]);
  });
});
