// Added latency of the cross-node path: per-delta latency (fake model's send stamp → WebSocket client) for a socket
// on the node running the agent, a socket on another node, and a single node without Redis, on one machine with a
// loopback Redis. Run: `npx tsx bench/cluster-latency.ts [chats=10] [deltas=100] [deltaMs=20]` (needs Postgres and
// Redis as for the tests: TEST_DATABASE_URL, TEST_REDIS_URL; and the compiled dist/, see npm start).
import fs from 'node:fs';
import path from 'node:path';
import { startFakeModel } from '../fake-model/server.js';
import type { ServerEvent } from '../src/protocol/ws.js';
import { startCluster } from '../test/helpers/cluster-processes.js';
import { startServiceProcess } from '../test/helpers/service-process.js';
import { makeTempDir } from '../test/helpers/temp-dirs.js';
import { TestClient } from '../test/helpers/ws-client.js';
import { parseStamps } from './lib/clock.js';
import { summarize } from './lib/stats.js';

const [chats = 10, deltas = 100, deltaMs = 20] = process.argv.slice(2).map(Number);

async function createChat(url: string): Promise<string> {
  const res = await fetch(`${url}/api/chats`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"title":"bench"}' });
  return ((await res.json()) as { id: string }).id;
}

/** Latencies (ms) of every delta each listener got, for `chats` answers running at once (sent by `sender`). */
async function measure(sender: string, listeners: Record<string, string>): Promise<Record<string, number[]>> {
  const ids = await Promise.all(Array.from({ length: chats }, () => createChat(sender.replace('ws://', 'http://').replace('/ws/chat', ''))));
  const out: Record<string, number[]> = {};
  const clients: TestClient[] = [];
  const recorders = await Promise.all(
    Object.entries(listeners).map(async ([name, wsUrl]) => {
      const client = await TestClient.connect(wsUrl);
      clients.push(client);
      out[name] = [];
      client.socket.on('message', (data) => {
        const recv = performance.timeOrigin + performance.now();
        const event = JSON.parse(data.toString()) as ServerEvent;
        if (event.type === 'text_delta') for (const sent of parseStamps(event.delta)) out[name]!.push(recv - sent);
      });
      for (const id of ids) client.send({ type: 'subscribe', chat_id: id });
      return client;
    }),
  );
  const senderClient = await TestClient.connect(sender);
  clients.push(senderClient);
  // A first message per chat starts its agent on the sender's node; the measured one runs on warm agents.
  await Promise.all(ids.map(async (id) => senderClient.waitForEnd(await senderClient.chat(id, 'warm up'), 120_000)));
  for (const name of Object.keys(out)) out[name] = [];
  await Promise.all(ids.map(async (id) => senderClient.waitForEnd(await senderClient.chat(id, `/stamp ${deltas} ${deltaMs}`), 120_000)));
  await new Promise((r) => setTimeout(r, 500));
  for (const client of [...clients, ...recorders]) await client.close();
  return out;
}

const line = (name: string, values: number[]) => {
  const s = summarize(values);
  return `${name.padEnd(34)} n=${String(values.length).padStart(5)}  p50=${s.p50.toFixed(2)} ms  p90=${s.p90.toFixed(2)} ms  p99=${s.p99.toFixed(2)} ms`;
};

const fake = await startFakeModel();
const env = { ANTHROPIC_BASE_URL: fake.url, ANTHROPIC_API_KEY: 'bench', LOG_LEVEL: 'warn' };
try {
  const dir = makeTempDir('agent-chat-bench-');
  const single = await startServiceProcess({
    ...env,
    DATABASE_URL: `sqlite:${path.join(dir, 'chat.db')}`,
    WORKSPACE_DIR: path.join(dir, 'workspaces'),
    AGENT_HOME_DIR: path.join(dir, 'agent-home'),
    PERMISSION_MODE: 'bypassPermissions',
    AGENT_CONFINEMENT: 'off',
  });
  const alone = await measure(single.wsUrl, { 'one node, no Redis': single.wsUrl });
  single.child.kill('SIGTERM');
  await single.exited;
  fs.rmSync(dir, { recursive: true, force: true });

  const cluster = await startCluster(['bench-a', 'bench-b'], { ...env, ...(process.env.BENCH_SESSION_STORE ? { SESSION_STORE: process.env.BENCH_SESSION_STORE } : {}) });
  try {
    const [a, b] = cluster.nodes;
    const both = await measure(a!.wsUrl, { 'cluster, socket on the agent node': a!.wsUrl, 'cluster, socket on another node': b!.wsUrl });
    console.log(`${chats} chats × /stamp ${deltas} ${deltaMs} at once, loopback Redis, Postgres`);
    console.log(line('one node, no Redis', alone['one node, no Redis']!));
    for (const [name, values] of Object.entries(both)) console.log(line(name, values));
  } finally {
    await cluster.close();
  }
} finally {
  await fake.close();
}
