import { randomUUID } from 'node:crypto';

/**
 * One run of one node: its configured name (NODE_ID, stable across restarts) and an id of this run (new at every
 * start). The rows of the work a node runs record both (queries.node_id, queries.node_run), so:
 * - a node starting repairs what earlier runs under its own name left unfinished (they are dead: a name runs once);
 * - a live node that finds another run dead (the cluster's node-loss detection) repairs exactly that run's rows,
 *   even when the same name has restarted meanwhile and runs new work.
 * As text (`member`) it is `<NODE_ID>:<run id>`; NODE_ID holds no ':' (see NODE_ID_PATTERN).
 */
export interface NodeRun {
  readonly nodeId: string;
  readonly runId: string;
}

export const newNodeRun = (nodeId: string): NodeRun => ({ nodeId, runId: randomUUID() });

export const memberOf = (run: NodeRun): string => `${run.nodeId}:${run.runId}`;

export function parseMember(member: string): NodeRun {
  const at = member.indexOf(':');
  if (at <= 0 || at === member.length - 1) throw new Error(`not a node member "<NODE_ID>:<run id>": ${member}`);
  return { nodeId: member.slice(0, at), runId: member.slice(at + 1) };
}
