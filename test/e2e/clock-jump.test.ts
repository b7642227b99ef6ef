// End-to-end: the wall clock of the service's machine steps (NTP correcting a drifted clock, an operator setting
// the date, a VM resumed) while it serves chats, through the real service, SDK and CLI. Simulated by stepping
// Date.now of the service's process (the service runs in this test's process); the agent CLI keeps the real clock.
// - Steps forward in the middle of an answer must not look like an hour of silence from the model: the answer
//   goes on (the stall watchdog measures on the monotonic clock).
// - A step back must never make a chat's event numbering repeat: not when its stream is opened again in the same
//   run, not after a restart; a client's old `last_seq` then gets the full state, never another stream's events.
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { ServerEvent } from '../../src/protocol/ws.js';
import { createChat, startAgentServer, type AgentTestServer } from '../helpers/agent-server.js';
import { TestClient } from '../helpers/ws-client.js';
import { expectOneTerminalLast, sleep, subscribe, until } from './support.js';

const HOUR = 3_600_000;
const seqOf = (e: ServerEvent): number => ('seq' in e && typeof e.seq === 'number' ? e.seq : -1);
const chatSeqs = (client: TestClient, chatId: string) =>
  client.events.filter((e) => 'chat_id' in e && e.chat_id === chatId).map(seqOf).filter((s) => s >= 0);

describe('wall clock steps', () => {
  let server: AgentTestServer | undefined;
  const clients: TestClient[] = [];
  const connect = async () => {
    const client = await TestClient.connect(server!.wsUrl);
    clients.push(client);
    return client;
  };
  afterEach(async () => {
    vi.restoreAllMocks();
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await server?.close();
    server = undefined;
  });

  it('steps forward of an hour, again and again, mid-answer: the answer goes on to its result (no stall error)', { timeout: 120_000 }, async () => {
    // Stall limit: AGENT_API_TIMEOUT_MS + 5 s = 7 s; the answer takes 10 s.
    server = await startAgentServer({ AGENT_API_TIMEOUT_MS: '2000' });
    const chatId = await createChat(server.url);
    const client = await connect();
    await subscribe(client, chatId);
    const q = await client.chat(chatId, '/slow 40 250');
    await client.waitFor((e) => e.type === 'text_delta' && 'query_id' in e && e.query_id === q, { timeoutMs: 60_000 });
    // Every reading of the clock from here on is an hour later than the one before: whenever the watchdog looks,
    // the wall clock says the model has been silent for at least an hour.
    const realNow = Date.now;
    let steps = 0;
    vi.spyOn(Date, 'now').mockImplementation(() => realNow() + HOUR * ++steps);
    const end = await client.waitForEnd(q, 60_000);
    expect(end.type).toBe('result');
    expectOneTerminalLast(client, q);
    expect(client.streamedText(q)).toContain('chunk40');
  });

  it('a step back: a chat stream opened again, and the service restarted, number above every seq issued before', { timeout: 180_000 }, async () => {
    server = await startAgentServer({ AGENT_IDLE_TIMEOUT_MS: '1000', AGENT_PREWARM: 'false' });
    const chatId = await createChat(server.url);
    const first = await connect();
    const { history } = await subscribe(first, chatId);
    // The stream's numbering started from the wall clock at that moment (in µs).
    const startedAt = Math.floor(history.seq / 1000);
    const q1 = await first.chat(chatId, 'one');
    await first.waitForEnd(q1, 60_000);
    const lastSeen = Math.max(...chatSeqs(first, chatId));
    await first.close();

    // The clock goes back to the moment the first stream started, and stays there.
    vi.spyOn(Date, 'now').mockReturnValue(startedAt);
    // Nobody follows the chat and its agent is idle: the service forgets the chat's stream (AGENT_IDLE_TIMEOUT_MS).
    await until(() => server!.app.agents.peek(chatId) === undefined, 'the idle chat forgotten', 30_000);

    const second = await connect();
    const reopened = await subscribe(second, chatId);
    expect(reopened.history.seq).toBeGreaterThan(lastSeen);
    const q2 = await second.chat(chatId, 'two');
    await second.waitForEnd(q2, 60_000);
    expect(Math.min(...chatSeqs(second, chatId))).toBeGreaterThan(lastSeen);

    // A client back with a seq of the first stream gets the full state, not the second stream's events.
    const returning = await connect();
    returning.send({ type: 'subscribe', chat_id: chatId, last_seq: lastSeen });
    const full = await returning.waitFor((e) => e.type === 'history' && e.chat_id === chatId);
    expect(full.type === 'history' && full.messages.map((m) => m.content)).toEqual(['one', 'Echo: one', 'two', 'Echo: two']);

    // Restarted with the clock still behind: the new run starts above everything the previous one issued.
    const highest = Math.max(...chatSeqs(second, chatId), ...chatSeqs(returning, chatId));
    await Promise.all(clients.splice(0).map((c) => c.close()));
    server = await server.restart();
    const afterRestart = await connect();
    const restarted = await subscribe(afterRestart, chatId);
    expect(restarted.history.seq).toBeGreaterThan(highest);
    await sleep(0);
  });
});
