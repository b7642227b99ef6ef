/**
 * The baseline: the bare Claude Agent SDK, no service around it. Forked by the benchmark (IPC) so that its Node
 * process and its CLI children can be measured like the service's. Each session is one `query()` in
 * streaming-input mode with `includePartialMessages`, built with the same agent options and the SAME CLI
 * environment as the service's adapter (lib/agent-options.ts): the difference left is the service itself.
 */
import { query, type Options, type Query, type SDKUserMessage } from '@anthropic-ai/claude-agent-sdk';
import { AsyncQueue } from '../src/agent/async-queue.js';
import { BaselineAgents } from './lib/agent-options.js';
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

  /** The CLI is up and initialized (the SDK's initialize request answered). */
  async initialized(): Promise<void> {
    await this.query.initializationResult();
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

let agents: BaselineAgents | undefined;
const sessions = new Map<string, BareSession>();

function optionsFor(sid: string): Options {
  if (!agents) throw new Error('init first');
  return agents.optionsFor(sid);
}

async function handle(req: BareRequest): Promise<unknown> {
  switch (req.op) {
    case 'init':
      agents = new BaselineAgents(req.fakeUrl, req.dataDir, req.agentNice);
      return null;
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
    case 'open': {
      if (sessions.has(req.sid)) throw new Error(`session ${req.sid} is already open`);
      const session = new BareSession(optionsFor(req.sid));
      sessions.set(req.sid, session);
      // Resolves once the CLI has started and answered the SDK's initialize request, as a prewarmed agent has.
      await session.initialized();
      return null;
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
