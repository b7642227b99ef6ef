import fs from 'node:fs/promises';
import path from 'node:path';

/**
 * Whether the CLI still has a session's transcript (`<config>/projects/<cwd with dashes>/<id>.jsonl`). Without
 * it, `resume` cannot restore the model's context and the chat must start a new session. The project folder
 * name is the CLI's encoding of the working directory; if that encoding ever changes, every project folder is
 * searched, so the check errs towards "exists" rather than dropping context.
 */
export async function transcriptExists(configDir: string, cwd: string, sessionId: string): Promise<boolean> {
  const projects = path.join(configDir, 'projects');
  const file = `${sessionId}.jsonl`;
  if (await exists(path.join(projects, cwd.replace(/[^a-zA-Z0-9]/g, '-'), file))) return true;
  const folders = await fs.readdir(projects).catch(() => [] as string[]);
  for (const folder of folders) if (await exists(path.join(projects, folder, file))) return true;
  return false;
}

const exists = (file: string) =>
  fs.access(file).then(
    () => true,
    () => false,
  );
