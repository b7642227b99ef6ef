// Crash recovery scoped to the node that crashed. Each query records the node run that started it; a node starting
// repairs only what its own name left unfinished (and rows from before that was recorded), never another live node's
// running answer; a lost run is repaired exactly (recoverNode); alone on its database a node repairs everything.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { recoverNode } from '../../src/agent/crash-recovery.js';
import type { NodeRun } from '../../src/cluster/node-identity.js';
import { openDatabase, type Db } from '../../src/db/database.js';
import { Store } from '../../src/store/store.js';
import { startCluster, type Cluster } from '../helpers/cluster-nodes.js';
import { redisUrl } from '../helpers/redis.js';
import { startService } from '../helpers/service.js';
import { createTestDatabase, storeAvailable, type TestDatabase } from '../helpers/stores.js';
import { makeTempDir } from '../helpers/temp-dirs.js';
import { TestClient } from '../helpers/ws-client.js';

/** Leaves what a run killed mid-answer leaves: a running query, its answer streaming, a tool call without result. */
async function unfinishedAnswer(db: Db, run: NodeRun | undefined, chatId: string): Promise<{ queryId: string; messageId: string }> {
  const store = new Store(db, undefined, run);
  const queryId = await store.queries.start(chatId);
  await store.messages.add({ chatId, role: 'user', content: 'question', queryId });
  const answer = await store.messages.add({ chatId, role: 'assistant', content: 'partial', status: 'streaming', queryId });
  await store.toolUses.recordCall({ chatId, queryId, toolUseId: `tu-${queryId}`, toolName: 'Bash', input: {} });
  return { queryId, messageId: answer!.id };
}

async function stateOf(store: Store, chatId: string, work: { queryId: string; messageId: string }) {
  const query = await store.queries.get(work.queryId);
  const page = await store.messages.page(chatId, { limit: 100 });
  const tool = await store.toolUses.get(chatId, `tu-${work.queryId}`);
  return {
    query: query?.status,
    answer: page?.messages.find((m) => m.id === work.messageId)?.status,
    toolDone: typeof tool?.result_content === 'string',
  };
}

const untouched = { query: 'running', answer: 'streaming', toolDone: false };
const repaired = { query: 'error', answer: 'interrupted', toolDone: true };

describe.skipIf(redisUrl === null || !storeAvailable('postgres'))('crash recovery in a cluster', () => {
  let cluster: Cluster;
  afterEach(async () => {
    await cluster?.close();
  });

  it('a node starting repairs its own earlier runs and rows from before runs were recorded, not another node\'s', async () => {
    cluster = await startCluster([]);
    const db = cluster.store.db;
    const chat = await cluster.store.chats.create('work');
    const live = await unfinishedAnswer(db, { nodeId: 'node-a', runId: 'a-run-1' }, chat.id);
    const mineEarlier = await unfinishedAnswer(db, { nodeId: 'node-b', runId: 'b-run-1' }, chat.id);
    const beforeNodes = await unfinishedAnswer(db, undefined, chat.id);

    await cluster.addNode('node-b');

    expect(await stateOf(cluster.store, chat.id, live)).toEqual(untouched);
    expect(await stateOf(cluster.store, chat.id, mineEarlier)).toEqual(repaired);
    expect(await stateOf(cluster.store, chat.id, beforeNodes)).toEqual(repaired);
  });

  it('recoverNode repairs exactly the lost run: the same name restarted keeps its new work', async () => {
    cluster = await startCluster([]);
    const db = cluster.store.db;
    const chat = await cluster.store.chats.create('work');
    const lost = await unfinishedAnswer(db, { nodeId: 'node-a', runId: 'a-run-1' }, chat.id);
    const restarted = await unfinishedAnswer(db, { nodeId: 'node-a', runId: 'a-run-2' }, chat.id);
    const other = await unfinishedAnswer(db, { nodeId: 'node-c', runId: 'a-run-1' }, chat.id);

    expect(await recoverNode(cluster.store, { nodeId: 'node-a', runId: 'a-run-1' })).toEqual({ streams: 1, queries: 1, tools: 1 });

    expect(await stateOf(cluster.store, chat.id, lost)).toEqual(repaired);
    expect((await cluster.store.queries.get(lost.queryId))?.error).toBe('the node running the query stopped');
    expect(await stateOf(cluster.store, chat.id, restarted)).toEqual(untouched);
    expect(await stateOf(cluster.store, chat.id, other)).toEqual(untouched);
  });

  it('a node starting leaves the answer another live node is streaming running, until its own node ends it', async () => {
    cluster = await startCluster(['node-a'], { agent: true, env: { AGENT_PREWARM: 'false' } });
    const a = cluster.nodes[0]!;
    const chatId = ((await (await fetch(`${a.url}/api/chats`, { method: 'POST' })).json()) as { id: string }).id;
    const client = await TestClient.connect(a.wsUrl);
    try {
      // Long enough to still be streaming after node B has started, however slow the machine: it is stopped below.
      const queryId = await client.chat(chatId, '/slow 2000 50');
      await client.waitFor((e) => e.type === 'text_delta' && 'query_id' in e && e.query_id === queryId, { timeoutMs: 60_000 });

      await cluster.addNode('node-b');

      const row = await cluster.store.queries.get(queryId);
      expect(row).toMatchObject({ status: 'running', node_id: 'node-a' });
      const page = await cluster.store.messages.page(chatId, { limit: 10 });
      expect(page?.messages.find((m) => m.role === 'assistant')?.status).toBe('streaming');

      client.send({ type: 'stop', chat_id: chatId });
      const end = await client.waitForEnd(queryId);
      expect(end.type).toBe('cancelled');
      expect(client.queryEvents(queryId).filter((e) => e.type === 'error')).toEqual([]);
    } finally {
      await client.close();
    }
  });
});

describe.skipIf(!storeAvailable('postgres'))('crash recovery of a node alone on its database', () => {
  let database: TestDatabase;
  let db: Db;
  beforeAll(async () => {
    database = await createTestDatabase('postgres');
    db = await openDatabase(database.target);
  });
  afterAll(async () => {
    await db?.destroy();
    await database?.drop();
  });

  it('repairs every unfinished row, whichever node name recorded it', async () => {
    const store = new Store(db);
    const chat = await store.chats.create('work');
    const otherName = await unfinishedAnswer(db, { nodeId: 'old-hostname', runId: 'r1' }, chat.id);
    const beforeNodes = await unfinishedAnswer(db, undefined, chat.id);

    const service = await startService({ store: 'postgres', dir: makeTempDir(), env: { DATABASE_URL: database.url, NODE_ID: 'new-hostname' } });
    await service.close();

    expect(await stateOf(store, chat.id, otherName)).toEqual(repaired);
    expect(await stateOf(store, chat.id, beforeNodes)).toEqual(repaired);
  });
});
