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

async function findTranscript(configDir: string, cwd: string, sessionId: string): Promise<string | undefined> {
  const projects = path.join(configDir, 'projects');
  const file = `${sessionId}.jsonl`;
  const expected = path.join(projects, cwd.replace(/[^a-zA-Z0-9]/g, '-'), file);
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
