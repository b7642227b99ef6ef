import fs from 'node:fs/promises';
import path from 'node:path';

/**
 * Path rules of the file tools: Read, Write, Edit, MultiEdit, NotebookEdit, Glob and Grep may only name paths inside
 * the chat's workspace, symbolic links resolved (the CLI reads the images it was sent itself, not through a tool). The OS confinement (confinement.ts)
 * is what actually enforces this; the rule gives the model a clear "outside your workspace" answer instead of an
 * OS error, and still holds where the service runs unconfined. It runs as an SDK PreToolUse hook because the
 * read-only tools are pre-allowed, so the permission callback never sees them.
 */
export const GUARDED_TOOLS = ['Read', 'Write', 'Edit', 'MultiEdit', 'NotebookEdit', 'Glob', 'Grep'] as const;

/** The tool input fields that name a file or folder, per tool. Glob's `pattern` is checked up to its first wildcard. */
const PATH_FIELDS: Record<(typeof GUARDED_TOOLS)[number], string[]> = {
  Read: ['file_path'],
  Write: ['file_path'],
  Edit: ['file_path'],
  MultiEdit: ['file_path'],
  NotebookEdit: ['notebook_path'],
  Glob: ['path', 'pattern'],
  Grep: ['path'],
};

/**
 * Why the tool call must not run, or undefined when every path it names is inside `workspace` (the chat's
 * workspace, the tools' working directory).
 */
export async function outsideWorkspace(
  toolName: string,
  input: Record<string, unknown>,
  workspace: string,
): Promise<string | undefined> {
  const fields = PATH_FIELDS[toolName as keyof typeof PATH_FIELDS];
  if (!fields) return undefined;
  const root = await resolveReal(workspace);
  for (const field of fields) {
    const value = input[field];
    if (typeof value !== 'string' || value.length === 0) continue;
    const named = field === 'pattern' ? staticPrefix(value) : value;
    const target = await resolveReal(path.resolve(workspace, expandHome(named)));
    if (!isInside(target, root)) {
      return (
        `${value} is outside your workspace. You can only use files inside ${workspace} ` +
        '(relative paths are resolved there); other files on this machine are not available to you.'
      );
    }
  }
  return undefined;
}

/** `~` is the agent's home, which is not the workspace: kept as a path that resolves outside it. */
function expandHome(p: string): string {
  return p === '~' || p.startsWith('~/') ? `/nonexistent-home${p.slice(1)}` : p;
}

/** The part of a glob pattern before its first wildcard segment (`../other/**\/*.ts` → `../other`). */
function staticPrefix(pattern: string): string {
  const segments = pattern.split('/');
  const firstWild = segments.findIndex((s) => /[*?[\]{}]/.test(s));
  const fixed = firstWild === -1 ? segments : segments.slice(0, firstWild);
  const prefix = fixed.join('/');
  return prefix === '' ? (pattern.startsWith('/') ? '/' : '.') : prefix;
}

/**
 * The real path of `p`: symbolic links resolved for the part that exists (a file about to be written does not
 * exist yet, but the folder it goes into may be a link to elsewhere).
 */
async function resolveReal(p: string): Promise<string> {
  const absolute = path.resolve(p);
  let existing = absolute;
  const rest: string[] = [];
  for (;;) {
    try {
      return path.join(await fs.realpath(existing), ...rest);
    } catch {
      const parent = path.dirname(existing);
      if (parent === existing) return absolute;
      rest.unshift(path.basename(existing));
      existing = parent;
    }
  }
}

function isInside(target: string, root: string): boolean {
  const rel = path.relative(root, target);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel));
}
