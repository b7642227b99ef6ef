import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import type { DatabaseTarget } from '../../src/config/config.js';
import { openDatabase, type Db } from '../../src/db/database.js';
import { mulberry32 } from '../../test/helpers/prng.js';
import { REPO_ROOT } from './children.js';
import { createDatabase, databaseUrl, withPostgres } from './postgres.js';
import { median, percentile } from './stats.js';
import { round } from './util.js';

/**
 * Stored data at scale: the reads a client makes all the time (the chat list, a chat's history page by page,
 * search) on a database of 10,000 chats and 1,000,000 messages, against the same reads on a database of 1,000
 * messages. Both hold the same probe chat (200 messages) and the same planted search texts, so each read returns
 * the same amount in both: only the size of what is stored differs.
 */
export interface ScaleShape {
  chats: number;
  /** Messages in all, the probe chat's included. */
  messages: number;
}

// 1,000 chats: the list's first and second pages (500 each) are full in both (200 of the small one's chats are empty).
export const SMALL: ScaleShape = { chats: 1_000, messages: 1_000 };
export const LARGE: ScaleShape = { chats: 10_000, messages: 1_000_000 };

const PROBE_MESSAGES = 200;
/** Found in exactly PLANTED messages (of PLANTED chats) in either database. */
export const RARE_LATIN = 'quasarflux';
export const RARE_CJK = '量子纠缠态';
const PLANTED = 3;

export interface SeededScale {
  shape: ScaleShape;
  seedMs: number;
  probeChatId: string;
  /** The message the middle page of the probe chat's history is read before. */
  middleMessageId: string;
  /** The last chat of the list's first page (of 500): the second page is read after it. */
  firstPageLastChatId: string;
}

// Deterministic text, about as long as chat turns, one message in ten in Chinese (the search index must serve CJK).
const LATIN = [
  'Could you look at the build output and tell me why the integration step fails on the CI box?',
  'The integration step fails because the test database is created before the migrations run.',
  'Running the migrations first, or letting the app create the file on start-up, fixes it.',
  'Two warnings about deprecated options in the config are harmless today but will break later.',
  'Here is a shorter version of the function, with the loop replaced by a map and a filter.',
  'The benchmark shows the cache helps only when the same key is read more than twice.',
  'I renamed the variables so that each says what it holds, and added a test for the empty case.',
  'The log says the connection was reset by the peer while the upload was still running.',
];
const CJK = [
  '请帮我看一下这个构建日志，为什么集成测试在持续集成服务器上失败了？',
  '集成测试失败是因为测试数据库在迁移运行之前就被创建了。',
  '先运行迁移，或者让应用在启动时创建文件，就可以解决这个问题。',
  '配置里有两个关于已弃用选项的警告，现在无害，但以后会出问题。',
];

function text(random: () => number, n: number): string {
  const pool = random() < 0.1 ? CJK : LATIN;
  const sentences = 1 + Math.floor(random() * 3);
  const parts: string[] = [];
  for (let i = 0; i < sentences; i++) parts.push(pool[Math.floor(random() * pool.length)]!);
  return `${parts.join(' ')} (#${n})`;
}

/**
 * Fills a new database (its schema made by the service's own migrations) with `shape`: chats whose activity times
 * are one second apart (the probe chat the newest), messages alternating user and assistant. Rows go in by
 * multi-row inserts in large transactions, the search index kept by the migrations' own triggers (SQLite) or
 * index (Postgres), as the service's writes would keep it. Run BEFORE the service starts on it.
 */
export async function seedScale(target: DatabaseTarget, shape: ScaleShape): Promise<SeededScale> {
  const started = performance.now();
  const random = mulberry32(shape.messages);
  const db = await openDatabase(target);
  try {
    const base = Date.parse('2026-01-01T00:00:00Z');
    const chatIds = Array.from({ length: shape.chats }, () => randomUUID());
    const probeChatId = chatIds[0]!;
    // Messages per chat: the probe chat's, then the rest spread evenly over the others.
    const others = shape.messages - PROBE_MESSAGES;
    const perChat = (i: number): number =>
      i === 0 ? PROBE_MESSAGES : Math.floor(others / (shape.chats - 1)) + (i - 1 < others % (shape.chats - 1) ? 1 : 0);
    // The planted texts: in PLANTED chats spread over the list, one message each.
    const plantedIn = new Map<number, string>();
    const withMessages = Math.min(shape.chats - 1, others); // chats 1..withMessages have a message at least
    for (let k = 0; k < PLANTED; k++) {
      plantedIn.set(1 + Math.floor(((k + 0.5) * withMessages) / PLANTED), RARE_LATIN);
      plantedIn.set(1 + Math.floor(((k + 0.25) * withMessages) / PLANTED), RARE_CJK);
    }

    let middleMessageId = '';
    let n = 0;
    const rows: Parameters<ReturnType<Db['insertInto']>['values']>[0][] = [];
    const flush = async (trx: Db) => {
      for (let i = 0; i < rows.length; i += 500) await trx.insertInto('messages').values(rows.slice(i, i + 500) as never).execute();
      rows.length = 0;
    };
    const CHATS_PER_TRANSACTION = 500;
    for (let from = 0; from < shape.chats; from += CHATS_PER_TRANSACTION) {
      await db.transaction().execute(async (trx) => {
        const to = Math.min(shape.chats, from + CHATS_PER_TRANSACTION);
        const chats = [];
        for (let i = from; i < to; i++) {
          const at = new Date(base + (shape.chats - i) * 1_000).toISOString();
          chats.push({ id: chatIds[i]!, title: i === 0 ? 'bench: the probe chat' : `bench chat ${i}`, created_at: at, updated_at: at, sdk_session_id: null, last_position: perChat(i) });
        }
        for (let i = 0; i < chats.length; i += 500) await trx.insertInto('chats').values(chats.slice(i, i + 500)).execute();
        for (let i = from; i < to; i++) {
          const count = perChat(i);
          const at = new Date(base + (shape.chats - i) * 1_000).toISOString();
          for (let p = 1; p <= count; p++) {
            const id = randomUUID();
            if (i === 0 && p === 100) middleMessageId = id;
            let content = text(random, n++);
            if (p === 1 && plantedIn.has(i)) content = `${content} ${plantedIn.get(i)}`;
            rows.push({ id, chat_id: chatIds[i]!, position: p, role: p % 2 === 1 ? 'user' : 'assistant', content, status: 'complete', query_id: null, created_at: at });
          }
          if (rows.length >= 5_000) await flush(trx as unknown as Db);
        }
        await flush(trx as unknown as Db);
      });
    }
    return {
      shape,
      seedMs: round(performance.now() - started, 0),
      probeChatId,
      middleMessageId,
      firstPageLastChatId: chatIds[499]!,
    };
  } finally {
    await db.destroy();
  }
}

export interface ScaleRead {
  name: string;
  route: string;
  /** Items in the answer (chats or messages), and its size in bytes. */
  items: number;
  bytes: number;
  /** Each timed request, ms (sequential, after warm-up). */
  samplesMs: number[];
  medianMs: number;
  p95Ms: number;
}

/** The reads, named, for one seeded database. */
export function scaleReads(seeded: SeededScale): { name: string; route: string }[] {
  const chat = `/api/chats/${seeded.probeChatId}/messages`;
  return [
    { name: 'list chats, first page (500)', route: '/api/chats' },
    { name: 'list chats, second page', route: `/api/chats?before=${seeded.firstPageLastChatId}` },
    { name: "a chat's newest 50 messages", route: `${chat}?limit=50` },
    { name: "a chat's 50 messages before its 100th", route: `${chat}?limit=50&before=${seeded.middleMessageId}` },
    { name: `search a rare word ("${RARE_LATIN}")`, route: `/api/chats/search?q=${RARE_LATIN}` },
    { name: `search a rare CJK text ("${RARE_CJK}")`, route: `/api/chats/search?q=${encodeURIComponent(RARE_CJK)}` },
  ];
}

/**
 * Times one read on each of several services in turn (so that other load falls on all alike): `warmup` untimed
 * requests each, then `samples` timed ones, one at a time over a kept-alive connection.
 */
export async function timeReads(
  baseUrls: string[],
  routes: string[],
  { warmup = 5, samples = 40 } = {},
): Promise<Omit<ScaleRead, 'name'>[]> {
  const get = async (url: string) => {
    const t = performance.now();
    const res = await fetch(url, { signal: AbortSignal.timeout(60_000) });
    const body = await res.text();
    const ms = performance.now() - t;
    if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status} ${body.slice(0, 200)}`);
    return { ms, body };
  };
  const samplesMs = baseUrls.map(() => [] as number[]);
  const shapes = await Promise.all(
    baseUrls.map(async (base, i) => {
      const { body } = await get(`${base}${routes[i]}`);
      const json = JSON.parse(body) as unknown;
      const list = Array.isArray(json) ? json : Object.values(json as Record<string, unknown>).find(Array.isArray);
      return { items: Array.isArray(list) ? list.length : 0, bytes: Buffer.byteLength(body) };
    }),
  );
  for (let k = 0; k < warmup + samples; k++) {
    for (const [i, base] of baseUrls.entries()) {
      const { ms } = await get(`${base}${routes[i]}`);
      if (k >= warmup) samplesMs[i]!.push(round(ms, 3));
    }
  }
  return baseUrls.map((_, i) => ({
    route: routes[i]!,
    ...shapes[i]!,
    samplesMs: samplesMs[i]!,
    medianMs: round(median(samplesMs[i]!), 2),
    p95Ms: round(percentile(samplesMs[i]!, 95), 2),
  }));
}

// ------------------------------------------------------------------ seeded databases, built once per machine

/**
 * What a seeded database depends on: the migrations (the schema and its indexes), this file and its PRNG (the rows).
 * A change to any makes a new one; otherwise a run reuses the one an earlier run built (a million messages take
 * minutes).
 */
function seedKey(): string {
  const hash = createHash('sha256');
  const migrations = path.join(REPO_ROOT, 'src/db/migrations');
  for (const file of fs.readdirSync(migrations).sort()) hash.update(fs.readFileSync(path.join(migrations, file)));
  hash.update(fs.readFileSync(fileURLToPath(import.meta.url)));
  hash.update(fs.readFileSync(path.join(REPO_ROOT, 'test/helpers/prng.ts')));
  return hash.digest('hex').slice(0, 10);
}

const CACHE_DIR = path.join(os.tmpdir(), 'agent-chat-bench-cache');

/**
 * A SQLite database of `shape` at `file`: copied from the machine's cached one (made first if missing). Also returns
 * whether it had to be made, and how long that took.
 */
export async function sqliteScaleDatabase(file: string, shape: ScaleShape): Promise<SeededScale & { reused: boolean }> {
  const name = `scale-${shape.chats}-${shape.messages}-${seedKey()}`;
  const cached = path.join(CACHE_DIR, `${name}.db`);
  const facts = path.join(CACHE_DIR, `${name}.json`);
  let reused = true;
  if (!fs.existsSync(facts)) {
    reused = false;
    fs.mkdirSync(CACHE_DIR, { recursive: true });
    fs.rmSync(cached, { force: true });
    const seeded = await seedScale({ kind: 'sqlite', file: cached }, shape);
    fs.writeFileSync(facts, JSON.stringify(seeded));
  }
  fs.copyFileSync(cached, file);
  return { ...(JSON.parse(fs.readFileSync(facts, 'utf8')) as SeededScale), reused };
}

/**
 * A new Postgres database of `shape` on the server of `adminUrl`, created from a template database that an earlier run
 * seeded (made first if missing; templates of an older key are dropped). Returns its URL and a drop().
 */
export async function postgresScaleDatabase(
  adminUrl: string,
  shape: ScaleShape,
  name: string,
): Promise<SeededScale & { reused: boolean; url: string; drop(): Promise<void> }> {
  const prefix = `bench_scale_${shape.chats}_${shape.messages}_`;
  const template = `${prefix}${seedKey()}`;
  // The seeded facts live in the template's own comment, so the two can never disagree.
  const factsOf = (client: pg.Client) =>
    client
      .query<{ facts: string | null }>('SELECT shobj_description(oid, $2) AS facts FROM pg_database WHERE datname = $1', [template, 'pg_database'])
      .then((r) => r.rows[0]?.facts ?? null);
  let facts = await withPostgres(adminUrl, factsOf);
  let reused = true;
  if (facts === null) {
    reused = false;
    await withPostgres(adminUrl, async (client) => {
      const old = await client.query<{ datname: string }>('SELECT datname FROM pg_database WHERE datname LIKE $1', [`${prefix}%`]);
      for (const { datname } of old.rows) await client.query(`DROP DATABASE "${datname}" WITH (FORCE)`);
      await client.query(`CREATE DATABASE "${template}"`);
    });
    const seeded = await seedScale({ kind: 'postgres', url: databaseUrl(adminUrl, template) }, shape);
    facts = JSON.stringify(seeded);
    // Statistics for the planner, as a database in use would have them.
    await withPostgres(databaseUrl(adminUrl, template), (client) => client.query('VACUUM ANALYZE'));
    await withPostgres(adminUrl, (client) => client.query(`COMMENT ON DATABASE "${template}" IS ${pgLiteral(facts!)}`));
  }
  const database = await createDatabase(adminUrl, name, { template });
  return { ...(JSON.parse(facts) as SeededScale), reused, ...database };
}

const pgLiteral = (s: string) => `'${s.replace(/'/g, "''")}'`;
