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
const projectFolder = (cwd: string) => cwd.replace(/[^a-zA-Z0-9]/g, '-');

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
