import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { chatAgentHome, sharedConfigDir } from '../../src/agent/agent-home.js';
import { transcriptExists } from '../../src/agent/transcripts.js';
import { makeTempDir } from '../helpers/test-server.js';

/** Finding a chat's transcript in its own agent home, and adopting one left in the home all chats used to share. */
describe('transcriptExists', () => {
  const root = makeTempDir('transcripts-');
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
  const cwd = path.join(root, 'workspaces', 'chat-1');
  const project = cwd.replace(/[^a-zA-Z0-9]/g, '-');
  const own = chatAgentHome(root, 'chat-1').configDir;

  it("finds a transcript in the chat's own config dir", async () => {
    fs.mkdirSync(path.join(own, 'projects', project), { recursive: true });
    fs.writeFileSync(path.join(own, 'projects', project, 'session-a.jsonl'), '{}\n');
    expect(await transcriptExists(own, cwd, 'session-a', sharedConfigDir(root))).toBe(true);
    expect(await transcriptExists(own, cwd, 'session-missing', sharedConfigDir(root))).toBe(false);
  });

  it("moves a transcript from the shared config dir of older versions into the chat's own", async () => {
    const legacy = path.join(sharedConfigDir(root), 'projects', project, 'session-b.jsonl');
    fs.mkdirSync(path.dirname(legacy), { recursive: true });
    fs.writeFileSync(legacy, '{"old":true}\n');
    expect(await transcriptExists(own, cwd, 'session-b', sharedConfigDir(root))).toBe(true);
    expect(fs.existsSync(legacy)).toBe(false);
    expect(fs.readFileSync(path.join(own, 'projects', project, 'session-b.jsonl'), 'utf8')).toBe('{"old":true}\n');
  });
});
