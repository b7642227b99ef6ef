// Several service processes (`node dist/server.js`) forming one cluster: one Postgres database, one Redis key prefix,
// each node with its own NODE_ID, workspace and agent home. The multi-node end-to-end tests use it.
import fs from 'node:fs/promises';
import path from 'node:path';
import { chatAgentHome } from '../../src/agent/agent-home.js';
import { findAgentProcesses } from '../../src/agent/crash-recovery.js';
import { findProcessesWithEnv } from '../../src/agent/process-scan.js';
import { openTestRedis, TEST_REDIS_URL } from './cluster-redis.js';
import { startServiceProcess, type ServiceProcess } from './service-process.js';
import { createTestDatabase, type TestDatabase } from './stores.js';
import { makeTempDir } from './temp-dirs.js';

export interface ClusterNode {
  nodeId: string;
  dir: string;
  agentHome: string;
  process: ServiceProcess;
  url: string;
  wsUrl: string;
}

export interface TestCluster {
  nodes: ClusterNode[];
  database: TestDatabase;
  redisPrefix: string;
  /** Starts node `index` again (after it was stopped or killed), with the same name and folders. */
  restart(index: number): Promise<ClusterNode>;
  /** Agent CLIs of a chat on every node (processes whose parent is not one of them: tools are not counted). */
  agentProcesses(chatId: string): Promise<number[]>;
  /** Every agent process of every node, tools included. */
  allAgentProcesses(): Promise<number[]>;
  /** Stops every node (SIGTERM, then SIGKILL), drops the database and the Redis keys. */
  close(): Promise<void>;
}

const parentOf = async (pid: number): Promise<number | undefined> => {
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  // pid (comm) state ppid ...: comm may hold spaces, so read after its closing parenthesis.
  const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  return Number.isInteger(ppid) ? ppid : undefined;
};

/** `logDir`: each node's output goes to `<logDir>/<node id>.log` too (every run of the node appended). */
export async function startCluster(names: string[], env: Record<string, string>, { logDir }: { logDir?: string } = {}): Promise<TestCluster> {
  const database = await createTestDatabase('postgres');
  const redisPrefix = `test-cluster-${Math.random().toString(36).slice(2, 10)}:`;
  const dirs = names.map(() => makeTempDir('agent-chat-node-'));
  const envOf = (i: number) => ({
    DATABASE_URL: database.url,
    REDIS_URL: TEST_REDIS_URL,
    REDIS_KEY_PREFIX: redisPrefix,
    NODE_ID: names[i]!,
    WORKSPACE_DIR: path.join(dirs[i]!, 'workspaces'),
    AGENT_HOME_DIR: path.join(dirs[i]!, 'agent-home'),
    AGENT_CONFINEMENT: 'off',
    PERMISSION_MODE: 'bypassPermissions',
    STREAM_CHECKPOINT_MS: '100',
    LOG_LEVEL: 'warn',
    ...env,
  });
  const start = async (i: number): Promise<ClusterNode> => {
    const process = await startServiceProcess(envOf(i), logDir ? { logFile: path.join(logDir, `${names[i]!}.log`) } : {});
    return { nodeId: names[i]!, dir: dirs[i]!, agentHome: envOf(i).AGENT_HOME_DIR, process, url: process.url, wsUrl: process.wsUrl };
  };
  // One after another: the first creates the schema (migrations), the others find it.
  const nodes: ClusterNode[] = [];
  for (let i = 0; i < names.length; i++) nodes.push(await start(i));
  const homes = () => nodes.map((n) => n.agentHome);
  const roots = async (pids: number[]) => {
    const set = new Set(pids);
    const out: number[] = [];
    for (const pid of pids) if (!set.has((await parentOf(pid)) ?? -1)) out.push(pid);
    return out;
  };
  return {
    nodes,
    database,
    redisPrefix,
    restart: async (i) => (nodes[i] = await start(i)),
    agentProcesses: async (chatId) => {
      // HOME is the chat's home whatever CLAUDE_CONFIG_DIR is (an agent resuming from the database store runs with
      // the SDK's temporary one): see findAgentProcesses.
      const pids = (await Promise.all(homes().map((h) => findProcessesWithEnv(`HOME=${chatAgentHome(h, chatId).home}`)))).flat();
      return roots([...new Set(pids)]);
    },
    allAgentProcesses: async () => (await Promise.all(homes().map((h) => findAgentProcesses(h)))).flat(),
    close: async () => {
      await Promise.all(
        nodes.map(async ({ process }) => {
          if (process.child.exitCode !== null || process.child.signalCode !== null) return;
          process.child.kill('SIGTERM');
          const timer = setTimeout(() => process.child.kill('SIGKILL'), 15_000);
          await process.exited;
          clearTimeout(timer);
        }),
      );
      await database.drop();
      // Closing removes every key under the prefix.
      await (await openTestRedis(redisPrefix)).close();
    },
  };
}
