import fs from 'node:fs';
import path from 'node:path';

/**
 * Where one chat's agent CLI keeps its own files: `<AGENT_HOME_DIR>/chats/<chat id>/` is its HOME, with the CLI's
 * config dir (session transcripts, shell snapshots) in `.claude/` and, for a confined agent, its temp folder (the
 * images it is sent, scratch files, the CLI's sockets) in `tmp/`, which it sees as `/tmp`. One folder per chat, so a
 * confined agent is given its own and sees no other chat's transcripts or images; deleting a chat deletes it.
 *
 * An unconfined agent uses the shared `<AGENT_HOME_DIR>/tmp` instead (as before homes were per chat): it can read
 * every chat's files anyway, and the CLI's Unix sockets in TMPDIR must stay under the kernel's 108-byte path limit,
 * which `<AGENT_HOME_DIR>/chats/<uuid>/tmp/<socket>` exceeds for an ordinary AGENT_HOME_DIR.
 */
export interface ChatAgentHome {
  home: string;
  /** CLAUDE_CONFIG_DIR: `projects/<cwd with dashes>/<session id>.jsonl` are the chat's transcripts. */
  configDir: string;
  /** A confined agent's temp folder (mounted at /tmp inside its namespace). */
  tmpDir: string;
}

export function chatAgentHome(agentHomeDir: string, chatId: string): ChatAgentHome {
  const home = path.join(agentHomeDir, 'chats', chatId);
  return { home, configDir: path.join(home, '.claude'), tmpDir: path.join(home, 'tmp') };
}

/** TMPDIR of unconfined agents, shared by all chats. */
export function sharedTmpDir(agentHomeDir: string): string {
  return path.join(agentHomeDir, 'tmp');
}

/** Creates the chat's home folders (the CLI expects them to exist). */
export function ensureChatAgentHome(home: ChatAgentHome): void {
  for (const dir of [home.configDir, home.tmpDir]) fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
}

/** Before homes were per chat, every agent shared `<AGENT_HOME_DIR>/.claude`: its transcripts are adopted on resume. */
export function sharedConfigDir(agentHomeDir: string): string {
  return path.join(agentHomeDir, '.claude');
}
