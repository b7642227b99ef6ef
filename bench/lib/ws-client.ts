import WebSocket from 'ws';
import { parseStamps, wallNow, type DeltaArrival } from './clock.js';
import { withTimeout } from './util.js';

/** What one message (one query) looked like from a client: when it was sent, each delta's arrival, its end. */
export interface TurnRecord {
  /** Receiver clock (wallNow) just before the message left. */
  sendAt: number;
  arrivals: DeltaArrival[];
  /** Receiver clock at the terminal event. */
  endAt: number;
  end: 'result' | 'cancelled' | 'error';
  error?: string;
}

interface PendingTurn {
  sendAt: number;
  queryId?: string;
  arrivals: DeltaArrival[];
  resolve(record: TurnRecord): void;
  reject(err: Error): void;
}

type Frame = { type: string; chat_id?: string; query_id?: string; delta?: string; error?: string; code?: string };

/**
 * A minimal /ws/chat client for measuring: it takes the receive time FIRST, before parsing the frame (the frame
 * has arrived; parsing is the client's own cost), keeps only what the figures need, and allows one turn per chat
 * at a time. Not the test helper, so the tests can change it freely.
 */
export class BenchSocket {
  private readonly pending = new Map<string, PendingTurn>();
  /** Chats this socket follows without sending (follow()): every text delta of theirs that arrives. */
  private readonly followed = new Map<string, DeltaArrival[]>();
  private readonly waiters: { match: (f: Frame) => boolean; resolve: () => void; reject: (e: Error) => void; chatId?: string }[] = [];

  private constructor(private readonly socket: WebSocket) {
    socket.on('message', (data) => {
      const recv = wallNow();
      const frame = JSON.parse(data.toString()) as Frame;
      this.onFrame(frame, recv);
    });
    socket.on('close', () => this.failAll(new Error('the WebSocket closed')));
    socket.on('error', (err) => this.failAll(err));
  }

  static async connect(url: string, timeoutMs = 10_000): Promise<BenchSocket> {
    const socket = new WebSocket(url, { perMessageDeflate: false });
    const client = new BenchSocket(socket);
    const connected = client.waitFrame((f) => f.type === 'connected');
    connected.catch(() => undefined); // awaited below, after `open`; a close before that must not go unhandled
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        socket.once('open', () => resolve());
        socket.once('error', reject);
      }),
      timeoutMs,
      `WebSocket ${url} to open`,
    );
    await withTimeout(connected, timeoutMs, 'the `connected` greeting');
    return client;
  }

  /** Follows a chat (the state snapshot ends with `processing_state`). */
  async subscribe(chatId: string, timeoutMs = 10_000): Promise<void> {
    const done = this.waitFrame((f) => f.type === 'processing_state' && f.chat_id === chatId, chatId);
    this.socket.send(JSON.stringify({ type: 'subscribe', chat_id: chatId }));
    await withTimeout(done, timeoutMs, `subscribe to chat ${chatId}`);
  }

  /**
   * Follows a chat that another socket (possibly on another node) sends to: its text deltas are recorded as they
   * arrive; `arrivals(chatId)` hands them over and starts a new list.
   */
  async follow(chatId: string, timeoutMs = 10_000): Promise<void> {
    this.followed.set(chatId, []);
    await this.subscribe(chatId, timeoutMs);
  }

  arrivals(chatId: string): DeltaArrival[] {
    const got = this.followed.get(chatId) ?? [];
    this.followed.set(chatId, []);
    return got;
  }

  /** Sends one message and resolves at its terminal event (result, cancelled or error). */
  turn(chatId: string, content: string, timeoutMs: number): Promise<TurnRecord> {
    if (this.pending.has(chatId)) return Promise.reject(new Error(`chat ${chatId} already has a turn running`));
    const record = new Promise<TurnRecord>((resolve, reject) => {
      const sendAt = wallNow();
      this.pending.set(chatId, { sendAt, arrivals: [], resolve, reject });
      this.socket.send(JSON.stringify({ type: 'chat', chat_id: chatId, content }));
    });
    return withTimeout(record, timeoutMs, `the answer to "${content}" in chat ${chatId}`).finally(() =>
      this.pending.delete(chatId),
    );
  }

  /** Asks the service to stop the chat's running answer; its turn then ends `cancelled`. */
  stop(chatId: string): void {
    this.socket.send(JSON.stringify({ type: 'stop', chat_id: chatId }));
  }

  close(): void {
    this.socket.close();
  }

  /** Resolves on the first frame matching; rejects on an `error` frame about `chatId` (the service refused). */
  private waitFrame(match: (f: Frame) => boolean, chatId?: string): Promise<void> {
    return new Promise((resolve, reject) => this.waiters.push({ match, resolve, reject, ...(chatId ? { chatId } : {}) }));
  }

  private onFrame(frame: Frame, recv: number): void {
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const w = this.waiters[i]!;
      if (w.match(frame)) {
        this.waiters.splice(i, 1);
        w.resolve();
      } else if (frame.type === 'error' && w.chatId !== undefined && frame.chat_id === w.chatId) {
        this.waiters.splice(i, 1);
        w.reject(new Error(`service error ${frame.code ?? ''} for chat ${w.chatId}: ${frame.error ?? '(no message)'}`));
      }
    }
    if (frame.type === 'text_delta' && frame.chat_id !== undefined) this.followed.get(frame.chat_id)?.push({ recv, stamps: parseStamps(frame.delta ?? '') });
    const turn = frame.chat_id === undefined ? undefined : this.pending.get(frame.chat_id);
    if (!turn) return;
    switch (frame.type) {
      case 'user_message':
        turn.queryId ??= frame.query_id;
        return;
      case 'text_delta':
        if (frame.query_id === turn.queryId) turn.arrivals.push({ recv, stamps: parseStamps(frame.delta ?? '') });
        return;
      case 'result':
      case 'cancelled':
        if (frame.query_id === turn.queryId) {
          turn.resolve({ sendAt: turn.sendAt, arrivals: turn.arrivals, endAt: recv, end: frame.type });
        }
        return;
      case 'error':
        // With a query_id: the query failed. Without: the frame itself was refused (unknown chat, bad frame...).
        if (frame.query_id === undefined || frame.query_id === turn.queryId) {
          turn.reject(new Error(`service error ${frame.code ?? ''}: ${frame.error ?? '(no message)'}`));
        }
        return;
      default:
        return;
    }
  }

  private failAll(err: Error): void {
    for (const turn of this.pending.values()) turn.reject(err);
    this.pending.clear();
    for (const w of this.waiters.splice(0)) w.reject(err);
  }
}
