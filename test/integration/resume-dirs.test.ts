// Start-up clean-up of the agent SDK's temporary resume folders (claude-resume-*) a killed service left behind: only
// this node's (named after its WORKSPACE_DIR), and never one a running process still uses.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { removeLeftoverResumeDirs } from '../../src/agent/resume-dirs.js';
import { projectFolder } from '../../src/agent/transcripts.js';
import { makeTempDir } from '../helpers/temp-dirs.js';

const running: Array<{ kill(): void }> = [];
afterEach(() => {
  for (const child of running.splice(0)) child.kill();
});

/** A folder as the SDK makes it: `projects/<project folder of the chat's working directory>/<session>.jsonl`. */
function resumeDir(tmpDir: string, name: string, cwd: string): string {
  const dir = path.join(tmpDir, `claude-resume-${name}`);
  fs.mkdirSync(path.join(dir, 'projects', projectFolder(cwd)), { recursive: true });
  fs.writeFileSync(path.join(dir, 'projects', projectFolder(cwd), 'session.jsonl'), '{"type":"user"}\n');
  return dir;
}

it("removes the resume folders of this node's chats that no process uses, and nothing else", async () => {
  const tmpDir = makeTempDir();
  const workspaceDir = path.join(makeTempDir(), 'workspaces');
  const leftover = resumeDir(tmpDir, 'a', path.join(workspaceDir, randomUUID()));
  const inUse = resumeDir(tmpDir, 'b', path.join(workspaceDir, randomUUID()));
  // Another node's WORKSPACE_DIR whose name begins with this one's.
  const otherNode = resumeDir(tmpDir, 'c', path.join(`${workspaceDir}-2`, randomUUID()));
  const unrelated = path.join(tmpDir, 'claude-other');
  fs.mkdirSync(unrelated);

  const agent = spawn('sleep', ['30'], { env: { PATH: process.env.PATH, CLAUDE_CONFIG_DIR: inUse }, stdio: 'ignore' });
  running.push(agent);
  await new Promise((resolve) => agent.once('spawn', resolve));

  expect(await removeLeftoverResumeDirs(workspaceDir, tmpDir)).toEqual([leftover]);
  expect(fs.existsSync(leftover)).toBe(false);
  for (const kept of [inUse, otherNode, unrelated]) expect(fs.existsSync(kept)).toBe(true);
});
