import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeModel, type FakeModel } from '../../fake-model/server.js';
import { createChat } from '../helpers/agent-server.js';
import { redisAvailable } from '../helpers/cluster-redis.js';
import { startCluster, type TestCluster } from '../helpers/cluster-processes.js';
import { storeAvailable } from '../helpers/stores.js';
import { TestClient } from '../helpers/ws-client.js';

type StoredMessage = { role: string; content: string; status: string };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A node killed with -9 while it runs an answer: the other node ends it, keeps what streamed, and takes the chat. */
describe.skipIf(!redisAvailable || !storeAvailable('postgres'))('a node lost mid-answer (real processes, Postgres, Redis)', { timeout: 180_000 }, () => {
  let fake: FakeModel;
  let cluster: TestCluster;
  beforeAll(async () => {
    fake = await startFakeModel();
    // Transcripts in the database: the chat's agent resumes its session on whichever node takes the chat.
    cluster = await startCluster(['node-a', 'node-b'], { ANTHROPIC_BASE_URL: fake.url, ANTHROPIC_API_KEY: 'test-key', SESSION_STORE: 'database' });
    // Two service processes start in about a second each alone, in tens of seconds on a loaded machine.
  }, 120_000);
  afterAll(async () => {
    await cluster?.close();
    await fake?.close();
  });

  it('kill -9 of the node running an answer: one node_lost on the other node within 15 s, the partial answer stored, the next message answered there with its context, no agent left', async () => {
    const [a, b] = cluster.nodes as [NonNullable<TestCluster['nodes'][0]>, NonNullable<TestCluster['nodes'][0]>];
    const chatId = await createChat(b.url);
    const onA = await TestClient.connect(a.wsUrl);
    await onA.waitForEnd(await onA.chat(chatId, 'before the loss')); // the chat is now owned by A
    const onB = await TestClient.connect(b.wsUrl);
    onB.send({ type: 'subscribe', chat_id: chatId });
    await onB.waitFor((e) => e.type === 'processing_state');
    const queryId = await onA.chat(chatId, '/slow 300 40');
    await onB.waitFor((e) => e.type === 'text_delta' && e.delta === 'chunk10 ');
    expect((await cluster.agentProcesses(chatId)).length).toBe(1);

    a.process.child.kill('SIGKILL');
    const killedAt = Date.now();
    const end = await onB.waitForEnd(queryId, 30_000);
    const tookMs = Date.now() - killedAt;
    expect(end).toMatchObject({ type: 'error', code: 'node_lost' });
    expect(tookMs).toBeLessThan(15_000);
    const streamed = onB.streamedText(queryId);
    // One terminal event, nothing of the query after it.
    const events = onB.queryEvents(queryId);
    expect(events.filter((e) => ['result', 'cancelled', 'error'].includes(e.type))).toHaveLength(1);
    expect(events.at(-1)).toEqual(end);

    // The partial answer: stored as interrupted, a prefix of what the socket saw (checkpointed every 100 ms).
    const stored = (await (await fetch(`${b.url}/api/chats/${chatId}/messages`)).json()) as StoredMessage[];
    const partial = stored.at(-1)!;
    expect(partial).toMatchObject({ role: 'assistant', status: 'interrupted' });
    expect(partial.content.length).toBeGreaterThan(0);
    expect(streamed.startsWith(partial.content)).toBe(true);

    // A's agent stopped by itself (its node is gone).
    const since = Date.now();
    while ((await cluster.agentProcesses(chatId)).length > 0 && Date.now() - since < 10_000) await sleep(100);
    expect(await cluster.agentProcesses(chatId)).toEqual([]);

    // The next message is answered, on B, with the conversation's context (the session resumed there).
    const next = await onB.chat(chatId, '/recall');
    expect(await onB.waitForEnd(next, 60_000)).toMatchObject({ type: 'result', success: true });
    expect(onB.streamedText(next)).toContain('before the loss');
    expect(onB.events.some((e) => e.type === 'notice')).toBe(false);
    // The chat's numbering went on by one across the move to B: the socket that followed it throughout saw no gap.
    const seqs = [...new Set(onB.events.flatMap((e) => ('chat_id' in e && e.chat_id === chatId && 'seq' in e ? [e.seq as number] : [])))];
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBe(seqs[i - 1]! + 1);
    await onB.close();
    await onA.close();
  });

  it('a message sent the moment its chat\'s node dies waits for the takeover and is answered, not refused', async () => {
    const a = cluster.nodes[0]!.process.child.exitCode === null && cluster.nodes[0]!.process.child.signalCode === null
      ? cluster.nodes[0]!
      : await cluster.restart(0);
    const b = cluster.nodes[1]!;
    const chatId = await createChat(b.url);
    const onA = await TestClient.connect(a.wsUrl);
    await onA.waitForEnd(await onA.chat(chatId, 'owned by A')); // the chat is now owned by A
    const onB = await TestClient.connect(b.wsUrl);
    a.process.child.kill('SIGKILL');
    await a.process.exited;
    // A's lease and liveness last until their TTL: B must wait them out and take the chat, not refuse the message.
    const sentAt = Date.now();
    const next = await onB.chat(chatId, 'right after the loss');
    expect(await onB.waitForEnd(next, 60_000)).toMatchObject({ type: 'result', success: true });
    expect(Date.now() - sentAt).toBeLessThan(30_000);
    expect(onB.events.filter((e) => e.type === 'error')).toEqual([]);
    await onB.close();
    await onA.close();
  });
});
