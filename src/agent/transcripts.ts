import fs from 'node:fs/promises';
import path from 'node:path';

/**
 * Whether the CLI still has a session's transcript (`<config>/projects/<cwd with dashes>/<id>.jsonl`). Without
 * it, `resume` cannot restore the model's context and the chat must start a new session. The project folder
 * name is the CLI's encoding of the working directory; if that encoding ever changes, every project folder is
 * searched, so the check errs towards "exists" rather than dropping context.
 *
 * `legacyConfigDir` is the config dir all chats shared before each got its own: a transcript found only there is
 * moved into the chat's own config dir (same relative path), so chats started by an older version still resume.
 */
export async function transcriptExists(
  configDir: string,
  cwd: string,
  sessionId: string,
  legacyConfigDir?: string,
): Promise<boolean> {
  if (await findTranscript(configDir, cwd, sessionId)) return true;
  if (!legacyConfigDir) return false;
  const legacy = await findTranscript(legacyConfigDir, cwd, sessionId);
  if (!legacy) return false;
  const target = path.join(configDir, path.relative(legacyConfigDir, legacy));
  await fs.mkdir(path.dirname(target), { recursive: true });
  await fs.rename(legacy, target);
  return true;
}

/** The CLI's name for a working directory's project folder. */
export const projectFolder = (cwd: string) => cwd.replace(/[^a-zA-Z0-9]/g, '-');

async function findTranscript(configDir: string, cwd: string, sessionId: string): Promise<string | undefined> {
  const projects = path.join(configDir, 'projects');
  const file = `${sessionId}.jsonl`;
  const expected = path.join(projects, projectFolder(cwd), file);
  if (await exists(expected)) return expected;
  const folders = await fs.readdir(projects).catch(() => [] as string[]);
  for (const folder of folders) if (await exists(path.join(projects, folder, file))) return path.join(projects, folder, file);
  return undefined;
}

const exists = (file: string) =>
  fs.access(file).then(
    () => true,
    () => false,
  );

/**
 * Copies a session's transcript from one chat's agent (config dir and working directory) to another's, under the
 * project folder of the target's working directory, so the target's agent can resume (fork) it. False when the
 * source has no such transcript (the fork's agent then starts a new session, as after a lost transcript).
 */
export async function copyTranscript(
  from: { configDir: string; cwd: string },
  to: { configDir: string; cwd: string },
  sessionId: string,
  legacyConfigDir?: string,
): Promise<boolean> {
  const source =
    (await findTranscript(from.configDir, from.cwd, sessionId)) ??
    (legacyConfigDir ? await findTranscript(legacyConfigDir, from.cwd, sessionId) : undefined);
  if (!source) return false;
  const target = path.join(to.configDir, 'projects', projectFolder(to.cwd), `${sessionId}.jsonl`);
  await fs.mkdir(path.dirname(target), { recursive: true, mode: 0o700 });
  await fs.copyFile(source, target);
  return true;
}

/** A session's transcript files read back as lines: the main transcript and each subagent's (by SDK subpath). */
export interface LocalTranscript {
  main: Array<{ type: string; [key: string]: unknown }>;
  subagents: Array<{ subpath: string; entries: Array<{ type: string; [key: string]: unknown }> }>;
}

/**
 * The session's transcript as the CLI left it in `configDir` (or, for chats started by an older version, the shared
 * `legacyConfigDir`), for copying into the database; undefined when there is none. Subagent transcripts
 * (`<session id>/subagents/**.jsonl`) come with it, each followed by its sidecar as an `agent_metadata` line, the way
 * the agent SDK itself mirrors them. A line that is not JSON (a write cut off by a crash) is left out.
 */
export async function readLocalTranscript(
  configDir: string,
  cwd: string,
  sessionId: string,
  legacyConfigDir?: string,
): Promise<LocalTranscript | undefined> {
  const file =
    (await findTranscript(configDir, cwd, sessionId)) ??
    (legacyConfigDir ? await findTranscript(legacyConfigDir, cwd, sessionId) : undefined);
  if (!file) return undefined;
  const subagentRoot = path.join(path.dirname(file), sessionId);
  const names = (await fs.readdir(path.join(subagentRoot, 'subagents'), { recursive: true }).catch(() => [] as string[])).sort();
  const subagents: LocalTranscript['subagents'] = [];
  for (const name of names.filter((n) => n.endsWith('.jsonl'))) {
    const subagentFile = path.join(subagentRoot, 'subagents', name);
    const entries = await readLines(subagentFile);
    const meta = await fs.readFile(subagentFile.replace(/\.jsonl$/, '.meta.json'), 'utf8').then(
      (text) => JSON.parse(text) as Record<string, unknown>,
      () => undefined,
    );
    if (meta) entries.push({ ...meta, type: 'agent_metadata' });
    subagents.push({ subpath: path.join('subagents', name).replace(/\.jsonl$/, '').split(path.sep).join('/'), entries });
  }
  return { main: await readLines(file), subagents };
}

async function readLines(file: string): Promise<Array<{ type: string; [key: string]: unknown }>> {
  const lines = (await fs.readFile(file, 'utf8')).split('\n');
  return lines.flatMap((line) => {
    if (line.trim().length === 0) return [];
    try {
      const entry = JSON.parse(line) as unknown;
      return entry !== null && typeof entry === 'object' && typeof (entry as { type?: unknown }).type === 'string'
        ? [entry as { type: string }]
        : [];
    } catch {
      return [];
    }
  });
}
