// What a stress run drives: a set of nodes serving the same chats. One in-process service is a set of one; a cluster
// is several `node dist/server.js` processes on one Postgres database and one Redis key prefix, which the run may
// kill (-9) and start again. The runner connects sockets to nodes, and counts agent processes under every node's
// agent home.
import fs from 'node:fs';
import path from 'node:path';
import { startFakeModel, type FakeModel } from '../../fake-model/server.js';
import type { AgentTestServer } from '../helpers/agent-server.js';
import { startCluster } from '../helpers/cluster-processes.js';

export interface StressNode {
  url: string;
  wsUrl: string;
  agentHome: string;
  /** False between a kill and the end of the restart. */
  up: boolean;
  /** When the node was last killed (ms since the epoch): agents started before are its orphans. */
  killedAt?: number;
}

export interface StressTarget {
  nodes: StressNode[];
  /** The fake model every node talks to (storms). */
  fake: FakeModel;
  /** kill -9 of node `index`, resolved once the process has exited. Only a cluster can lose a node. */
  kill?(index: number): Promise<void>;
  /** Starts node `index` again with the same name, database, Redis prefix and folders. */
  restart?(index: number): Promise<void>;
  /** Stops every node, then removes what the target made (database, Redis keys, folders). */
  close(): Promise<void>;
}

/** One in-process service as a set of one node. Closing it closes the service; its folder is the caller's. */
export function serviceTarget(server: AgentTestServer): StressTarget {
  return {
    nodes: [{ url: server.url, wsUrl: server.wsUrl, agentHome: server.config.AGENT_HOME_DIR, up: true }],
    fake: server.fake,
    close: () => server.close(),
  };
}

/**
 * `count` node processes on a new Postgres database (TEST_DATABASE_URL's server) and a fresh Redis key prefix, each
 * with its own agent home, against one fake model. close() stops them and drops the database, the keys and folders.
 */
export async function startClusterTarget(count: number, env: Record<string, string>, logDir?: string): Promise<StressTarget> {
  const fake = await startFakeModel();
  const names = Array.from({ length: count }, (_, i) => `node-${String.fromCharCode(97 + i)}`);
  const cluster = await startCluster(names, {
    ANTHROPIC_BASE_URL: fake.url,
    ANTHROPIC_API_KEY: 'test-key',
    SESSION_STORE: 'database',
    ...env,
  }, { logDir }).catch(async (err: unknown) => {
    await fake.close();
    throw err;
  });
  const nodes: StressNode[] = cluster.nodes.map((n) => ({ url: n.url, wsUrl: n.wsUrl, agentHome: n.agentHome, up: true }));
  return {
    nodes,
    fake,
    kill: async (index) => {
      const { process: child } = cluster.nodes[index]!;
      nodes[index]!.up = false;
      nodes[index]!.killedAt = Date.now();
      child.child.kill('SIGKILL');
      await child.exited;
    },
    restart: async (index) => {
      const n = await cluster.restart(index);
      // The same agent home; a new port.
      Object.assign(nodes[index]!, { url: n.url, wsUrl: n.wsUrl, up: true });
    },
    close: async () => {
      try {
        await cluster.close();
      } finally {
        await fake.close();
        for (const n of cluster.nodes) fs.rmSync(n.dir, { recursive: true, force: true });
      }
    },
  };
}

// ------------------------------------------------------------------------------------------------ agent processes

export interface AgentProcess {
  pid: number;
  /** Index of the node whose agent home it runs under. */
  node: number;
  chatId: string;
  /** Process start (ms since the epoch, 10 ms resolution). */
  startedAt: number;
}

const bootTimeMs = (): number => {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n').find((l) => l.startsWith('btime '));
  return Number(line?.split(' ')[1] ?? 0) * 1000;
};
/** USER_HZ: 100 on every Linux the service supports. */
const TICKS_PER_SECOND = 100;

/**
 * Agent CLI processes (not their tools, not the bubblewrap around a confined one) under any of `agentHomes`, with
 * the chat each runs for: its HOME is `<agent home>/chats/<chat id>` (src/agent/agent-home.ts); one resuming from
 * the database store has the SDK's temporary config dir, its HOME still the chat's.
 */
export function agentProcesses(agentHomes: string[]): AgentProcess[] {
  const boot = bootTimeMs();
  const found: AgentProcess[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (!(cmdline.split('\0')[0] ?? '').includes('claude-agent-sdk-linux')) continue;
      const environ = fs.readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0');
      const value = (name: string) => environ.find((e) => e.startsWith(`${name}=`))?.slice(name.length + 1) ?? '';
      const under = (dir: string) => agentHomes.findIndex((h) => dir.startsWith(`${h}${path.sep}`));
      let home = value('HOME');
      let node = under(home);
      if (node < 0) {
        home = value('CLAUDE_CONFIG_DIR');
        node = under(home);
      }
      if (node < 0) continue;
      const rest = path.relative(agentHomes[node]!, home).split(path.sep);
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid ... starttime is field 22; comm may hold spaces.
      const ticks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
      found.push({ pid: Number(entry), node, chatId: rest[0] === 'chats' ? (rest[1] ?? '?') : '?', startedAt: boot + (ticks * 1000) / TICKS_PER_SECOND });
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return found;
}
