import type { HistoryMessage, ImageInput } from '../../src/protocol/chat.js';
import type { ClientFrame } from '../../src/protocol/ws.js';
import type { ImageRef } from './chat-view.js';

/**
 * A chat message the user sent that the service has not confirmed yet. The protocol (docs/protocol.md,
 * Reconnecting) counts a `chat` frame as accepted when its `user_message` echo arrives; a frame in flight when the
 * connection dropped may never have reached the service, and then the client sends it again.
 */
export interface PendingMessage {
  /** Local key, for rendering. */
  id: string;
  /**
   * The message's `client_id`: the same on every copy sent, so the service answers it once however often it goes
   * out, and its echo settles exactly this message.
   */
  clientId: string;
  content: string;
  images: ImageInput[];
  /** The connection (numbered from 1) it was last sent on; null: not sent yet (queued behind messages to resend). */
  sentOn: number | null;
  /**
   * Id of the newest stored user message the page knew when it sent this one (null: the chat had none): only user
   * messages after it can be this one's stored copy. Undefined while the page has not seen the chat's history.
   */
  after: string | null | undefined;
}

/**
 * After a reconnect, a message whose copy the snapshot does not hold waits this long before it is sent again: a
 * frame that did reach the old socket may still be on its way to being stored (the agent is starting), and its
 * echo, arriving meanwhile, settles it instead of a second copy. The snapshot has already shown it was not stored
 * by the time of the resubscribe; this only narrows the window in which it is being stored right then.
 */
export const RESEND_GRACE_MS = 1500;

/**
 * Which pending messages the chat's `history` holds: matched in order, by text, each among the user messages after
 * the one it followed when it was sent (a message cannot be stored before one the page already saw). Returns the
 * ones it does not hold, in order: not received, to be sent again. A message whose baseline is not in the history
 * (paged out, or the history was cleared) may match any user message.
 */
export function notInHistory(pending: readonly PendingMessage[], messages: readonly HistoryMessage[]): PendingMessage[] {
  const users = messages.filter((m) => m.role === 'user');
  const left: PendingMessage[] = [];
  let next = 0;
  for (const p of pending) {
    if (p.sentOn === null) {
      left.push(p);
      continue;
    }
    const base = p.after ? users.findIndex((u) => u.id === p.after) : -1;
    const from = Math.max(next, base + 1);
    const hit = users.findIndex((u, i) => i >= from && u.content === p.content);
    if (hit < 0) left.push(p);
    else next = hit + 1;
  }
  return left;
}

/** The id of a snapshot's newest user message: the baseline of messages sent after it. */
export function lastUserId(messages: readonly HistoryMessage[]): string | null {
  for (let i = messages.length - 1; i >= 0; i--) if (messages[i]!.role === 'user') return messages[i]!.id;
  return null;
}

export interface OutboxDeps {
  /** Sends on the current socket; false when it is not open. */
  send(frame: ClientFrame): boolean;
  chatFrame(chatId: string, content: string, images: ImageInput[], clientId: string): ClientFrame;
  /** The pending lists changed (the page shows them as "sending"). */
  changed(): void;
  setTimeout(fn: () => void, ms: number): unknown;
}

/**
 * Every chat message this page sent, until the service echoes it. After a reconnect, a chat with pending messages is
 * resubscribed without `last_seq`, so its state comes as a snapshot whose end is known (a replay has no end marker):
 * messages the snapshot holds are settled, the others are sent again, once each, in order, after RESEND_GRACE_MS;
 * messages the user sends meanwhile queue behind them.
 */
export class Outbox {
  private readonly byChat = new Map<string, PendingMessage[]>();
  /** Chats waiting for their post-reconnect snapshot, or for the resend after it. */
  private readonly resyncing = new Set<string>();
  /**
   * Per chat, the `chat` (pending id) and `retry` frames sent on this connection without an outcome yet: the
   * service answers a chat's frames in order, so a refusal (`error` without `query_id`) is about the oldest.
   */
  private readonly inFlight = new Map<string, string[]>();
  private connection = 0;
  private nextId = 0;

  constructor(private readonly deps: OutboxDeps) {}

  pending(chatId: string): readonly PendingMessage[] {
    return this.byChat.get(chatId) ?? [];
  }

  all(): Map<string, readonly PendingMessage[]> {
    return new Map(this.byChat);
  }

  /** Sends a message, or queues it behind ones to resend; false when it could not go (the socket is not open). */
  send(chatId: string, content: string, images: ImageInput[], after: string | null | undefined): boolean {
    let entry: PendingMessage = { id: `pending:${++this.nextId}`, clientId: newClientId(), content, images, sentOn: null, after };
    if (!this.resyncing.has(chatId)) {
      if (!this.deps.send(this.deps.chatFrame(chatId, content, images, entry.clientId))) return false;
      entry = this.sent(chatId, entry);
    }
    this.byChat.set(chatId, [...this.pending(chatId), entry]);
    this.deps.changed();
    return true;
  }

  /** A `retry` frame went out: its refusal, if any, is not about a pending message. */
  retrySent(chatId: string): void {
    this.inFlight.set(chatId, [...(this.inFlight.get(chatId) ?? []), 'retry']);
  }

  /** A new connection is open: every chat with pending messages waits for its snapshot (needsSnapshot). */
  reconnected(): void {
    this.connection++;
    this.inFlight.clear();
    this.resyncing.clear();
    for (const [chatId, list] of this.byChat) if (list.length > 0) this.resyncing.add(chatId);
  }

  needsSnapshot(chatId: string): boolean {
    return this.resyncing.has(chatId);
  }

  /**
   * A `user_message` echo: settles the message with its `client_id` (an echo without one, e.g. of a message another
   * client sent: the oldest sent message with that text); its images, to show with the echo.
   */
  accept(chatId: string, content: string, clientId?: string): ImageRef[] {
    const list = this.pending(chatId);
    const entry = clientId
      ? list.find((p) => p.clientId === clientId)
      : list.find((p) => p.sentOn !== null && p.content === content);
    if (!entry) return [];
    this.drop(chatId, entry.id);
    return entry.images.map((i) => ({ src: `data:${i.media_type};base64,${i.base64}` }));
  }

  /** An `answer_retried`: the oldest retry of this connection was carried out. */
  retried(chatId: string): void {
    const flights = this.inFlight.get(chatId);
    const i = flights?.indexOf('retry') ?? -1;
    if (flights && i >= 0) flights.splice(i, 1);
  }

  /** A frame of this chat was refused (nothing stored): when it was a pending message, that message is dropped. */
  refused(chatId: string): void {
    const head = this.inFlight.get(chatId)?.shift();
    if (head && head !== 'retry') this.drop(chatId, head);
  }

  /**
   * The chat's `history`. Pending messages that did not know their baseline take its newest user message. After a
   * reconnect it is the snapshot the outbox waited for: what it holds is settled, the rest is sent again shortly.
   */
  snapshot(chatId: string, messages: readonly HistoryMessage[]): void {
    const list = this.pending(chatId);
    if (list.length === 0) {
      this.resyncing.delete(chatId);
      return;
    }
    const base = lastUserId(messages);
    if (!this.resyncing.has(chatId)) {
      this.byChat.set(chatId, list.map((p) => (p.after === undefined ? { ...p, after: base } : p)));
      return;
    }
    const left = notInHistory(list, messages).map((p) => ({ ...p, after: base }));
    this.byChat.set(chatId, left);
    this.deps.changed();
    const connection = this.connection;
    this.deps.setTimeout(() => this.resend(chatId, connection), RESEND_GRACE_MS);
  }

  /** Sends what is still pending, in order; nothing when the connection changed meanwhile (its own snapshot decides). */
  private resend(chatId: string, connection: number): void {
    if (connection !== this.connection || !this.resyncing.has(chatId)) return;
    this.resyncing.delete(chatId);
    const list = this.pending(chatId).map((p) => {
      if (p.sentOn === this.connection) return p;
      return this.deps.send(this.deps.chatFrame(chatId, p.content, p.images, p.clientId)) ? this.sent(chatId, p) : p;
    });
    this.byChat.set(chatId, list);
    this.deps.changed();
  }

  /** The chat is gone from this page (deleted, or signed out): its pending messages go with it. */
  forget(chatId?: string): void {
    if (chatId === undefined) {
      this.byChat.clear();
      this.resyncing.clear();
      this.inFlight.clear();
    } else {
      this.byChat.delete(chatId);
      this.resyncing.delete(chatId);
      this.inFlight.delete(chatId);
    }
    this.deps.changed();
  }

  private sent(chatId: string, entry: PendingMessage): PendingMessage {
    this.inFlight.set(chatId, [...(this.inFlight.get(chatId) ?? []), entry.id]);
    return { ...entry, sentOn: this.connection };
  }

  private drop(chatId: string, id: string): void {
    const list = this.pending(chatId).filter((p) => p.id !== id);
    if (list.length > 0) this.byChat.set(chatId, list);
    else this.byChat.delete(chatId);
    const flights = this.inFlight.get(chatId);
    const i = flights?.indexOf(id) ?? -1;
    if (flights && i >= 0) flights.splice(i, 1);
    this.deps.changed();
  }
}

/** A random id (UUID v4 form). crypto.randomUUID needs a secure context; getRandomValues works on plain http too. */
export function newClientId(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
