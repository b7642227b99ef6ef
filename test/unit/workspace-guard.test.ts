import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { outsideWorkspace } from '../../src/agent/workspace-guard.js';
import { makeTempDir } from '../helpers/test-server.js';

/** The file tools' path rules, on a real folder tree with real symbolic links. */
describe('outsideWorkspace', () => {
  let root: string;
  let workspace: string;
  beforeAll(() => {
    root = makeTempDir('workspace-guard-');
    workspace = path.join(root, 'workspaces', 'chat-a');
    fs.mkdirSync(path.join(workspace, 'src'), { recursive: true });
    fs.mkdirSync(path.join(root, 'workspaces', 'chat-b'), { recursive: true });
    fs.writeFileSync(path.join(root, 'workspaces', 'chat-b', 'secret.txt'), 'b');
    fs.symlinkSync(path.join(root, 'workspaces', 'chat-b', 'secret.txt'), path.join(workspace, 'link.txt'));
    fs.symlinkSync(path.join(root, 'workspaces', 'chat-b'), path.join(workspace, 'other'));
    fs.symlinkSync(path.join(workspace, 'src'), path.join(workspace, 'inner-link'));
  });
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  const denied = async (tool: string, input: Record<string, unknown>) => (await outsideWorkspace(tool, input, workspace)) !== undefined;

  it('allows paths inside the workspace, relative or absolute, existing or about to be written', async () => {
    expect(await denied('Read', { file_path: 'src/a.ts' })).toBe(false);
    expect(await denied('Write', { file_path: path.join(workspace, 'new/deep/file.txt') })).toBe(false);
    expect(await denied('Edit', { file_path: './src/../src/a.ts' })).toBe(false);
    expect(await denied('Read', { file_path: 'inner-link/a.ts' })).toBe(false);
    expect(await denied('Glob', { pattern: '**/*.ts' })).toBe(false);
    expect(await denied('Grep', { pattern: 'x' })).toBe(false);
    expect(await denied('Grep', { pattern: 'x', path: 'src' })).toBe(false);
  });

  it('refuses other folders, .. escapes, ~ and the host', async () => {
    expect(await denied('Read', { file_path: '../chat-b/secret.txt' })).toBe(true);
    expect(await denied('Read', { file_path: '/etc/shadow' })).toBe(true);
    expect(await denied('Read', { file_path: '~/.claude/projects/x.jsonl' })).toBe(true);
    expect(await denied('Write', { file_path: path.join(root, 'chat.db') })).toBe(true);
    expect(await denied('NotebookEdit', { notebook_path: '/tmp/n.ipynb' })).toBe(true);
    expect(await denied('MultiEdit', { file_path: '../../x' })).toBe(true);
    expect(await denied('Grep', { pattern: 'x', path: '/' })).toBe(true);
    expect(await denied('Glob', { pattern: '*', path: '..' })).toBe(true);
  });

  it('resolves symbolic links, including folders a new file would be written into', async () => {
    expect(await denied('Read', { file_path: 'link.txt' })).toBe(true);
    expect(await denied('Write', { file_path: 'other/new.txt' })).toBe(true);
    expect(await denied('Grep', { pattern: 'x', path: 'other' })).toBe(true);
  });

  it("checks a Glob pattern's fixed part: absolute and ../ patterns are refused", async () => {
    expect(await denied('Glob', { pattern: '/etc/**/*' })).toBe(true);
    expect(await denied('Glob', { pattern: '../chat-b/*' })).toBe(true);
    expect(await denied('Glob', { pattern: 'other/**' })).toBe(true);
    expect(await denied('Glob', { pattern: 'src/**/x?.ts' })).toBe(false);
  });

  it('tells the model plainly what happened', async () => {
    const why = await outsideWorkspace('Read', { file_path: '/etc/shadow' }, workspace);
    expect(why).toContain('/etc/shadow is outside your workspace');
    expect(why).toContain(workspace);
  });

  it('leaves other tools alone', async () => {
    expect(await denied('Bash', { command: 'cat /etc/shadow' })).toBe(false);
    expect(await denied('WebFetch', { url: 'file:///etc/shadow' })).toBe(false);
  });
});
