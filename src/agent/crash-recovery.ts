import type { FastifyBaseLogger } from 'fastify';
import type { Config } from '../config/config.js';
import type { Store } from '../store/store.js';
import { agentConfigDir } from './agent-env.js';
import { findProcessesWithEnv, killAll } from './process-scan.js';

/**
 * Start-up repairs after a process that did not shut down cleanly (kill -9, OOM, power loss), run before any
 * agent starts:
 * - agent CLIs it left behind (reparented to init, still running their tools) are killed;
 * - answers it left `streaming` keep their checkpointed text and become `interrupted`;
 * - queries it left `running` become `error`, and tool calls without a result are marked interrupted.
 */
export async function recoverFromCrash(config: Config, store: Store, log: FastifyBaseLogger): Promise<void> {
  const killed = await killOrphanAgents(agentConfigDir(config));
  if (killed.length > 0) log.warn({ pids: killed }, 'killed agent processes left behind by a previous run');
  const streams = await store.messages.interruptAbandonedStreams();
  const queries = await store.queries.failAbandoned('the service stopped while the query ran');
  const tools = await store.toolUses.interruptOpen();
  if (streams + queries + tools > 0) log.warn({ streams, queries, tools }, 'marked work left unfinished by a previous run');
}

/**
 * Our agents are recognised by their environment: every CLI and every tool process it starts carries
 * CLAUDE_CONFIG_DIR=<this service's agent config dir>, which nothing else on the machine has.
 */
export function findAgentProcesses(configDir: string): Promise<number[]> {
  return findProcessesWithEnv(`CLAUDE_CONFIG_DIR=${configDir}`);
}

async function killOrphanAgents(configDir: string): Promise<number[]> {
  const pids = await findAgentProcesses(configDir);
  killAll(pids);
  return pids;
}
