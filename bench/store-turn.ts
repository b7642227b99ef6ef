/**
 * `npm run bench:store`: the store's share of one turn, alone in one process: what the service writes and reads for
 * one question and its answer (the access check, the user message and its query, the chat for the list update,
 * the answer's row, one checkpoint, its end, the usage row, the query's tail and end), through the real ChatRecorder
 * and Store on a real SQLite file (or on a Postgres database of its own, created and dropped on the server of
 * STORE_TURN_POSTGRES_URL). No agent, no socket: the figure moves
 * only with the statements a turn runs and the code that builds them, so it shows such a change clearly where the
 * end-to-end CPU figures (`npm run bench:cpu`) are within the machine's noise.
 *
 * Env: STORE_TURN_TURNS (2000) counted turns after STORE_TURN_WARMUP (1000); STORE_TURN_POSTGRES_URL an admin URL
 * (as the tests' TEST_DATABASE_URL: one that may create and drop databases) to run on Postgres instead of SQLite.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FastifyBaseLogger } from 'fastify';
import { ChatRecorder } from '../src/agent/chat-recorder.js';
import { openDatabase } from '../src/db/database.js';
import { Store } from '../src/store/store.js';
import { createDatabase } from './lib/postgres.js';
import { median } from './lib/stats.js';
import { round } from './lib/util.js';

const TURNS = Number(process.env.STORE_TURN_TURNS ?? 2000);
const WARMUP = Number(process.env.STORE_TURN_WARMUP ?? 1000);
const noop = () => undefined;
const log = { level: 'silent', fatal: noop, error: noop, warn: noop, info: noop, debug: noop, trace: noop, silent: noop } as unknown as FastifyBaseLogger;
const ANSWER = 'a streamed answer of a few words, '.repeat(20);

async function oneTurn(store: Store, recorder: ChatRecorder, chatId: string, i: number): Promise<void> {
  // The `chat` frame: the socket checks the principal may use the chat (local mode: chats without an owner).
  await store.chats.get(chatId, { userId: null });
  const sent = await recorder.userMessage(`question ${i}`, []);
  if (!sent) throw new Error('the chat is gone');
  // The chat list update that follows a message (the chat moved to the top).
  await store.chats.getWithOwner(chatId);
  const row = recorder.openBlock(sent.queryId);
  recorder.checkpointBlock(row, ANSWER.slice(0, 100));
  await recorder.sdkSessionId('session-1');
  recorder.closeBlock(row, ANSWER, 'complete');
  recorder.usage(sent.queryId, { model: 'fake', inputTokens: 10, outputTokens: 20, cacheReadInputTokens: 0, cacheCreationInputTokens: 0 }, 0.001);
  recorder.queryTail(sent.queryId, 'session-1', `tail-${i}`);
  recorder.queryEnded(sent.queryId, { status: 'complete', costUsd: 0.001, durationMs: 5 });
  await recorder.idle();
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agent-chat-store-turn-'));
  const adminUrl = process.env.STORE_TURN_POSTGRES_URL;
  const postgres = adminUrl ? await createDatabase(adminUrl, `store_turn_${process.pid}`) : undefined;
  const db = await openDatabase(postgres ? { kind: 'postgres', url: postgres.url } : { kind: 'sqlite', file: path.join(dir, 'chat.db') });
  try {
    const store = new Store(db);
    const chat = await store.chats.create('bench', { userId: null });
    const recorder = new ChatRecorder(store, chat.id, log);
    for (let i = 0; i < WARMUP; i++) await oneTurn(store, recorder, chat.id, i);
    const perTurnUs: number[] = [];
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    for (let i = 0; i < TURNS; i++) {
      const t0 = performance.now();
      await oneTurn(store, recorder, chat.id, WARMUP + i);
      perTurnUs.push((performance.now() - t0) * 1000);
    }
    const wallMs = performance.now() - started;
    const cpu = process.cpuUsage(cpuBefore);
    process.stdout.write(
      `${postgres ? 'postgres' : 'sqlite'}: ${TURNS} turns after ${WARMUP}; per turn: wall median ${round(median(perTurnUs), 0)} µs, ` +
        `mean ${round((wallMs * 1000) / TURNS, 0)} µs; process CPU ${round((cpu.user + cpu.system) / TURNS, 0)} µs\n`,
    );
  } finally {
    await db.destroy();
    await postgres?.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
