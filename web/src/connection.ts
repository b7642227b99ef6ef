import type { ClientFrame, ServerEvent } from '../../src/protocol/ws.js';

export type ConnectionState =
  | { kind: 'connecting' }
  | { kind: 'open' }
  | { kind: 'waiting'; retryAt: number }
  | { kind: 'unauthorized' };

/** Close codes the service uses: 4401 no/invalid/revoked credentials, 4403 forbidden origin or host. */
const CLOSE_UNAUTHORIZED = 4401;

const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 10_000;

export interface ConnectionOptions {
  url: string;
  token: () => string | null;
  onEvent: (event: ServerEvent) => void;
  onState: (state: ConnectionState) => void;
  /** Frames to send right after (re)connecting: the subscriptions, each with the last `seq` seen. */
  resubscribe: () => ClientFrame[];
}

/**
 * The one WebSocket to /ws/chat: reconnects with exponential backoff (0.5 s doubling to 10 s, with jitter) and
 * re-subscribes every followed chat with its `last_seq`, so the service replays exactly the missed events (see
 * docs/protocol.md, Reconnecting). The token travels in the subprotocol list, never in the URL.
 */
export class Connection {
  private ws: WebSocket | null = null;
  private attempt = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private stopped = false;
  state: ConnectionState = { kind: 'connecting' };

  constructor(private readonly options: ConnectionOptions) {}

  start(): void {
    this.stopped = false;
    this.open();
    window.addEventListener('online', this.retryNow);
  }

  stop(): void {
    this.stopped = true;
    window.removeEventListener('online', this.retryNow);
    if (this.timer) clearTimeout(this.timer);
    this.ws?.close(1000);
    this.ws = null;
  }

  get isOpen(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  /** Sends when open; false otherwise (the caller tells the user instead of queueing a message silently). */
  send(frame: ClientFrame): boolean {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  private setState(state: ConnectionState): void {
    this.state = state;
    this.options.onState(state);
  }

  private readonly retryNow = (): void => {
    if (this.state.kind !== 'waiting') return;
    if (this.timer) clearTimeout(this.timer);
    this.open();
  };

  private open(): void {
    if (this.stopped) return;
    this.setState({ kind: 'connecting' });
    const token = this.options.token();
    const ws = token ? new WebSocket(this.options.url, ['agent-chat', `bearer.${token}`]) : new WebSocket(this.options.url);
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      this.setState({ kind: 'open' });
      for (const frame of this.options.resubscribe()) ws.send(JSON.stringify(frame));
    };
    ws.onmessage = (msg) => {
      if (typeof msg.data !== 'string') return;
      let event: ServerEvent;
      try {
        event = JSON.parse(msg.data) as ServerEvent;
      } catch {
        return;
      }
      this.options.onEvent(event);
    };
    ws.onclose = (e) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) return;
      if (e.code === CLOSE_UNAUTHORIZED) {
        this.setState({ kind: 'unauthorized' });
        return;
      }
      const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** this.attempt) * (0.8 + Math.random() * 0.4);
      this.attempt++;
      this.setState({ kind: 'waiting', retryAt: Date.now() + delay });
      this.timer = setTimeout(() => this.open(), delay);
    };
  }
}
