import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeModel, type FakeModel } from '../../fake-model/server.js';
import type { ServerEvent } from '../../src/protocol/ws.js';
import { createChat } from '../helpers/agent-server.js';
import { redisAvailable } from '../helpers/cluster-redis.js';
import { startCluster, type TestCluster } from '../helpers/cluster-processes.js';
import { storeAvailable } from '../helpers/stores.js';
import { TestClient } from '../helpers/ws-client.js';

const seqOf = (e: ServerEvent) => (e as { seq?: number }).seq;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Two service processes on one Postgres and one Redis: any node serves any chat, one agent per chat in the cluster,
 * the same events with the same seqs on every node.
 */
describe.skipIf(!redisAvailable || !storeAvailable('postgres'))('two nodes (real processes, Postgres, Redis)', { timeout: 180_000 }, () => {
  let fake: FakeModel;
  let cluster: TestCluster;
  const clients: TestClient[] = [];
  const connect = async (url: string) => {
    const client = await TestClient.connect(url);
    clients.push(client);
    return client;
  };
  /** Highest number of agent CLIs seen for a chat at once, sampled while the tests run. */
  const mostAgents = new Map<string, number>();
  let sampler: NodeJS.Timeout | undefined;
  const watchAgents = (chatId: string) => mostAgents.set(chatId, mostAgents.get(chatId) ?? 0);

  beforeAll(async () => {
    fake = await startFakeModel();
    cluster = await startCluster(['node-a', 'node-b'], { ANTHROPIC_BASE_URL: fake.url, ANTHROPIC_API_KEY: 'test-key' });
    sampler = setInterval(() => {
      for (const chatId of mostAgents.keys()) {
        void cluster.agentProcesses(chatId).then((pids) => mostAgents.set(chatId, Math.max(mostAgents.get(chatId) ?? 0, pids.length)));
      }
    }, 200);
    // Two service processes start in about a second each alone, in tens of seconds on a loaded machine.
  }, 120_000);
  afterAll(async () => {
    clearInterval(sampler);
    // A node that died during the tests: its output says why.
    for (const n of cluster?.nodes ?? []) {
      if (n.process.child.exitCode !== null || n.process.child.signalCode !== null) console.error(`${n.nodeId} exited:\n${n.process.output()}`);
    }
    for (const client of clients) await client.close();
    await cluster?.close();
    await fake?.close();
    // Every node stopped its agents on the way out.
    expect(await cluster.allAgentProcesses()).toEqual([]);
  });
  const [a, b] = [0, 1];
  const node = (i: number) => cluster.nodes[i]!;

  it('a chat created on one node is listed on the other', async () => {
    const chatId = await createChat(node(a).url, 'made on a');
    const listed = (await (await fetch(`${node(b).url}/api/chats`)).json()) as { id: string; title: string }[];
    expect(listed.find((c) => c.id === chatId)?.title).toBe('made on a');
  });

  it('a message sent on B is streamed to sockets on A and B with the same seqs', async () => {
    const chatId = await createChat(node(a).url);
    watchAgents(chatId);
    const onA = await connect(node(a).wsUrl);
    onA.send({ type: 'subscribe', chat_id: chatId });
    await onA.waitFor((e) => e.type === 'processing_state');
    const onB = await connect(node(b).wsUrl);
    const queryId = await onB.chat(chatId, 'hello from b');
    const endB = await onB.waitForEnd(queryId);
    const endA = await onA.waitForEnd(queryId);
    expect(endB).toMatchObject({ type: 'result', success: true });
    expect(endA).toEqual(endB);
    expect(onA.streamedText(queryId)).toBe('Echo: hello from b');
    const seen = (c: TestClient) => c.queryEvents(queryId).map((e) => [e.type, seqOf(e)]);
    expect(seen(onA)).toEqual(seen(onB));
    const seqs = onA.queryEvents(queryId).map((e) => seqOf(e)!);
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
  });

  it('stop sent on B ends an answer running on A within 3 s', async () => {
    const chatId = await createChat(node(a).url);
    watchAgents(chatId);
    const onA = await connect(node(a).wsUrl);
    const queryId = await onA.chat(chatId, '/slow 200 50');
    await onA.waitFor((e) => e.type === 'text_delta' && 'query_id' in e && e.query_id === queryId);
    const onB = await connect(node(b).wsUrl);
    onB.send({ type: 'subscribe', chat_id: chatId });
    await onB.waitFor((e) => e.type === 'processing_state');
    const stoppedAt = Date.now();
    onB.send({ type: 'stop', chat_id: chatId });
    expect(await onB.waitForEnd(queryId, 10_000)).toMatchObject({ type: 'cancelled' });
    expect(Date.now() - stoppedAt).toBeLessThan(3_000);
    expect(await onA.waitForEnd(queryId)).toMatchObject({ type: 'cancelled' });
  });

  it('a socket that dropped on A gets exactly the missed events on B with last_seq', async () => {
    const chatId = await createChat(node(a).url);
    watchAgents(chatId);
    const witness = await connect(node(b).wsUrl); // sees everything
    witness.send({ type: 'subscribe', chat_id: chatId });
    await witness.waitFor((e) => e.type === 'processing_state');
    const dropped = await connect(node(a).wsUrl);
    const queryId = await dropped.chat(chatId, '/slow 100 20');
    await dropped.waitFor((e) => e.type === 'text_delta' && e.delta === 'chunk5 ');
    await dropped.close();
    const lastSeq = Math.max(...dropped.events.map((e) => seqOf(e) ?? 0));
    await sleep(500); // the answer goes on meanwhile
    const back = await connect(node(b).wsUrl);
    back.send({ type: 'subscribe', chat_id: chatId, last_seq: lastSeq });
    await back.waitForEnd(queryId);
    await witness.waitForEnd(queryId);
    expect(back.events.some((e) => e.type === 'history')).toBe(false);
    const after = (c: TestClient) => c.events.filter((e) => 'chat_id' in e && e.chat_id === chatId && (seqOf(e) ?? 0) > lastSeq).map((e) => JSON.stringify(e));
    expect(after(back)).toEqual(after(witness));
    // Together, the dropped socket and the replay have the whole answer, once.
    expect(dropped.streamedText(queryId) + back.streamedText(queryId)).toBe(witness.streamedText(queryId));
  });

  it('a chat has one agent process in the whole cluster at any time', async () => {
    const chatId = await createChat(node(b).url);
    watchAgents(chatId);
    const onA = await connect(node(a).wsUrl);
    const onB = await connect(node(b).wsUrl);
    // Messages from both nodes, one after another and at once.
    await onA.waitForEnd(await onA.chat(chatId, 'one'));
    await onB.waitForEnd(await onB.chat(chatId, 'two'));
    const [q3, q4] = await Promise.all([onA.chat(chatId, 'three'), onB.chat(chatId, 'four')]);
    await onA.waitForEnd(q3);
    await onB.waitForEnd(q4);
    expect((await cluster.agentProcesses(chatId)).length).toBe(1);
    await sleep(400);
    for (const [chat, most] of mostAgents) expect([chat, most]).toEqual([chat, expect.toBeOneOf([0, 1])]);
  });
});
