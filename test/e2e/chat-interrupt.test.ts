// End-to-end: interrupting queries (stop, a new message mid-stream) with the real agent and the fake model.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServerEvent } from '../../src/protocol/ws.js';
import { createChat, startAgentServer, type AgentTestServer } from '../helpers/agent-server.js';
import { TestClient } from '../helpers/ws-client.js';
import { deltasOf, expectOneTerminalLast, getMessages, isTerminal, sleep, terminalsOf, until } from './support.js';

const isDeltaOf = (queryId: string) => (e: ServerEvent) => e.type === 'text_delta' && e.query_id === queryId;

/** Waits until the client got `n` deltas of a query. */
async function waitForDeltas(client: TestClient, queryId: string, n: number): Promise<void> {
  let seen = 0;
  await client.waitFor((e) => isDeltaOf(queryId)(e) && ++seen >= n);
}

/** `sleep S` processes (the Bash tool's `/bashslow`) running in a folder. */
function sleepersIn(dir: string, seconds: number): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      const cwd = fs.readlinkSync(`/proc/${entry}/cwd`);
      if (cmdline[0]?.endsWith('sleep') && cmdline[1] === String(seconds) && cwd.startsWith(dir)) pids.push(Number(entry));
    } catch {
      // the process ended meanwhile
    }
  }
  return pids;
}

describe('interrupting a query over /ws/chat with the real agent', () => {
  let server: AgentTestServer;
  beforeAll(async () => {
    server = await startAgentServer();
  });
  afterAll(async () => {
    await server?.close();
  });

  it('stop mid-stream: one cancelled, nothing after it, the streamed text stored as interrupted; the chat goes on', async () => {
    const chatId = await createChat(server.url);
    const client = await TestClient.connect(server.wsUrl);
    const queryId = await client.chat(chatId, '/slow 50 40');
    await waitForDeltas(client, queryId, 3);
    client.send({ type: 'stop', chat_id: chatId });

    const end = await client.waitForEnd(queryId);
    expect(end).toMatchObject({ type: 'cancelled', chat_id: chatId, query_id: queryId });
    // The one sleep of this test: give a late event of the stopped query the chance to show up (it must not).
    await sleep(500);
    expectOneTerminalLast(client, queryId);
    const types = client.queryEvents(queryId).map((e) => e.type);
    expect(types.slice(-2)).toEqual(['stream_end', 'cancelled']);

    const received = deltasOf(client, queryId).join('');
    expect(received.startsWith('chunk1 chunk2 chunk3 ')).toBe(true);
    expect(received.length).toBeLessThan('chunk1 '.length * 50);
    const messages = await getMessages(server, chatId);
    expect(messages.map((m) => [m.role, m.content, m.status])).toEqual([
      ['user', '/slow 50 40', 'complete'],
      ['assistant', received, 'interrupted'],
    ]);

    const next = await client.chat(chatId, 'after the stop');
    expect(await client.waitForEnd(next)).toMatchObject({ type: 'result', success: true });
    expect(client.streamedText(next)).toBe('Echo: after the stop');
    expectOneTerminalLast(client, next);
    await client.close();
  });

  // `/bashslow 30` sends `sleep 30; echo slept`, which CLI 2.1.332 refuses to run ("Blocked: sleep 30 followed by
  // ..."): the tool fails at once and nothing runs. A command that does not start with the sleep really runs.
  it('stop during a running tool: cancelled at once (long before the command ends), and the next message works', async () => {
    const chatId = await createChat(server.url);
    const workspace = path.join(server.config.WORKSPACE_DIR, chatId);
    const client = await TestClient.connect(server.wsUrl);
    const queryId = await client.chat(chatId, '/bash echo started; sleep 30; echo slept');
    await client.waitFor((e) => e.type === 'tool_use' && e.query_id === queryId);
    // The command really runs (in the chat's workspace) before we stop it.
    await until(() => sleepersIn(workspace, 30).length > 0, 'the tool runs sleep 30');
    client.send({ type: 'stop', chat_id: chatId });

    // The command sleeps 30 s; the cancel must arrive well within that.
    expect(await client.waitForEnd(queryId, 10_000)).toMatchObject({ type: 'cancelled', query_id: queryId });

    const next = await client.chat(chatId, 'after the tool');
    expect(await client.waitForEnd(next, 10_000)).toMatchObject({ type: 'result', success: true });
    expect(client.streamedText(next)).toBe('Echo: after the tool');
    expectOneTerminalLast(client, queryId);
    expect(client.queryEvents(queryId).some((e) => e.type === 'tool_result' && !e.is_error)).toBe(false);
    // The interrupted command does not linger.
    await until(() => sleepersIn(workspace, 30).length === 0, 'the interrupted sleep 30 is gone');
    await client.close();
  });

  it('stop while the model has not answered at all (/hang): cancelled, and the next message works', async () => {
    const chatId = await createChat(server.url);
    const client = await TestClient.connect(server.wsUrl);
    const queryId = await client.chat(chatId, '/hang');
    // Wait until the model request is really pending.
    await until(
      () => server.fake.requests.some((r) => JSON.stringify(r.body ?? '').includes(chatId) && JSON.stringify(r.body).includes('/hang')),
      'the fake model got the /hang turn',
    );
    client.send({ type: 'stop', chat_id: chatId });
    expect(await client.waitForEnd(queryId, 10_000)).toMatchObject({ type: 'cancelled' });

    const next = await client.chat(chatId, 'after the hang');
    expect(await client.waitForEnd(next)).toMatchObject({ type: 'result', success: true });
    expect(client.streamedText(next)).toBe('Echo: after the hang');
    expect((await getMessages(server, chatId)).map((m) => [m.role, m.content])).toEqual([
      ['user', '/hang'],
      ['user', 'after the hang'],
      ['assistant', 'Echo: after the hang'],
    ]);
    await client.close();
  });

  it('stop with nothing running is a no-op: no event, no error', async () => {
    const chatId = await createChat(server.url);
    const client = await TestClient.connect(server.wsUrl);
    const done = await client.chat(chatId, 'quick');
    await client.waitForEnd(done);
    const from = client.events.length;
    client.send({ type: 'stop', chat_id: chatId });
    // A subscribe after the stop is answered after it (frames are handled in order): nothing came in between.
    client.send({ type: 'subscribe', chat_id: chatId });
    await client.waitFor((e) => e.type === 'processing_state', { from });
    // chat_updated (the list update of the message) is not part of this chat's stream and may land at any point.
    const stream = client.events.slice(from).filter((e) => e.type !== 'chat_updated');
    expect(stream.map((e) => e.type)).toEqual(['history', 'tool_history', 'processing_state']);
    await client.close();
  });

  it('a new message mid-stream cancels the running query before the new one starts', async () => {
    const chatId = await createChat(server.url);
    const client = await TestClient.connect(server.wsUrl);
    const first = await client.chat(chatId, '/slow 50 40');
    await waitForDeltas(client, first, 3);
    const second = await client.chat(chatId, 'the second message');
    expect(await client.waitForEnd(second)).toMatchObject({ type: 'result', success: true });
    expect(client.streamedText(second)).toBe('Echo: the second message');

    expect(expectOneTerminalLast(client, first)).toMatchObject({ type: 'cancelled' });
    expectOneTerminalLast(client, second);
    const events = client.events;
    const firstEnd = events.findIndex((e) => isTerminal(e) && 'query_id' in e && e.query_id === first);
    const secondUser = events.findIndex((e) => e.type === 'user_message' && e.query_id === second);
    const secondStart = events.findIndex((e) => e.type === 'stream_start' && e.query_id === second);
    expect(firstEnd).toBeGreaterThan(-1);
    expect(firstEnd).toBeLessThan(secondUser);
    expect(secondUser).toBeLessThan(secondStart);
    expect(events.slice(secondStart).some((e) => 'query_id' in e && e.query_id === first)).toBe(false);

    const firstText = deltasOf(client, first).join('');
    expect((await getMessages(server, chatId)).map((m) => [m.role, m.content, m.status])).toEqual([
      ['user', '/slow 50 40', 'complete'],
      ['assistant', firstText, 'interrupted'],
      ['user', 'the second message', 'complete'],
      ['assistant', 'Echo: the second message', 'complete'],
    ]);
    await client.close();
  });

  it('a burst of messages: every query gets exactly one terminal event, the last one answers', async () => {
    const chatId = await createChat(server.url);
    const client = await TestClient.connect(server.wsUrl);
    const texts = ['/slow 50 40', '/slow 50 30', 'last of the burst'];
    for (const content of texts) client.send({ type: 'chat', chat_id: chatId, content });
    const echoes = await Promise.all(
      texts.map((content) => client.waitFor((e) => e.type === 'user_message' && e.content === content)),
    );
    const ids = echoes.map((e) => (e as { query_id: string }).query_id);
    expect(await client.waitForEnd(ids[2]!)).toMatchObject({ type: 'result', success: true });
    expect(client.streamedText(ids[2]!)).toBe('Echo: last of the burst');
    await sleep(300);
    for (const id of ids) expect(terminalsOf(client, id)).toHaveLength(1);
    expect(terminalsOf(client, ids[0]!)[0]).toMatchObject({ type: 'cancelled' });
    expect(terminalsOf(client, ids[1]!)[0]).toMatchObject({ type: 'cancelled' });
    // Queries run one after another: each ended before the next one's user_message.
    const index = (pred: (e: ServerEvent) => boolean) => client.events.findIndex(pred);
    for (let i = 0; i < 2; i++) {
      const end = index((e) => isTerminal(e) && 'query_id' in e && e.query_id === ids[i]);
      const nextUser = index((e) => e.type === 'user_message' && e.query_id === ids[i + 1]);
      expect(end).toBeLessThan(nextUser);
    }
    const stored = await getMessages(server, chatId);
    expect(stored.filter((m) => m.role === 'user').map((m) => m.content)).toEqual(texts);
    expect(stored.at(-1)).toMatchObject({ role: 'assistant', content: 'Echo: last of the burst', status: 'complete' });
    await client.close();
  });
});
