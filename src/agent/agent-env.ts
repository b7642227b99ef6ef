import type { Config } from '../config/config.js';
import type { ChatAgentHome } from './agent-home.js';

/**
 * The complete environment of the agent CLI. The SDK passes it as the child's whole environment, and whatever is
 * in it a Bash tool can read, so it is built from an allowlist: never the service's own secrets (database URL,
 * auth material, anything else the operator exported). What differs per chat (its home) is added by `chatAgentEnv`.
 */
export function buildAgentEnv(config: Config, isRoot: boolean): Record<string, string> {
  const env: Record<string, string> = {
    PATH: config.PATH,
    SHELL: '/bin/bash',
    LANG: config.LANG,
    // No telemetry, update checks or other calls the service did not ask for.
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    DISABLE_AUTOUPDATER: '1',
    // The CLI's defaults retry for minutes and wait over six minutes on a hung API: users see errors in seconds.
    CLAUDE_CODE_MAX_RETRIES: String(config.AGENT_MAX_RETRIES),
    API_TIMEOUT_MS: String(config.AGENT_API_TIMEOUT_MS),
  };
  if (config.ANTHROPIC_API_KEY) env.ANTHROPIC_API_KEY = config.ANTHROPIC_API_KEY;
  if (config.ANTHROPIC_AUTH_TOKEN) env.ANTHROPIC_AUTH_TOKEN = config.ANTHROPIC_AUTH_TOKEN;
  if (config.ANTHROPIC_BASE_URL) env.ANTHROPIC_BASE_URL = config.ANTHROPIC_BASE_URL;
  // As root the CLI refuses bypassPermissions unless told it runs in a sandbox; the operator chose that mode.
  if (isRoot && config.PERMISSION_MODE === 'bypassPermissions') env.IS_SANDBOX = '1';
  return env;
}

/** The environment of one chat's agent: the shared one plus the chat's own home and config dir, and its temp folder. */
export function chatAgentEnv(base: Record<string, string>, home: ChatAgentHome, tmpDir: string): Record<string, string> {
  return {
    ...base,
    HOME: home.home,
    // Transcripts and CLI state live under the service's data directory, not the operator's ~/.claude.
    CLAUDE_CONFIG_DIR: home.configDir,
    TMPDIR: tmpDir,
  };
}

/** Why the agent cannot answer at all, before any CLI is started; undefined when it can. */
export function missingCredentials(config: Config): string | undefined {
  if (config.ANTHROPIC_API_KEY || config.ANTHROPIC_AUTH_TOKEN) return undefined;
  return 'No model credentials: the service has no ANTHROPIC_API_KEY (or ANTHROPIC_AUTH_TOKEN). Set one and restart.';
}
