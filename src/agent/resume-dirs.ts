import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { findProcessesWithEnv } from './process-scan.js';
import { projectFolder } from './transcripts.js';

/** How the agent SDK names the config dir it makes to resume a session from a session store. */
const RESUME_DIR_PREFIX = 'claude-resume-';
/** A chat id (a UUID) as a regular expression. */
const CHAT_ID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';

/**
 * Removes the temporary config dirs the agent SDK left behind for this node's chats. To resume a session kept in
 * the database (SESSION_STORE=database) the SDK copies it into `<system temp>/claude-resume-*` and removes that folder
 * when the agent process exits; a service killed with -9 never does, leaving a copy of the chat's transcript. Run at
 * start-up, before any agent: a folder is this node's when its project folder is named after a working directory
 * of this WORKSPACE_DIR (`<WORKSPACE_DIR>/<chat id>`), and left alone while any process still runs with it.
 */
export async function removeLeftoverResumeDirs(workspaceDir: string, tmpDir = os.tmpdir()): Promise<string[]> {
  // Exactly `<WORKSPACE_DIR>/<chat id>` spelled as a project folder: a prefix alone would also match the folders of a
  // sibling WORKSPACE_DIR such as `<WORKSPACE_DIR>-2` (the spelling turns every other character into '-').
  const ours = new RegExp(`^${projectFolder(workspaceDir + path.sep)}${CHAT_ID}$`);
  const names = await fs.readdir(tmpDir).catch(() => [] as string[]);
  const removed: string[] = [];
  for (const name of names.filter((n) => n.startsWith(RESUME_DIR_PREFIX))) {
    const dir = path.join(tmpDir, name);
    const projects = await fs.readdir(path.join(dir, 'projects')).catch(() => [] as string[]);
    if (!projects.some((project) => ours.test(project))) continue;
    if ((await findProcessesWithEnv(`CLAUDE_CONFIG_DIR=${dir}`)).length > 0) continue;
    await fs.rm(dir, { recursive: true, force: true });
    removed.push(dir);
  }
  return removed;
}

/**
 * Removes the SDK's temporary resume dir a finished agent process ran with, if `configDir` is one. The SDK removes it
 * too, but only asynchronously once it has seen the process exit, which a service shutting down does not wait for:
 * it would leave a copy of the chat's transcript behind.
 */
export async function removeResumeDir(configDir: string | undefined): Promise<void> {
  if (!configDir || !path.basename(configDir).startsWith(RESUME_DIR_PREFIX)) return;
  await fs.rm(configDir, { recursive: true, force: true, maxRetries: 3 }).catch(() => undefined);
}
