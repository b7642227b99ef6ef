import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Options, SpawnedProcess } from '@anthropic-ai/claude-agent-sdk';
import { buildAgentEnv } from '../../src/agent/agent-env.js';
import { agentPriority, type AgentPriority } from '../../src/agent/agent-priority.js';
import { loadConfig, type Config } from '../../src/config/config.js';

/**
 * The agent configuration of the benchmark's baselines (the bare SDK worker and the minimal relay): the options
 * src/agent/sdk-connection.ts passes and the SAME CLI environment (src/agent/agent-env.ts), so the difference left
 * between a baseline and the service is the service itself. Not copied: the service's own process spawner
 * (process groups, so tools die with their agent) and its canUseTool hook (never called in bypassPermissions mode):
 * they belong to the service, so their cost counts as the service's. What decides how the CPU is shared is copied:
 * each CLI leads a session of its own, as the service's do (on a kernel with autogroups the CPU is shared between
 * sessions first), at the service's CPU priority (AGENT_NICE, `agentNice` here: the service's setting, its default
 * when not given, applied to the process and its session's autogroup as agent-priority.ts does). So on every side
 * the agents and the Node process in front of them compete for the cores the same way.
 */
export class BaselineAgents {
  readonly config: Config;
  private readonly priority: AgentPriority | undefined;

  constructor(fakeUrl: string, private readonly dataDir: string, agentNice?: string) {
    this.config = loadConfig({
      ...(agentNice !== undefined ? { AGENT_NICE: agentNice } : {}),
      DATABASE_URL: 'sqlite::memory:',
      WORKSPACE_DIR: path.join(dataDir, 'workspaces'),
      AGENT_HOME_DIR: path.join(dataDir, 'agent-home'),
      ANTHROPIC_BASE_URL: fakeUrl,
      ANTHROPIC_API_KEY: 'bench-key-for-the-fake-model',
      PERMISSION_MODE: 'bypassPermissions',
      AGENT_MAX_RETRIES: '0',
      PATH: process.env.PATH,
    });
    this.priority = agentPriority(this.config.AGENT_NICE);
    // The service creates these at start-up (app.ts); the CLI needs its TMPDIR to exist.
    for (const dir of [this.config.WORKSPACE_DIR, this.config.AGENT_HOME_DIR, path.join(this.config.AGENT_HOME_DIR, 'tmp')]) {
      fs.mkdirSync(dir, { recursive: true });
    }
  }

  optionsFor(sid: string): Options {
    const cwd = path.join(this.dataDir, 'workspaces', sid);
    fs.mkdirSync(cwd, { recursive: true });
    const config = this.config;
    return {
      cwd,
      env: buildAgentEnv(config, process.getuid?.() === 0),
      systemPrompt: config.SYSTEM_PROMPT,
      maxTurns: config.MAX_TURNS,
      allowedTools: [...config.ALLOWED_TOOLS],
      permissionMode: config.PERMISSION_MODE,
      allowDangerouslySkipPermissions: config.PERMISSION_MODE === 'bypassPermissions',
      settingSources: [],
      includePartialMessages: true,
      spawnClaudeCodeProcess: startLikeTheService(this.priority),
    };
  }
}

/** The SDK's own way of starting the CLI (three pipes), in a session of its own and at `priority`, as the service does. */
function startLikeTheService(priority: AgentPriority | undefined): NonNullable<Options['spawnClaudeCodeProcess']> {
  return (options) => {
    const { command, args } = priority ? priority.command(options.command, options.args) : options;
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env,
      signal: options.signal,
      stdio: ['pipe', 'pipe', 'pipe'],
      windowsHide: true,
      detached: true,
    });
    if (priority && child.pid !== undefined) priority.session(child.pid);
    child.stderr.resume(); // read, so a chatty CLI never blocks on a full pipe
    return child as unknown as SpawnedProcess;
  };
}
