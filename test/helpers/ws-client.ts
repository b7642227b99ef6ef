import WebSocket from 'ws';
import type { ServerEvent } from '../../src/protocol/ws.js';

type Predicate = (event: ServerEvent) => boolean;

/**
 * A real WebSocket client that records every event it receives and can wait for the one matching a predicate.
 * `events` keeps everything in arrival order, so tests can check ordering invariants afterwards.
 */
export class TestClient {
  readonly events: ServerEvent[] = [];
  private waiters: { predicate: Predicate; resolve: (e: ServerEvent) => void }[] = [];

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data) => {
      const event = JSON.parse(data.toString()) as ServerEvent;
      this.events.push(event);
      this.waiters = this.waiters.filter((w) => {
        if (!w.predicate(event)) return true;
        w.resolve(event);
        return false;
      });
    });
  }

  static async connect(url: string, options?: WebSocket.ClientOptions): Promise<TestClient> {
    const socket = new WebSocket(url, options);
    const client = new TestClient(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    await client.waitFor((e) => e.type === 'connected');
    return client;
  }

  send(frame: unknown): void {
    this.socket.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** Resolves with the first event (already received or future) matching the predicate, after `from` events. */
  waitFor(predicate: Predicate, { timeoutMs = 20_000, from = 0 } = {}): Promise<ServerEvent> {
    const seen = this.events.slice(from).find(predicate);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done);
        reject(new Error(`timed out waiting for an event; got: ${this.events.map((e) => e.type).join(',')}`));
      }, timeoutMs);
      const done = (e: ServerEvent) => {
        clearTimeout(timer);
        resolve(e);
      };
      this.waiters.push({ predicate, resolve: done });
    });
  }

  /** Waits for the terminal event (result / cancelled / error) of a query. */
  waitForEnd(queryId: string, timeoutMs = 30_000): Promise<ServerEvent> {
    return this.waitFor(
      (e) => (e.type === 'result' || e.type === 'cancelled' || e.type === 'error') && 'query_id' in e && e.query_id === queryId,
      { timeoutMs },
    );
  }

  /** Sends a chat message and resolves with the query id from the `user_message` echo. */
  async chat(chatId: string, content: string, images?: { base64: string; media_type: string }[]): Promise<string> {
    const from = this.events.length;
    this.send({ type: 'chat', chat_id: chatId, content, ...(images ? { images } : {}) });
    const echo = await this.waitFor((e) => e.type === 'user_message' && e.chat_id === chatId && e.content === content, { from });
    return (echo as Extract<ServerEvent, { type: 'user_message' }>).query_id;
  }

  /** Events of one query, in arrival order. */
  queryEvents(queryId: string): ServerEvent[] {
    return this.events.filter((e) => 'query_id' in e && e.query_id === queryId);
  }

  /** The text a client would show for a query: its deltas and whole messages concatenated. */
  streamedText(queryId: string): string {
    return this.queryEvents(queryId)
      .map((e) => (e.type === 'text_delta' ? e.delta : e.type === 'assistant_message' ? e.content : ''))
      .join('');
  }

  async close(): Promise<void> {
    if (this.socket.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      this.socket.once('close', () => resolve());
      this.socket.close();
    });
  }
}
