import type { FastifyBaseLogger } from 'fastify';
import type { Config } from '../config/config.js';
import type { Store } from '../store/store.js';
import path from 'node:path';
import { findProcessesWithEnv, killAll } from './process-scan.js';

/**
 * Start-up repairs after a process that did not shut down cleanly (kill -9, OOM, power loss), run before any
 * agent starts:
 * - agent CLIs it left behind (reparented to init, still running their tools) are killed;
 * - answers it left `streaming` keep their checkpointed text and become `interrupted`;
 * - queries it left `running` become `error`, and tool calls without a result are marked interrupted.
 */
export async function recoverFromCrash(config: Config, store: Store, log: FastifyBaseLogger): Promise<void> {
  const killed = await killOrphanAgents(config.AGENT_HOME_DIR);
  if (killed.length > 0) log.warn({ pids: killed }, 'killed agent processes left behind by a previous run');
  const streams = await store.messages.interruptAbandonedStreams();
  const queries = await store.queries.failAbandoned('the service stopped while the query ran');
  const tools = await store.toolUses.interruptOpen();
  if (streams + queries + tools > 0) log.warn({ streams, queries, tools }, 'marked work left unfinished by a previous run');
}

/**
 * Our agents are recognised by their environment: every CLI and every tool process it starts carries
 * CLAUDE_CONFIG_DIR=<a folder under this service's AGENT_HOME_DIR> (its chat's, see agent-home.ts), which nothing
 * else on the machine has. A confined agent dies with the service (bubblewrap's --die-with-parent); this finds the
 * unconfined ones.
 */
export function findAgentProcesses(agentHomeDir: string): Promise<number[]> {
  return findProcessesWithEnv(`CLAUDE_CONFIG_DIR=${agentHomeDir}${path.sep}`, { prefix: true });
}

async function killOrphanAgents(agentHomeDir: string): Promise<number[]> {
  const pids = await findAgentProcesses(agentHomeDir);
  killAll(pids);
  return pids;
}
