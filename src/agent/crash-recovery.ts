import type { FastifyBaseLogger } from 'fastify';
import type { Config } from '../config/config.js';
import type { NodeRun } from '../cluster/node-identity.js';
import type { WorkScope } from '../store/queries.repository.js';
import type { Store } from '../store/store.js';
import path from 'node:path';
import { findProcessesWithEnv, killAll } from './process-scan.js';
import { removeLeftoverResumeDirs } from './resume-dirs.js';

/**
 * Start-up repairs after a process that did not shut down cleanly (kill -9, OOM, power loss), run before any
 * agent starts:
 * - agent CLIs it left behind (reparented to init, still running their tools) are killed, and the temporary
 *   transcript copies the agent SDK made for them are removed (resume-dirs.ts);
 * - answers it left `streaming` keep their checkpointed text and become `interrupted`;
 * - queries it left `running` become `error`, and tool calls without a result are marked interrupted.
 * `scope` says whose rows: alone on its database (`all`) every unfinished row is this node's; in a cluster only
 * those of its own name (`node`): another node's running answers are alive and not touched. A node that never
 * comes back is repaired by a live one through recoverNode.
 */
export async function recoverFromCrash(config: Config, store: Store, log: FastifyBaseLogger, scope: WorkScope): Promise<void> {
  const killed = await killOrphanAgents(config.AGENT_HOME_DIR);
  if (killed.length > 0) log.warn({ pids: killed }, 'killed agent processes left behind by a previous run');
  const resumeDirs = await removeLeftoverResumeDirs(config.WORKSPACE_DIR);
  if (resumeDirs.length > 0) log.warn({ folders: resumeDirs }, "removed agents' temporary transcript copies left by a previous run");
  const repaired = await repairUnfinishedWork(store, scope, 'the service stopped while the query ran');
  if (repaired.streams + repaired.queries + repaired.tools > 0) log.warn(repaired, 'marked work left unfinished by a previous run');
}

/**
 * The database half of crash recovery for one node run the cluster found dead (its process is gone, so it can
 * neither finish its answers nor mark them): its streaming answers become `interrupted` with the text
 * checkpointed so far, its running queries `error` with `reason`, its open tool calls interrupted. Exactly that
 * run's rows: the same NODE_ID restarted meanwhile keeps its new work. The caller publishes the terminal events.
 */
export function recoverNode(store: Store, run: NodeRun, reason = 'the node running the query stopped'): Promise<RepairedWork> {
  return repairUnfinishedWork(store, { kind: 'run', run }, reason);
}

export interface RepairedWork {
  streams: number;
  queries: number;
  tools: number;
}

async function repairUnfinishedWork(store: Store, scope: WorkScope, reason: string): Promise<RepairedWork> {
  // Messages and tool calls are found through their query's node, so the queries are marked last.
  const streams = await store.messages.interruptAbandonedStreams(scope);
  const tools = await store.toolUses.interruptOpenOf(scope);
  const queries = await store.queries.failAbandoned(reason, scope);
  return { streams, queries, tools };
}

/**
 * Our agents are recognised by their environment: every CLI and every tool process it starts carries
 * HOME and CLAUDE_CONFIG_DIR=<a folder under this service's AGENT_HOME_DIR> (its chat's, see agent-home.ts), which
 * nothing else on the machine has. Either is enough: an agent resuming a session from the database store runs with the
 * SDK's temporary CLAUDE_CONFIG_DIR (`<system temp>/claude-resume-*`), its HOME still the chat's. A confined agent
 * dies with the service (bubblewrap's --die-with-parent); this finds the unconfined ones.
 */
export async function findAgentProcesses(agentHomeDir: string): Promise<number[]> {
  const found = await Promise.all(
    ['HOME', 'CLAUDE_CONFIG_DIR'].map((name) => findProcessesWithEnv(`${name}=${agentHomeDir}${path.sep}`, { prefix: true })),
  );
  return [...new Set(found.flat())].sort((a, b) => a - b);
}

async function killOrphanAgents(agentHomeDir: string): Promise<number[]> {
  const pids = await findAgentProcesses(agentHomeDir);
  killAll(pids);
  return pids;
}
