// Temporary folders of a test file (databases, workspaces, agent homes, browser profiles): each one is removed
// after the file's last test (test/helpers/cleanup-setup.ts), so a run of `npm test` leaves nothing behind.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const created = new Set<string>();

export function makeTempDir(prefix = 'agent-chat-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  created.add(dir);
  return dir;
}

/** Removes every folder made so far (a mount inside one must have been unmounted by its test). */
export function removeTempDirs(): void {
  for (const dir of created) {
    fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    created.delete(dir);
  }
}
