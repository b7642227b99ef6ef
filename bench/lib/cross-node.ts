import path from 'node:path';
import { deleteRedisKeys } from '../../test/global-setup.js';
import { latencies } from './clock.js';
import { createDatabase } from './postgres.js';
import { api, ServiceProcess } from './service.js';
import { summarize, type Summary } from './stats.js';
import { mapLimit, round, sleep } from './util.js';
import { BenchSocket } from './ws-client.js';

/**
 * The cross-node path (several nodes on one Postgres and one Redis): what a socket on another node than the one
 * running the chat's agent pays per delta, against a socket on the agent's own node, in the same answers. A
 * single node without Redis streams the same load first, for what multi-node mode itself costs.
 */
export interface CrossNodeResult {
  chats: number;
  command: string;
  /** One node, SQLite, no Redis: a socket following each chat on the node that runs it. */
  single: Summary;
  /** Two nodes: the answers run on node A (their messages are sent there); a socket on A and one on B follow them. */
  sameNode: Summary;
  otherNode: Summary;
  failures: string[];
}

const TURN_TIMEOUT_MS = 120_000;

/**
 * `chats` chats on `sendTo`, each driven by a socket of its own there; every socket of `followers` follows all of
 * them. A warm-up answer starts each chat's agent, then all get `/stamp n ms` at once. Latencies per follower name.
 */
async function streamAndFollow(
  sendTo: ServiceProcess,
  followers: Record<string, ServiceProcess>,
  { chats, n, ms, skewMs }: { chats: number; n: number; ms: number; skewMs: number },
): Promise<{ samples: Record<string, number[]>; failures: string[] }> {
  const sockets: BenchSocket[] = [];
  const ids: string[] = [];
  try {
    const senders = await mapLimit(Array.from({ length: chats }), 10, async () => {
      const { id } = await api<{ id: string }>(sendTo.url, 'POST', '/api/chats', { title: 'bench: cross-node' });
      ids.push(id);
      const socket = await BenchSocket.connect(sendTo.wsUrl);
      sockets.push(socket);
      await socket.turn(id, '/stamp 3 0', TURN_TIMEOUT_MS);
      return { id, socket };
    });
    const watching = await Promise.all(
      Object.entries(followers).map(async ([name, node]) => {
        const socket = await BenchSocket.connect(node.wsUrl);
        sockets.push(socket);
        for (const { id } of senders) await socket.follow(id);
        return { name, socket };
      }),
    );
    await sleep(1_000);
    const settled = await Promise.allSettled(senders.map(({ id, socket }) => socket.turn(id, `/stamp ${n} ${ms}`, TURN_TIMEOUT_MS)));
    // The followers' last deltas may arrive a moment after the sender's terminal event.
    await sleep(300);
    const failures = settled.flatMap((s) => (s.status === 'rejected' ? [String((s.reason as Error).message)] : []));
    const samples: Record<string, number[]> = {};
    for (const { name, socket } of watching) {
      samples[name] = senders.flatMap(({ id }) => latencies(socket.arrivals(id), skewMs).map((v) => round(v, 3)));
      const expected = chats * n - failures.length * n;
      if (samples[name]!.length < expected) failures.push(`${name}: ${samples[name]!.length} of ${expected} deltas arrived`);
    }
    return { samples, failures };
  } finally {
    for (const socket of sockets) socket.close();
    await Promise.all(ids.map((id) => api(sendTo.url, 'DELETE', `/api/chats/${id}`).catch(() => undefined)));
  }
}

/** Runs the comparison; every node process and the database it made are gone when it returns. */
export async function crossNodePhase(opts: {
  tempRoot: string;
  fakeUrl: string;
  env: Record<string, string>;
  postgresAdminUrl: string;
  redisUrl: string;
  chats: number;
  n: number;
  ms: number;
  skewMs: number;
}): Promise<CrossNodeResult> {
  const { tempRoot, fakeUrl, env, chats, n, ms, skewMs } = opts;
  const single = await ServiceProcess.start({ dataDir: path.join(tempRoot, 'cross-node-single'), fakeUrl, env });
  let alone: Awaited<ReturnType<typeof streamAndFollow>>;
  try {
    alone = await streamAndFollow(single, { single }, { chats, n, ms, skewMs });
  } finally {
    await single.stop();
  }

  const dbName = `bench_cluster_${process.pid}_${Date.now()}`;
  const database = await createDatabase(opts.postgresAdminUrl, dbName);
  const clusterEnv = { ...env, DATABASE_URL: database.url, REDIS_URL: opts.redisUrl, REDIS_KEY_PREFIX: `${dbName}:` };
  const nodes: ServiceProcess[] = [];
  try {
    // One after the other: the first creates the schema.
    for (const name of ['bench-a', 'bench-b']) {
      nodes.push(await ServiceProcess.start({ dataDir: path.join(tempRoot, `cross-node-${name}`), fakeUrl, env: { ...clusterEnv, NODE_ID: name } }));
    }
    const [a, b] = nodes as [ServiceProcess, ServiceProcess];
    const both = await streamAndFollow(a, { same: a, other: b }, { chats, n, ms, skewMs });
    return {
      chats,
      command: `/stamp ${n} ${ms}`,
      single: summarize(alone.samples.single!),
      sameNode: summarize(both.samples.same!),
      otherNode: summarize(both.samples.other!),
      failures: [...alone.failures.map((f) => `single node: ${f}`), ...both.failures],
    };
  } finally {
    for (const node of nodes) await node.stop();
    await database.drop().catch(() => undefined);
    await deleteRedisKeys(opts.redisUrl, `${dbName}:`).catch(() => undefined);
  }
}
