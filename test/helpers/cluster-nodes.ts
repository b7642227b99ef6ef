// Several nodes of one deployment, in this process: services on one Postgres database and one Redis (a key prefix
// of the test's own), each with its own NODE_ID, folders and agent homes. What multi-node tests of shared state
// start; a store handle on the same database stands in for the CLI (users, tokens).
import { addUser } from '../../src/auth/accounts.js';
import { openDatabase } from '../../src/db/database.js';
import { Store } from '../../src/store/store.js';
import { testRedis, type TestRedis } from './redis.js';
import { startService, type Service, type ServiceOptions } from './service.js';
import { createTestDatabase, type TestDatabase } from './stores.js';

export interface TestUser {
  id: string;
  name: string;
  token: string;
  tokenId: string;
}

export interface Cluster {
  /** One service per name given, in that order. */
  nodes: Service[];
  database: TestDatabase;
  redis: TestRedis;
  /** The shared database, as the CLI sees it. */
  store: Store;
  users: Record<string, TestUser>;
  /** Starts one more node of the same deployment (closed by close()). */
  addNode(nodeId: string, options?: Omit<ServiceOptions, 'store'>): Promise<Service>;
  /** Stops every node, then drops the database and the Redis keys. */
  close(): Promise<void>;
}

export async function startCluster(
  nodeIds: string[],
  { env = {}, users = [], ...options }: Omit<ServiceOptions, 'store'> & { users?: string[] } = {},
): Promise<Cluster> {
  const database = await createTestDatabase('postgres');
  const redis = testRedis();
  const db = await openDatabase(database.target);
  const store = new Store(db);
  const nodes: Service[] = [];
  const close = async () => {
    for (const node of nodes.splice(0).reverse()) await node.close();
    await db.destroy();
    await database.drop();
    await redis.clean();
  };
  const addNode = async (nodeId: string, extra: Omit<ServiceOptions, 'store'> = {}) => {
    const node = await startService({
      ...options,
      ...extra,
      store: 'postgres',
      env: { ...env, ...extra.env, ...redis.env(nodeId), DATABASE_URL: database.url },
    });
    nodes.push(node);
    return node;
  };
  try {
    const made: Record<string, TestUser> = {};
    for (const name of users) {
      const t = await addUser(store, name);
      made[name] = { id: t.user.id, name, token: t.token, tokenId: t.id };
    }
    for (const nodeId of nodeIds) await addNode(nodeId);
    return { nodes, database, redis, store, users: made, addNode, close };
  } catch (err) {
    await close();
    throw err;
  }
}
