import path from 'node:path';
import type { PermissionRuleKind, RememberRule } from '../protocol/chat.js';

/**
 * What "Allow for this chat" (`remember: true`) remembers, and how a remembered rule matches later tool calls.
 *
 * A remembered approval covers exactly what the user approved: the tool, plus the rule the SDK suggests for it in
 * canUseTool (a Bash command or command prefix, a path pattern, a web domain), or, without a suggestion this service
 * can check itself, that exact command, file or input. Never a whole tool. The rules are the service's own (stored
 * per chat, checked in our canUseTool before anyone is asked): the CLI's in-process memory dies with its process and
 * is never handed an update. When in doubt a rule does not match, so the user is asked again.
 */

/** An `allow` rule the SDK suggested for this call (its PermissionUpdate `addRules`, reduced by sdk-connection.ts). */
export interface SuggestedRule {
  toolName: string;
  ruleContent?: string;
}

/** Tools whose input names one file (`file_path`, or `notebook_path` for NotebookEdit). */
const FILE_TOOLS = new Set(['Read', 'Write', 'Edit', 'MultiEdit', 'NotebookEdit']);
/** Tools whose SDK rules are path patterns (gitignore-like: `//abs/**`, `/from-project-root/**`, `./rel/**`). */
const PATH_RULE_TOOLS = new Set([...FILE_TOOLS, 'Glob', 'Grep']);

/** Shell syntax that chains, pipes, redirects or substitutes: a prefix rule never matches a command using it. */
const SHELL_OPERATORS = /[;&|`$<>(){}\n\r\\]/;

/**
 * The rule that remembering this approval would store. `suggestions` are the SDK's; `suppress` is its
 * `suppressAlwaysAllowRule` (its rule would grant more than this call). A suggested rule is taken only if this
 * service can check it and it allows the approved call itself; otherwise the exact call is remembered.
 */
export function rememberRuleFor(
  toolName: string,
  input: Record<string, unknown>,
  cwd: string,
  suggestions: SuggestedRule[] = [],
  suppress = false,
): RememberRule {
  if (!suppress) {
    for (const suggestion of suggestions) {
      if (suggestion.toolName !== toolName || !suggestion.ruleContent) continue;
      const rule = fromSuggestion(toolName, suggestion.ruleContent, cwd);
      if (rule && ruleAllows(rule, toolName, input, cwd)) return rule;
    }
  }
  return exactRule(toolName, input, cwd);
}

/** Whether a remembered rule allows this tool call. */
export function ruleAllows(
  rule: Pick<RememberRule, 'tool_name' | 'kind' | 'pattern'>,
  toolName: string,
  input: Record<string, unknown>,
  cwd: string,
): boolean {
  if (rule.tool_name !== toolName) return false;
  switch (rule.kind) {
    case 'command': {
      const command = stringField(input, 'command');
      return command !== undefined && command === rule.pattern;
    }
    case 'command_prefix': {
      const command = stringField(input, 'command')?.trim();
      return command !== undefined && !SHELL_OPERATORS.test(command) && commandPatternRegex(rule.pattern).test(command);
    }
    case 'path_pattern': {
      const target = inputPath(toolName, input, cwd);
      return target !== undefined && globRegex(rule.pattern).test(target);
    }
    case 'file': {
      const target = inputPath(toolName, input, cwd);
      return target !== undefined && target === rule.pattern;
    }
    case 'domain': {
      const url = stringField(input, 'url');
      if (url === undefined) return false;
      try {
        return new URL(url).hostname.toLowerCase() === rule.pattern;
      } catch {
        return false;
      }
    }
    case 'input':
      return canonicalJson(input) === rule.pattern;
  }
}

/** A suggested SDK rule as one of ours, or undefined when its form is not one this service checks. */
function fromSuggestion(toolName: string, content: string, cwd: string): RememberRule | undefined {
  if (toolName === 'Bash') {
    const kind: PermissionRuleKind = content.includes('*') ? 'command_prefix' : 'command';
    return withDescription({ tool_name: toolName, kind, pattern: content });
  }
  if (PATH_RULE_TOOLS.has(toolName)) {
    const pattern = absolutePathPattern(content, cwd);
    return pattern === undefined ? undefined : withDescription({ tool_name: toolName, kind: 'path_pattern', pattern });
  }
  if (toolName === 'WebFetch' && content.startsWith('domain:')) {
    const host = content.slice('domain:'.length).trim().toLowerCase();
    return host && !host.includes('*') ? withDescription({ tool_name: toolName, kind: 'domain', pattern: host }) : undefined;
  }
  return undefined;
}

/** Exactly the approved call: the command, the file, or the whole input. */
function exactRule(toolName: string, input: Record<string, unknown>, cwd: string): RememberRule {
  const command = stringField(input, 'command');
  if (toolName === 'Bash' && command !== undefined) return withDescription({ tool_name: toolName, kind: 'command', pattern: command });
  const file = FILE_TOOLS.has(toolName) ? inputPath(toolName, input, cwd) : undefined;
  if (file !== undefined) return withDescription({ tool_name: toolName, kind: 'file', pattern: file });
  return withDescription({ tool_name: toolName, kind: 'input', pattern: canonicalJson(input) });
}

function withDescription(rule: Omit<RememberRule, 'description'>): RememberRule {
  return { ...rule, description: describeRule(rule) };
}

/** The rule in words, as the user sees it beside "Allow for this chat" and in the chat's list of rules. */
export function describeRule({ tool_name: tool, kind, pattern }: Omit<RememberRule, 'description'>): string {
  switch (kind) {
    case 'command':
      return `${tool}: exactly the command \`${pattern}\``;
    case 'command_prefix': {
      const prefix = simplePrefix(pattern);
      return prefix !== undefined
        ? `${tool}: commands that start with \`${prefix}\``
        : `${tool}: commands matching \`${pattern}\` (* stands for any text)`;
    }
    case 'path_pattern':
      return `${tool}: files matching ${pattern}`;
    case 'file':
      return `${tool}: the file ${pattern}`;
    case 'domain':
      return `${tool}: addresses on ${pattern}`;
    case 'input':
      return `${tool}: exactly this input ${pattern.length > 200 ? `${pattern.slice(0, 200)}…` : pattern}`;
  }
}

/** `npm test *` or `npm test:*` → `npm test`; undefined for a pattern with a wildcard elsewhere. */
function simplePrefix(pattern: string): string | undefined {
  const stem = pattern.endsWith(':*') ? pattern.slice(0, -2) : pattern.endsWith(' *') ? pattern.slice(0, -2) : undefined;
  return stem !== undefined && !stem.includes('*') ? stem.trim() : undefined;
}

/**
 * The SDK's Bash rule syntax: `prefix:*` (legacy) and a trailing ` *` match the prefix alone or followed by a space
 * and arguments (so `ls *` never matches `lsof`); any other `*` stands for any text.
 */
function commandPatternRegex(pattern: string): RegExp {
  const prefix = simplePrefix(pattern);
  if (prefix !== undefined) return new RegExp(`^${escapeRegex(prefix)}(?: .*)?$`, 's');
  return new RegExp(`^${pattern.split('*').map(escapeRegex).join('.*')}$`, 's');
}

/**
 * The SDK's path rule as an absolute pattern: `//abs/path` is absolute, `/p` and `./p` and `p` are relative to the
 * project root (the chat's workspace). `~` (the agent's home) is not remembered: undefined.
 */
function absolutePathPattern(content: string, cwd: string): string | undefined {
  if (content.startsWith('~')) return undefined;
  const absolute = content.startsWith('//') ? content.slice(1) : path.join(cwd, content.replace(/^\.?\//, ''));
  return path.posix.normalize(absolute);
}

/** `**` matches any run of characters (folders included), `*` and `?` stay within one path segment. */
function globRegex(pattern: string): RegExp {
  let source = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*' && pattern[i + 1] === '*') {
      // `/**` at the end also matches the folder itself; `**/` inside matches zero or more folders.
      if (pattern[i + 2] === '/') {
        source += '(?:.*/)?';
        i += 2;
      } else {
        source += '.*';
        i += 1;
      }
    } else if (c === '*') source += '[^/]*';
    else if (c === '?') source += '[^/]';
    else source += escapeRegex(c);
  }
  if (pattern.endsWith('/**')) source = source.replace(/\/\.\*$/, '(?:/.*)?');
  return new RegExp(`^${source}$`, 's');
}

/** The absolute, normalized file a tool call names (`file_path`, `notebook_path`, or Glob/Grep's `path`). */
function inputPath(toolName: string, input: Record<string, unknown>, cwd: string): string | undefined {
  const raw = stringField(input, 'file_path') ?? stringField(input, 'notebook_path') ?? (FILE_TOOLS.has(toolName) ? undefined : stringField(input, 'path'));
  return raw === undefined || raw === '' ? undefined : path.resolve(cwd, raw);
}

const stringField = (input: Record<string, unknown>, key: string): string | undefined =>
  typeof input[key] === 'string' ? input[key] : undefined;

const escapeRegex = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** JSON with object keys sorted at every level: the same input always gives the same text. */
export function canonicalJson(value: unknown): string {
  const sort = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sort);
    if (v !== null && typeof v === 'object') {
      return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sort((v as Record<string, unknown>)[k])]));
    }
    return v;
  };
  return JSON.stringify(sort(value)) ?? 'null';
}
