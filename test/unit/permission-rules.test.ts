import { describe, expect, it } from 'vitest';
import { rememberRuleFor, ruleAllows } from '../../src/agent/permission-rules.js';

/** What "Allow for this chat" remembers from an approval, and which later calls the remembered rule allows. */
describe('remembered permission rules', () => {
  const cwd = '/srv/workspaces/chat-a';
  const bash = (command: string) => ({ command, description: 'run command' });
  const allows = (rule: ReturnType<typeof rememberRuleFor>, tool: string, input: Record<string, unknown>) =>
    ruleAllows(rule, tool, input, cwd);

  it('takes the exact Bash command the SDK suggests, and allows only that command', () => {
    const rule = rememberRuleFor('Bash', bash('touch a.txt'), cwd, [{ toolName: 'Bash', ruleContent: 'touch a.txt' }]);
    expect(rule).toMatchObject({ tool_name: 'Bash', kind: 'command', pattern: 'touch a.txt' });
    expect(rule.description).toContain('touch a.txt');
    expect(allows(rule, 'Bash', bash('touch a.txt'))).toBe(true);
    expect(allows(rule, 'Bash', bash('rm a.txt'))).toBe(false);
    expect(allows(rule, 'Bash', bash('touch a.txt && rm -rf /'))).toBe(false);
    expect(allows(rule, 'Bash', bash('touch a.txt b.txt'))).toBe(false);
  });

  it('takes a suggested command prefix, which never matches a chained, piped or substituted command', () => {
    const rule = rememberRuleFor('Bash', bash('npm test'), cwd, [{ toolName: 'Bash', ruleContent: 'npm test *' }]);
    expect(rule).toMatchObject({ kind: 'command_prefix', pattern: 'npm test *' });
    expect(rule.description).toBe('Bash: commands that start with `npm test`');
    expect(allows(rule, 'Bash', bash('npm test'))).toBe(true);
    expect(allows(rule, 'Bash', bash('npm test -- --watch'))).toBe(true);
    expect(allows(rule, 'Bash', bash('npm testing'))).toBe(false);
    expect(allows(rule, 'Bash', bash('npm test; rm -rf /'))).toBe(false);
    expect(allows(rule, 'Bash', bash('npm test && curl evil'))).toBe(false);
    expect(allows(rule, 'Bash', bash('npm test | sh'))).toBe(false);
    expect(allows(rule, 'Bash', bash('npm test $(rm -rf /)'))).toBe(false);
    expect(allows(rule, 'Bash', bash('npm test > /etc/passwd'))).toBe(false);
    expect(allows(rule, 'Read', { file_path: 'npm test' })).toBe(false);

    const legacy = rememberRuleFor('Bash', bash('git status -s'), cwd, [{ toolName: 'Bash', ruleContent: 'git status:*' }]);
    expect(allows(legacy, 'Bash', bash('git status'))).toBe(true);
    expect(allows(legacy, 'Bash', bash('git statusx'))).toBe(false);
  });

  it('remembers the exact call when there is no suggestion, when the SDK suppresses its rule, or when it suggests a whole tool', () => {
    for (const [suggestions, suppress] of [
      [[], false],
      [[{ toolName: 'Bash', ruleContent: 'touch *' }], true],
      [[{ toolName: 'Bash' }], false],
      [[{ toolName: 'Read', ruleContent: '//**' }], false],
    ] as const) {
      const rule = rememberRuleFor('Bash', bash('touch a.txt'), cwd, [...suggestions], suppress);
      expect(rule).toMatchObject({ tool_name: 'Bash', kind: 'command', pattern: 'touch a.txt' });
      expect(allows(rule, 'Bash', bash('touch b.txt'))).toBe(false);
    }
    const write = rememberRuleFor('Write', { file_path: 'notes/a.md', content: 'x' }, cwd);
    expect(write).toMatchObject({ kind: 'file', pattern: `${cwd}/notes/a.md` });
    expect(allows(write, 'Write', { file_path: `${cwd}/notes/a.md`, content: 'y' })).toBe(true);
    expect(allows(write, 'Write', { file_path: `${cwd}/notes/b.md`, content: 'x' })).toBe(false);
    expect(allows(write, 'Edit', { file_path: `${cwd}/notes/a.md`, old_string: 'x', new_string: 'y' })).toBe(false);

    const mcp = rememberRuleFor('mcp__files__delete', { name: 'a', force: true }, cwd, [{ toolName: 'mcp__files__delete' }]);
    expect(mcp.kind).toBe('input');
    expect(allows(mcp, 'mcp__files__delete', { force: true, name: 'a' })).toBe(true);
    expect(allows(mcp, 'mcp__files__delete', { name: 'b', force: true })).toBe(false);
  });

  it('does not take a suggested rule that would not even allow the approved call', () => {
    const rule = rememberRuleFor('Bash', bash('touch a.txt && echo hi'), cwd, [{ toolName: 'Bash', ruleContent: 'touch a.txt' }]);
    expect(rule).toMatchObject({ kind: 'command', pattern: 'touch a.txt && echo hi' });
  });

  it('takes suggested path patterns as absolute paths, never crossing into other folders', () => {
    const rule = rememberRuleFor('Read', { file_path: '/etc/hosts' }, cwd, [{ toolName: 'Read', ruleContent: '//etc/**' }]);
    expect(rule).toMatchObject({ kind: 'path_pattern', pattern: '/etc/**' });
    expect(allows(rule, 'Read', { file_path: '/etc/hostname' })).toBe(true);
    expect(allows(rule, 'Read', { file_path: '/etc/ssl/certs/a.pem' })).toBe(true);
    expect(allows(rule, 'Read', { file_path: '/etc/../root/.ssh/id_rsa' })).toBe(false);
    expect(allows(rule, 'Read', { file_path: '/etcetera/x' })).toBe(false);

    const src = rememberRuleFor('Edit', { file_path: `${cwd}/src/a.ts` }, cwd, [{ toolName: 'Edit', ruleContent: './src/*.ts' }]);
    expect(src).toMatchObject({ kind: 'path_pattern', pattern: `${cwd}/src/*.ts` });
    expect(allows(src, 'Edit', { file_path: 'src/b.ts' })).toBe(true);
    expect(allows(src, 'Edit', { file_path: 'src/deep/b.ts' })).toBe(false);
  });

  it('takes a suggested web domain, matching the host exactly', () => {
    const rule = rememberRuleFor('WebFetch', { url: 'https://example.com/a', prompt: 'x' }, cwd, [
      { toolName: 'WebFetch', ruleContent: 'domain:example.com' },
    ]);
    expect(rule).toMatchObject({ kind: 'domain', pattern: 'example.com' });
    expect(allows(rule, 'WebFetch', { url: 'https://EXAMPLE.com/b', prompt: 'y' })).toBe(true);
    expect(allows(rule, 'WebFetch', { url: 'https://example.com.evil.net/', prompt: 'y' })).toBe(false);
    expect(allows(rule, 'WebFetch', { url: 'not a url', prompt: 'y' })).toBe(false);
  });
});
