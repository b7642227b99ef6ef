/**
 * The baseline: the bare Claude Agent SDK, no service around it. Forked by the benchmark (IPC) so that its Node
 * process and its CLI children can be measured like the service's. Each session is one `query()` in
 * streaming-input mode with `includePartialMessages`, built with the same agent options and the SAME CLI
 * environment as the service's adapter (src/agent/sdk-connection.ts, src/agent/agent-env.ts): the difference left is
 * the service itself.
 */
import fs from 'node:fs';
import path from 'node:path';
import { query, type Options, type Query, type SDKUserMessage } from '@anthropic-ai/claude-agent-sdk';
import { buildAgentEnv } from '../src/agent/agent-env.js';
import { AsyncQueue } from '../src/agent/async-queue.js';
import { loadConfig, type Config } from '../src/config/config.js';
import type { BareAnswer, BareRequest, BareTurn } from './lib/bare-protocol.js';
import { clockOffsetMs, parseStamps, wallNow, type DeltaArrival } from './lib/clock.js';

interface Pending {
  sendAt: number;
  arrivals: DeltaArrival[];
  resolve(turn: BareTurn): void;
  reject(err: Error): void;
}

class BareSession {
  private readonly input = new AsyncQueue<SDKUserMessage>();
  private readonly query: Query;
  private pending: Pending | undefined;
  private closed = false;
  readonly ended: Promise<void>;

  constructor(options: Options) {
    this.query = query({ prompt: this.input, options });
    this.ended = this.pump();
  }

  private async pump(): Promise<void> {
    try {
      for await (const message of this.query) {
        // The bare equivalent of a WebSocket client's receive time: the SDK hands the message to the app.
        const recv = wallNow();
        const turn = this.pending;
        if (!turn) continue;
        if (message.type === 'stream_event' && message.parent_tool_use_id === null) {
          const event = message.event as { type: string; delta?: { type: string; text?: string } };
          if (event.type === 'content_block_delta' && event.delta?.type === 'text_delta') {
            turn.arrivals.push({ recv, stamps: parseStamps(event.delta.text ?? '') });
          }
        } else if (message.type === 'result') {
          this.pending = undefined;
          if (message.subtype === 'success' && !message.is_error) {
            turn.resolve({ sendAt: turn.sendAt, arrivals: turn.arrivals, endAt: recv, end: 'result' });
          } else {
            turn.reject(new Error(`bare SDK turn failed: ${message.subtype}`));
          }
        }
      }
    } catch (err) {
      if (!this.closed) this.pending?.reject(err instanceof Error ? err : new Error(String(err)));
    }
    this.pending?.reject(new Error('the bare SDK session ended during a turn'));
    this.pending = undefined;
  }

  /** Pushes a user message; `sendAt` is taken by the caller (before query() for a cold session). */
  turn(text: string, sendAt: number): Promise<BareTurn> {
    if (this.pending) return Promise.reject(new Error('a turn is already running'));
    const done = new Promise<BareTurn>((resolve, reject) => {
      this.pending = { sendAt, arrivals: [], resolve, reject };
    });
    this.input.push({ type: 'user', parent_tool_use_id: null, message: { role: 'user', content: [{ type: 'text', text }] } });
    return done;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.input.end();
    this.query.close();
  }
}

let config: Config | undefined;
let dataDir = '';
const sessions = new Map<string, BareSession>();

function optionsFor(sid: string): Options {
  if (!config) throw new Error('init first');
  const cwd = path.join(dataDir, 'workspaces', sid);
  fs.mkdirSync(cwd, { recursive: true });
  // The agent configuration src/agent/sdk-connection.ts passes (no resume: these sessions are new). Not copied:
  // the service's own process spawner (process groups, so tools die with their agent) and its canUseTool hook
  // (never called in bypassPermissions mode): they belong to the service, so their cost counts as the service's.
  return {
    cwd,
    env: buildAgentEnv(config, process.getuid?.() === 0),
    systemPrompt: config.SYSTEM_PROMPT,
    maxTurns: config.MAX_TURNS,
    allowedTools: [...config.ALLOWED_TOOLS],
    permissionMode: config.PERMISSION_MODE,
    allowDangerouslySkipPermissions: config.PERMISSION_MODE === 'bypassPermissions',
    settingSources: [],
    includePartialMessages: true,
  };
}

async function handle(req: BareRequest): Promise<unknown> {
  switch (req.op) {
    case 'init': {
      dataDir = req.dataDir;
      config = loadConfig({
        DATABASE_URL: 'sqlite::memory:',
        WORKSPACE_DIR: path.join(dataDir, 'workspaces'),
        AGENT_HOME_DIR: path.join(dataDir, 'agent-home'),
        ANTHROPIC_BASE_URL: req.fakeUrl,
        ANTHROPIC_API_KEY: 'bench-key-for-the-fake-model',
        PERMISSION_MODE: 'bypassPermissions',
        AGENT_MAX_RETRIES: '0',
        PATH: process.env.PATH,
      });
      // The service creates these at start-up (app.ts); the CLI needs its TMPDIR to exist.
      for (const dir of [config.WORKSPACE_DIR, config.AGENT_HOME_DIR, path.join(config.AGENT_HOME_DIR, 'tmp')]) {
        fs.mkdirSync(dir, { recursive: true });
      }
      return null;
    }
    case 'clock':
      return clockOffsetMs();
    case 'turn': {
      const sendAt = wallNow();
      let session = sessions.get(req.sid);
      if (req.open) {
        if (session) throw new Error(`session ${req.sid} is already open`);
        session = new BareSession(optionsFor(req.sid));
        sessions.set(req.sid, session);
      }
      if (!session) throw new Error(`no session ${req.sid}`);
      const turn = session.turn(req.text, sendAt);
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`bare turn "${req.text}" timed out after ${req.timeoutMs} ms`)), req.timeoutMs);
      });
      try {
        return await Promise.race([turn, timeout]);
      } finally {
        clearTimeout(timer);
      }
    }
    case 'close':
      sessions.get(req.sid)?.close();
      sessions.delete(req.sid);
      return null;
    case 'closeAll':
      for (const s of sessions.values()) s.close();
      sessions.clear();
      return null;
  }
}

process.on('message', (msg: { id: number } & BareRequest) => {
  handle(msg).then(
    (value) => process.send?.({ id: msg.id, ok: true, value } satisfies BareAnswer),
    (err: unknown) =>
      process.send?.({ id: msg.id, ok: false, error: err instanceof Error ? err.message : String(err) } satisfies BareAnswer),
  );
});
// The benchmark owns this process: when it goes away (IPC closed), close the CLIs and leave.
process.on('disconnect', () => {
  for (const s of sessions.values()) s.close();
  setTimeout(() => process.exit(0), 3_000).unref();
});
// A rejected interrupt/close after the end must not kill the worker mid-run; the benchmark sees the failed turn.
process.on('unhandledRejection', (err) => process.stderr.write(`bare worker: unhandled rejection: ${String(err)}\n`));
