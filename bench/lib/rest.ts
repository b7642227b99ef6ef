import autocannon from 'autocannon';
import type { DatabaseTarget } from '../../src/config/config.js';
import { openDatabase, type Db } from '../../src/db/database.js';
import { Store } from '../../src/store/store.js';
import { round } from './util.js';

export interface SeedResult {
  historyChatId: string;
  chats: number;
  messages: number;
  seedMs: number;
}

// Deterministic filler, roughly the length of real chat turns: ~90 characters asked, ~450 answered.
const QUESTION = 'Could you look at the build output and tell me why the integration step fails on the CI box?';
const ANSWER =
  'The integration step fails because the test database is created before the migrations run, so the schema ' +
  'check sees an empty file and stops. Running the migrations first (or letting the app create the file on ' +
  'start-up) fixes it. I also noticed two warnings about deprecated options in the config; they are harmless ' +
  'today but will break with the next major version, so it is worth updating them while you are there.';

/**
 * Fills a new database through the repo's own Store (the same code the service uses, so rows are exactly what the
 * service would have written): `chats` chats in total, one of which holds `messages` messages alternating user /
 * assistant. Run BEFORE the service starts on it.
 */
export async function seedDatabase(target: DatabaseTarget, { chats, messages }: { chats: number; messages: number }): Promise<SeedResult> {
  const started = performance.now();
  const db = await openDatabase(target);
  try {
    const store = new Store(db);
    const history = await store.chats.create('bench: 1,000 messages');
    // messages.add opens its own transaction per message (as the service does), so no outer transaction here.
    for (let i = 0; i < messages; i++) {
      const user = i % 2 === 0;
      await store.messages.add({
        chatId: history.id,
        role: user ? 'user' : 'assistant',
        content: user ? `${QUESTION} (#${i})` : `${ANSWER} (#${i})`,
      });
    }
    // The other chats in one transaction: 10,000 autocommits would only slow the seeding down.
    await db.transaction().execute(async (trx) => {
      const trxStore = new Store(trx as unknown as Db);
      for (let i = 1; i < chats; i++) await trxStore.chats.create(`bench chat ${i}`);
    });
    return { historyChatId: history.id, chats, messages, seedMs: round(performance.now() - started, 0) };
  } finally {
    await db.destroy();
  }
}

export interface RestResult {
  path: string;
  connections: number;
  durationS: number;
  /** Size of one response body, bytes. */
  responseBytes: number;
  /** Records in that body (the array, or the first array field of an object), and whether the service said more
   * pages follow (X-Has-More): a paged list answers with its first page, as a client would get it. */
  items: number;
  hasMore: boolean;
  requestsPerSec: { mean: number; p50: number; min: number };
  latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number };
  totalRequests: number;
  non2xx: number;
  errors: number;
  timeouts: number;
}

/** autocannon against one GET route: `connections` keep-alive connections for `durationS` seconds. */
export async function loadTest(baseUrl: string, route: string, { connections = 10, durationS = 10 } = {}): Promise<RestResult> {
  const probe = await fetch(`${baseUrl}${route}`, { signal: AbortSignal.timeout(30_000) });
  if (!probe.ok) throw new Error(`GET ${route}: HTTP ${probe.status}`);
  const body = await probe.text();
  const responseBytes = Buffer.byteLength(body);
  const hasMore = probe.headers.get('x-has-more') === 'true';
  const json = JSON.parse(body) as unknown;
  const list = Array.isArray(json) ? json : Object.values(json as Record<string, unknown>).find(Array.isArray);
  const items = Array.isArray(list) ? list.length : 0;
  const r = await autocannon({ url: `${baseUrl}${route}`, connections, duration: durationS, timeout: 30 });
  return {
    path: route,
    connections,
    durationS,
    responseBytes,
    items,
    hasMore,
    requestsPerSec: { mean: round(r.requests.average, 1), p50: r.requests.p50, min: r.requests.min },
    latencyMs: {
      p50: r.latency.p50,
      p90: r.latency.p90,
      p99: r.latency.p99,
      max: r.latency.max,
      mean: round(r.latency.average, 2),
    },
    totalRequests: r.requests.total,
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
  };
}
