// `npm start`, exactly as the README tells a newcomer: it compiles what changed, starts the service, serves the
// web page at `/` and the API, and stops cleanly on SIGTERM. Only the port and the data folder are chosen here.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort } from '../helpers/service-process.js';
import { makeTempDir } from '../helpers/temp-dirs.js';

const root = path.resolve(import.meta.dirname, '../..');

describe('npm start', { timeout: 180_000 }, () => {
  it('serves the web page and the API, and everything it started ends on SIGTERM', async () => {
    const dir = makeTempDir();
    const port = await freePort();
    const child = spawn('npm', ['start'], {
      cwd: root,
      // Its own process group: npm, the build steps and the service are signalled together, as a terminal does.
      detached: true,
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: process.env.HOME ?? '/root',
        PORT: String(port),
        DATABASE_URL: `sqlite:${path.join(dir, 'chat.db')}`,
        WORKSPACE_DIR: path.join(dir, 'workspaces'),
        AGENT_HOME_DIR: path.join(dir, 'agent-home'),
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const url = `http://127.0.0.1:${port}`;
    try {
      const deadline = Date.now() + 150_000;
      while (!(await fetch(`${url}/healthz`).then((r) => r.ok, () => false))) {
        if (child.exitCode !== null) throw new Error(`npm start exited:\n${output}`);
        if (Date.now() > deadline) throw new Error(`npm start did not answer /healthz:\n${output}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      const page = await fetch(`${url}/`);
      expect(page.status).toBe(200);
      expect(await page.text()).toMatch(/^<!doctype html>/i);
      const info = await fetch(`${url}/api/info`);
      expect(info.status).toBe(200);
      const created = await fetch(`${url}/api/chats`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      expect(created.status).toBe(201);
    } finally {
      process.kill(-child.pid!, 'SIGTERM');
    }
    // npm itself dies of the signal; the service shuts down gracefully. Nothing of the group may be left.
    const groupAlive = () => {
      try {
        process.kill(-child.pid!, 0);
        return true;
      } catch {
        return false;
      }
    };
    const deadline = Date.now() + 20_000;
    while (groupAlive() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(groupAlive()).toBe(false);
    expect(output).not.toMatch(/error/i);
  });
});
