// End-to-end: the agents' session transcripts in the database (SESSION_STORE=database), through the real service, the
// real SDK and CLI against the fake model, on SQLite and Postgres: a chat's agent resumes with its full context
// wherever it starts, whatever that node's agent home holds; forks, export and import work; the rows go with the chat.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeModel, type FakeModel } from '../../fake-model/server.js';
import { chatAgentHome } from '../../src/agent/agent-home.js';
import { findAgentProcesses } from '../../src/agent/crash-recovery.js';
import { openDatabase, type Db } from '../../src/db/database.js';
import type { Chat } from '../../src/protocol/chat.js';
import { createChat, startAgentServer, type AgentTestServer } from '../helpers/agent-server.js';
import { api } from '../helpers/auth.js';
import { createTestDatabase, describeEachStore, makeTempDir, transcriptRows, type TestDatabase } from '../helpers/stores.js';
import { TestClient } from '../helpers/ws-client.js';
import { conversationOf, getMessages, modelRequestAnswering, until } from './support.js';

/** Sends `text` on a fresh socket, waits for its answer, and returns the conversation the model was sent for it. */
async function ask(node: AgentTestServer, chatId: string, text: string) {
  const client = await TestClient.connect(node.wsUrl);
  try {
    expect(await client.waitForEnd(await client.chat(chatId, text), 60_000)).toMatchObject({ type: 'result', success: true });
  } finally {
    await client.close();
  }
  await until(() => modelRequestAnswering(node, chatId, text) !== undefined, `the model request answering ${text}`);
  return conversationOf(modelRequestAnswering(node, chatId, text)!.body);
}

const turn = (text: string) => [
  { role: 'user', text },
  { role: 'assistant', text: `Echo: ${text}` },
];

/** The session transcript files the CLI left in the chat's agent home on that node. */
function localTranscripts(node: AgentTestServer, chatId: string): string[] {
  const projects = path.join(chatAgentHome(node.config.AGENT_HOME_DIR, chatId).configDir, 'projects');
  if (!fs.existsSync(projects)) return [];
  return (fs.readdirSync(projects, { recursive: true }) as string[]).filter((f) => f.endsWith('.jsonl'));
}


/** What the user typed in each user line of a session's stored transcript (tool results and CLI notes left out). */
async function userTexts(db: Db, chatId: string, sessionId: string): Promise<string[]> {
  const rows = await db
    .selectFrom('agent_transcript_entries')
    .select('entry')
    .where('chat_id', '=', chatId)
    .where('session_id', '=', sessionId)
    .where('subpath', '=', '')
    .orderBy('id')
    .execute();
  return rows.flatMap((row) => {
    const entry = JSON.parse(row.entry) as { type: string; isMeta?: boolean; message?: { content?: unknown } };
    if (entry.type !== 'user' || entry.isMeta) return [];
    const content = entry.message?.content;
    if (typeof content === 'string') return [content];
    const texts = Array.isArray(content) ? content.filter((b) => b?.type === 'text').map((b) => String(b.text)) : [];
    return texts.length > 0 ? [texts.join('\n')] : [];
  });
}

describeEachStore('agent transcripts in the database', (kind) => {
  let database: TestDatabase;
  let db: Db;
  let fake: FakeModel;
  let node: AgentTestServer;

  beforeAll(async () => {
    database = await createTestDatabase(kind);
    fake = await startFakeModel();
    node = await startAgentServer({ DATABASE_URL: database.url, SESSION_STORE: 'database' }, { fake });
    db = await openDatabase(database.target);
  });
  afterAll(async () => {
    await node?.close();
    await db?.destroy();
    await fake?.close();
    await database?.drop();
  });

  it("a chat's agent resumes with the full context after its process closed and its agent home is gone", async () => {
    const chatId = await createChat(node.url);
    expect(await ask(node, chatId, 'one')).toEqual([{ role: 'user', text: 'one' }]);
    expect(await ask(node, chatId, 'two')).toEqual([...turn('one'), { role: 'user', text: 'two' }]);
    expect(await transcriptRows(db, chatId)).toBeGreaterThan(0);

    // As if the chat moved to a node that never ran its agent: no process, no agent home.
    await node.app.agents.closeChat(chatId);
    fs.rmSync(chatAgentHome(node.config.AGENT_HOME_DIR, chatId).home, { recursive: true, force: true });
    expect(await ask(node, chatId, 'three')).toEqual([...turn('one'), ...turn('two'), { role: 'user', text: 'three' }]);
    // The session came from the database: the CLI resumed it from a temporary folder, not from the agent home.
    expect(localTranscripts(node, chatId)).toEqual([]);
    // Such an agent is still found as one of this node's (its CLAUDE_CONFIG_DIR is elsewhere, its HOME is not).
    const agents = await findAgentProcesses(node.config.AGENT_HOME_DIR);
    const resumeDir = `CLAUDE_CONFIG_DIR=${path.join(os.tmpdir(), 'claude-resume-')}`;
    const environ = (pid: number) => fs.readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0');
    const usedDirs = agents.flatMap((pid) => environ(pid).filter((entry) => entry.startsWith(resumeDir)));
    expect(usedDirs.length).toBeGreaterThan(0);
    // A confined agent saw that folder through a mount point in its own temp folder, removed once it exited; the
    // folder itself (a copy of the chat's transcript) is gone once the agent is closed.
    await node.app.agents.closeChat(chatId);
    for (const used of usedDirs) expect(fs.existsSync(used.slice('CLAUDE_CONFIG_DIR='.length))).toBe(false);
    await until(async () => (await findAgentProcesses(node.config.AGENT_HOME_DIR)).length === 0, 'no agent process left');
    const tmpDir = chatAgentHome(node.config.AGENT_HOME_DIR, chatId).tmpDir;
    expect(fs.readdirSync(tmpDir).filter((name) => name.startsWith('claude-resume-'))).toEqual([]);
  }, 240_000);

  it('another node, with its own agent home and workspace folder, answers a chat with its full context, and back', async () => {
    const other = await startAgentServer({ DATABASE_URL: database.url, SESSION_STORE: 'database' }, { fake });
    try {
      expect(other.config.AGENT_HOME_DIR).not.toBe(node.config.AGENT_HOME_DIR);
      expect(other.config.WORKSPACE_DIR).not.toBe(node.config.WORKSPACE_DIR);
      const chatId = await createChat(node.url);
      await ask(node, chatId, 'alpha');
      await ask(node, chatId, 'beta');
      await node.app.agents.closeChat(chatId);

      expect(await ask(other, chatId, 'gamma')).toEqual([...turn('alpha'), ...turn('beta'), { role: 'user', text: 'gamma' }]);
      await other.app.agents.closeChat(chatId);
      // Back on the first node, whose agent home still holds the transcript as its first process left it (without
      // gamma): the database is what it resumes from.
      expect(localTranscripts(node, chatId)).toHaveLength(1);
      expect(await ask(node, chatId, 'delta')).toEqual([...turn('alpha'), ...turn('beta'), ...turn('gamma'), { role: 'user', text: 'delta' }]);
    } finally {
      await other.close();
    }
  }, 240_000);

  it('a fork continues from its point with the transcripts in the database; export and import work', async () => {
    const chatId = await createChat(node.url, 'Forked in the database');
    await ask(node, chatId, 'first');
    await ask(node, chatId, 'second');
    const answer = (await getMessages(node, chatId)).find((m) => m.content === 'Echo: first')!;
    const forked = await api<Chat>(node.url, 'POST', `/api/chats/${chatId}/fork`, { json: { message_id: answer.id } });
    expect(forked.status).toBe(201);
    expect(await transcriptRows(db, forked.body.id)).toBeGreaterThan(0);

    // The fork's first answer continues the copied session as a new one, whose lines are stored as they are written:
    // while the answer still streams, the database already holds the new session with the forked context and the
    // question (what another node resumes if this one dies now).
    const slow = await TestClient.connect(node.wsUrl);
    const slowAsk = '/slow 60 100';
    const slowQuery = await slow.chat(forked.body.id, slowAsk);
    await slow.waitFor((e) => e.type === 'text_delta' && e.query_id === slowQuery, { timeoutMs: 60_000 });
    let newSession = '';
    // Whether the answer was still streaming is read in the same tick as the database read that found the session.
    let streamingWhenStored = false;
    await until(async () => {
      newSession = (await api<Chat>(node.url, 'GET', `/api/chats/${forked.body.id}`)).body.sdk_session_id ?? '';
      const stored = newSession !== forked.body.sdk_session_id && (await userTexts(db, forked.body.id, newSession)).includes(slowAsk);
      if (stored) streamingWhenStored = !slow.queryEvents(slowQuery).some((e) => e.type === 'result' || e.type === 'error' || e.type === 'cancelled');
      return stored;
    }, 'the new session in the database');
    expect(streamingWhenStored).toBe(true);
    expect(await userTexts(db, forked.body.id, newSession)).toEqual(['first', slowAsk]);
    expect(await slow.waitForEnd(slowQuery, 60_000)).toMatchObject({ type: 'result', success: true });
    await slow.close();
    const context = await ask(node, forked.body.id, 'third');
    expect(context.slice(0, 3)).toEqual([...turn('first'), { role: 'user', text: slowAsk }]);
    expect(context.slice(4)).toEqual([{ role: 'user', text: 'third' }]);

    const exported = await api<{ entries: unknown[] }>(node.url, 'GET', `/api/chats/${forked.body.id}/export?format=json`);
    expect(exported.status).toBe(200);
    expect(exported.body.entries).toHaveLength(6);
    const imported = await api<Chat>(node.url, 'POST', '/api/chats/import', { json: exported.body });
    expect(imported.status).toBe(201);
    // The imported conversation reaches the model once, with the first message; from then on the agent's session
    // holds it, in the database: the model still sees it after the chat's agent moved.
    const client = await TestClient.connect(node.wsUrl);
    const received = async () => {
      const query = await client.chat(imported.body.id, '/received');
      expect(await client.waitForEnd(query, 60_000)).toMatchObject({ type: 'result', success: true });
      return client.streamedText(query);
    };
    expect(await received()).toMatch(/<imported-conversation>[^]*\[user\] first[^]*\[assistant\] Echo: third[^]*<\/imported-conversation>/);
    await node.app.agents.closeChat(imported.body.id);
    fs.rmSync(chatAgentHome(node.config.AGENT_HOME_DIR, imported.body.id).home, { recursive: true, force: true });
    // The first turn (the preamble, then what the user typed) and its answer, then the new message.
    const later = await received();
    expect(later).toMatch(/\[assistant\] Echo: third[^]*<\/imported-conversation>\n+\/received\nassistant: Received:/);
    expect(later).toMatch(/\nuser: \/received$/);
    await client.close();
  }, 240_000);

  it("clear_history starts a new session without the chat's transcript rows; deleting the chat removes them", async () => {
    const chatId = await createChat(node.url);
    await ask(node, chatId, 'before the clear');
    expect(await transcriptRows(db, chatId)).toBeGreaterThan(0);

    const client = await TestClient.connect(node.wsUrl);
    const from = client.events.length;
    client.send({ type: 'clear_history', chat_id: chatId });
    await client.waitFor((e) => e.type === 'history_cleared' && e.chat_id === chatId, { from });
    await client.close();
    expect(await transcriptRows(db, chatId)).toBe(0);
    expect(await ask(node, chatId, 'after the clear')).toEqual([{ role: 'user', text: 'after the clear' }]);
    expect(await transcriptRows(db, chatId)).toBeGreaterThan(0);

    expect((await api(node.url, 'DELETE', `/api/chats/${chatId}`)).status).toBe(200);
    expect(await transcriptRows(db, chatId)).toBe(0);
  }, 240_000);
});

describe('agent transcripts in files (the default), and switching to the database', () => {
  let fake: FakeModel;
  beforeAll(async () => {
    fake = await startFakeModel();
  });
  afterAll(async () => {
    await fake?.close();
  });

  it("in files, a chat whose agent home is gone starts a new session without the earlier context", async () => {
    const node = await startAgentServer({}, { fake });
    try {
      const chatId = await createChat(node.url);
      await ask(node, chatId, 'kept on this node only');
      await node.app.agents.closeChat(chatId);
      fs.rmSync(chatAgentHome(node.config.AGENT_HOME_DIR, chatId).home, { recursive: true, force: true });
      expect(await ask(node, chatId, 'after the move')).toEqual([{ role: 'user', text: 'after the move' }]);
    } finally {
      await node.close();
    }
  }, 240_000);

  it("a node switched to the database copies a chat's transcript from its agent home when the chat next resumes", async () => {
    const dir = makeTempDir();
    const before = await startAgentServer({}, { fake, dir });
    const chatId = await createChat(before.url);
    try {
      await ask(before, chatId, 'said in files');
    } finally {
      await before.close();
    }
    const after = await startAgentServer({ SESSION_STORE: 'database' }, { fake, dir });
    try {
      expect(await ask(after, chatId, 'said in the database')).toEqual([...turn('said in files'), { role: 'user', text: 'said in the database' }]);
      // The copy is in the database now: the agent home is no longer needed.
      await after.app.agents.closeChat(chatId);
      fs.rmSync(chatAgentHome(after.config.AGENT_HOME_DIR, chatId).home, { recursive: true, force: true });
      expect(await ask(after, chatId, 'and again')).toEqual([
        ...turn('said in files'),
        ...turn('said in the database'),
        { role: 'user', text: 'and again' },
      ]);
    } finally {
      await after.close();
    }
  }, 240_000);
});
