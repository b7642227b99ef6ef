import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { findAgentProcesses } from '../../src/agent/crash-recovery.js';
import type { ServerEvent } from '../../src/protocol/ws.js';
import { describeEachStore } from '../helpers/stores.js';
import { createChat, startAgentServer, type AgentTestServer } from '../helpers/agent-server.js';
import { TestClient } from '../helpers/ws-client.js';

const agentHomeDir = (server: AgentTestServer) => server.config.AGENT_HOME_DIR;
/** Processes whose working directory is `dir` or below it (Linux /proc). */
const processesIn = async (dir: string): Promise<number[]> => {
  const pids: number[] = [];
  for (const entry of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cwd = await fs.readlink(`/proc/${entry}/cwd`).catch(() => '');
    if (cwd === dir || cwd.startsWith(`${dir}/`)) pids.push(Number(entry));
  }
  return pids;
};
const seqOf = (e: ServerEvent) => ('seq' in e && typeof e.seq === 'number' ? e.seq : -1);
const until = async (check: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

describeEachStore('reliability', (store) => {
  let server: AgentTestServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('replays exactly the missed events to a client that resubscribes with its last seq', async () => {
    server = await startAgentServer({}, { store });
    const chatId = await createChat(server.url);
    const first = await TestClient.connect(server.wsUrl);
    const watcher = await TestClient.connect(server.wsUrl);
    watcher.send({ type: 'subscribe', chat_id: chatId });
    await watcher.waitFor((e) => e.type === 'processing_state');

    const queryId = await first.chat(chatId, '/slow 30 30');
    await first.waitFor((e) => e.type === 'text_delta' && e.delta === 'chunk3 ');
    const lastSeq = Math.max(...first.events.filter((e) => 'chat_id' in e && e.chat_id === chatId).map(seqOf));
    // Taken in the same tick as lastSeq: deltas that reach `first` while it closes are after lastSeq, so replayed.
    const seenBefore = first.events.filter((e) => 'query_id' in e && e.query_id === queryId);
    await first.close();
    await watcher.waitForEnd(queryId);

    const again = await TestClient.connect(server.wsUrl);
    again.send({ type: 'subscribe', chat_id: chatId, last_seq: lastSeq });
    await again.waitForEnd(queryId);
    expect(again.events.some((e) => e.type === 'history')).toBe(false);
    const replayed = again.events.filter((e) => e.type !== 'connected');
    expect(replayed.map(seqOf)).toEqual(replayed.map((_, i) => lastSeq + 1 + i));
    // Together, what the first client saw before and the replay are what a client that never left saw.
    expect([...seenBefore, ...replayed.filter((e) => 'query_id' in e)]).toEqual(watcher.queryEvents(queryId));

    // A seq that is no longer (or never was) kept gets the full state instead, starting with history.
    const stale = await TestClient.connect(server.wsUrl);
    stale.send({ type: 'subscribe', chat_id: chatId, last_seq: 5 });
    const history = await stale.waitFor((e) => e.type === 'history');
    expect(history.type === 'history' && history.messages.map((m) => m.content)).toEqual(['/slow 30 30', expect.stringContaining('chunk30')]);
    await Promise.all([again.close(), stale.close(), watcher.close()]);
  });

  it('keeps at most MAX_LIVE_AGENTS agents: the least recently used idle one makes room and resumes later', async () => {
    server = await startAgentServer({ MAX_LIVE_AGENTS: '1', AGENT_PREWARM: 'false' }, { store });
    const agents = server.app.agents;
    const [a, b] = [await createChat(server.url), await createChat(server.url)];
    const client = await TestClient.connect(server.wsUrl);

    await client.waitForEnd(await client.chat(a, 'first in A'));
    const pidA = agents.agentPids()[0];
    await client.waitForEnd(await client.chat(b, 'first in B'));
    expect(agents.liveAgents).toBe(1);
    expect(agents.agentPids()).not.toContain(pidA);

    // A's agent was closed, not its conversation: the resumed session still knows A's first message.
    const recall = await client.chat(a, '/recall');
    expect(await client.waitForEnd(recall)).toMatchObject({ type: 'result', success: true });
    expect(client.streamedText(recall)).toContain('first in A');

    // While A is busy answering, B cannot take its agent: a clear error, nothing stored.
    const slow = await client.chat(a, '/slow 40 50');
    await client.waitFor((e) => e.type === 'text_delta' && 'query_id' in e && e.query_id === slow);
    const from = client.events.length;
    client.send({ type: 'chat', chat_id: b, content: 'squeezed out' });
    const refused = await client.waitFor((e) => e.type === 'error' && e.chat_id === b, { from });
    expect(refused).toMatchObject({ code: 'agent_busy' });
    client.send({ type: 'stop', chat_id: a });
    await client.waitForEnd(slow);
    const stored = (await (await fetch(`${server.url}/api/chats/${b}/messages`)).json()) as { content: string }[];
    expect(stored.map((m) => m.content)).not.toContain('squeezed out');
    await client.close();
  });

  it('closes idle agents after AGENT_IDLE_TIMEOUT_MS and resumes the chat on the next message', async () => {
    server = await startAgentServer({ AGENT_IDLE_TIMEOUT_MS: '1000', AGENT_PREWARM: 'false' }, { store });
    const chatId = await createChat(server.url);
    const client = await TestClient.connect(server.wsUrl);
    await client.waitForEnd(await client.chat(chatId, 'remember me'));
    expect(server.app.agents.liveAgents).toBe(1);
    await until(async () => (await findAgentProcesses(agentHomeDir(server!))).length === 0, 'the idle agent to exit');
    expect(server.app.agents.liveAgents).toBe(0);
    const recall = await client.chat(chatId, '/recall');
    await client.waitForEnd(recall);
    expect(client.streamedText(recall)).toContain('remember me');
    await client.close();
  });

  it('prewarms the agent when a chat is subscribed', async () => {
    server = await startAgentServer({}, { store });
    const chatId = await createChat(server.url);
    const client = await TestClient.connect(server.wsUrl);
    client.send({ type: 'subscribe', chat_id: chatId });
    await client.waitFor((e) => e.type === 'processing_state');
    await until(() => server!.app.agents.liveAgents === 1, 'the prewarmed agent');
    const queryId = await client.chat(chatId, 'warm hello');
    expect(await client.waitForEnd(queryId)).toMatchObject({ type: 'result', success: true });
    await client.close();
  });

  it('leaves no agent process behind: not after deleting a chat mid-answer, not after shutdown', async () => {
    server = await startAgentServer({}, { store });
    const configDir = agentHomeDir(server);
    const [doomed, other] = [await createChat(server.url), await createChat(server.url)];
    const client = await TestClient.connect(server.wsUrl);
    const slow = await client.chat(doomed, '/bashslow 30');
    await client.waitFor((e) => e.type === 'tool_use' && e.query_id === slow);
    const tool = await client.chat(other, '/slow 200 20');
    await client.waitFor((e) => e.type === 'text_delta' && e.query_id === tool);
    // The doomed chat's CLI and the shell running its tool both work in the chat's workspace.
    const workspace = path.join(server.config.WORKSPACE_DIR, doomed);
    await until(async () => (await processesIn(workspace)).length >= 2, 'the CLI and its running tool');
    expect((await findAgentProcesses(configDir)).length).toBeGreaterThanOrEqual(2);

    const deleted = await fetch(`${server.url}/api/chats/${doomed}`, { method: 'DELETE' });
    expect(deleted.status).toBe(200);
    expect(await client.waitForEnd(slow)).toMatchObject({ type: 'cancelled' });
    expect(server.app.agents.peek(doomed)).toBeUndefined();
    expect(server.app.agents.liveAgents).toBe(1);
    expect(await processesIn(workspace)).toEqual([]);

    await server.close();
    server = undefined;
    expect(await findAgentProcesses(configDir)).toEqual([]);
    await client.close();
  });

  it('disconnects a client that stops reading (code 4008) without holding up another client of the same chat', async () => {
    server = await startAgentServer({ WS_MAX_BUFFERED_BYTES: String(256 * 1024) });
    const chatId = await createChat(server.url);
    const reader = await TestClient.connect(server.wsUrl);
    const stalled = await TestClient.connect(server.wsUrl);
    for (const c of [reader, stalled]) {
      c.send({ type: 'subscribe', chat_id: chatId });
      await c.waitFor((e) => e.type === 'processing_state');
    }
    const closed = new Promise<number>((resolve) => stalled.socket.once('close', (code) => resolve(code)));
    // Stop reading from the TCP socket: the server's unsent data for this client piles up.
    (stalled.socket as unknown as { _socket: { pause(): void } })._socket.pause();

    const flood = await reader.chat(chatId, '/flood 400 20000');
    expect(await reader.waitForEnd(flood, 60_000)).toMatchObject({ type: 'result', success: true });
    expect(reader.streamedText(flood).length).toBe(400 * 20_000);
    (stalled.socket as unknown as { _socket: { resume(): void } })._socket.resume();
    expect(await closed).toBe(4008);
    await reader.close();
  });

  it('keeps a client that reads a flood of deltas under a small WS_MAX_BUFFERED_BYTES, frames of a tick written together', async () => {
    server = await startAgentServer({ WS_MAX_BUFFERED_BYTES: String(64 * 1024) });
    const chatId = await createChat(server.url);
    const reader = await TestClient.connect(server.wsUrl);
    const closed = new Promise<number>((resolve) => reader.socket.once('close', (code) => resolve(code)));
    // 4 MB in deltas of 20 KB with no pause, against a 64 KiB cap on what a socket may leave unread.
    const flood = await reader.chat(chatId, '/flood 200 20000');
    const end = await Promise.race([reader.waitForEnd(flood, 60_000), closed.then((code) => ({ type: `closed ${code}` }))]);
    expect(end).toMatchObject({ type: 'result', success: true });
    expect(reader.streamedText(flood).length).toBe(200 * 20_000);
    await reader.close();
  });

  it('reads the next frame while a chat operation waits: a message to one chat is never held behind another chat', async () => {
    // Clearing chat A ends A's agent process and waits for it to exit. A message to chat B sent right after it on
    // the same socket must not wait for that: the socket once awaited each chat operation before reading the next
    // frame, and under the stress test's load (agent replacements taking seconds) such a held frame looked lost.
    server = await startAgentServer({}, { store });
    const [chatA, chatB] = [await createChat(server.url), await createChat(server.url)];
    const client = await TestClient.connect(server.wsUrl);
    for (const chatId of [chatA, chatB]) await client.waitForEnd(await client.chat(chatId, `warm up ${chatId}`));

    client.send({ type: 'clear_history', chat_id: chatA });
    client.send({ type: 'chat', chat_id: chatB, content: 'not held up' });
    const echoB = await client.waitFor((e) => e.type === 'user_message' && e.chat_id === chatB && e.content === 'not held up');
    const cleared = await client.waitFor((e) => e.type === 'history_cleared' && e.chat_id === chatA);
    expect(client.events.indexOf(echoB)).toBeLessThan(client.events.indexOf(cleared));
    expect(await client.waitForEnd((echoB as { query_id: string }).query_id)).toMatchObject({ type: 'result', success: true });
    await client.close();
  });

  it('handles every frame it read, also when the client closes the connection right after sending them', async () => {
    // Each message goes to a chat this socket does not follow yet: it subscribes first (a snapshot read), so the
    // later frames wait in hand while the client's close arrives. They were read: they are stored and answered.
    server = await startAgentServer({}, { store });
    const chats = await Promise.all(Array.from({ length: 5 }, () => createChat(server!.url)));
    const client = await TestClient.connect(server.wsUrl);
    for (const [i, chatId] of chats.entries()) client.send({ type: 'chat', chat_id: chatId, content: `sent before closing ${i}` });
    await client.close();
    for (const [i, chatId] of chats.entries()) {
      await until(async () => {
        const res = await fetch(`${server!.url}/api/chats/${chatId}/messages`);
        const messages = (await res.json()) as { role: string; content: string; status: string }[];
        return messages.some((m) => m.role === 'user' && m.content === `sent before closing ${i}`) &&
          messages.some((m) => m.role === 'assistant' && m.status === 'complete');
      }, `the message to chat ${i}, stored and answered`);
    }
  });

  it('drops a connection that stops answering pings', async () => {
    server = await startAgentServer({ WS_HEARTBEAT_MS: '1000' }, { store });
    const silent = await TestClient.connect(server.wsUrl, { autoPong: false });
    const alive = await TestClient.connect(server.wsUrl);
    const closedAt = await new Promise<number>((resolve) => silent.socket.once('close', () => resolve(Date.now())));
    expect(closedAt).toBeGreaterThan(0);
    expect(alive.socket.readyState).toBe(alive.socket.OPEN);
    await alive.close();
  });
});
