import type { Chat } from '../protocol/chat.js';
import type { EventOf } from '../protocol/ws.js';
import { LoopTurns } from '../lib/loop-turns.js';

export type ChatChange = EventOf<'chat_updated'>['change'];

/** One `chat_updated` event and its JSON (serialized once for every socket that gets it). */
export interface ChatListUpdate {
  readonly event: EventOf<'chat_updated'>;
  readonly json: string;
}

/** A socket of one owner (`ownerId` null: a socket of local mode, which sees the chats without an owner). */
export interface ChatListListener {
  readonly ownerId: string | null;
  /** Several updates at once: the socket writes them in one go (still one frame each). */
  sendChatUpdates(updates: readonly ChatListUpdate[]): void;
}

/**
 * Tells every socket of a chat's owner that the chat list changed (a chat created, renamed, named automatically,
 * given settings, active, or deleted), whatever chat each socket follows, so chat lists update live. Not numbered
 * (`seq` belongs to one chat's stream): the event carries the whole chat, so the last one received wins.
 *
 * Every socket of the owner gets every update, so a burst (fifty chats starting an answer at once, each moved to
 * the top of the list) costs chats × sockets frames. Updates therefore go out together, on the next turn of the
 * event loop after the client frames already waiting for one (LoopTurns; the fifty frames of such a burst are
 * handled one per turn): each is serialized once, a later `updated` of a chat replaces one still waiting (the last
 * one wins anyway), and each socket writes its share in one system call.
 */
export class ChatUpdates {
  /** The sockets of each owner (a socket's owner never changes while it is open). */
  private readonly byOwner = new Map<string | null, Set<ChatListListener>>();
  /** Updates not sent yet, per owner, in the order published. */
  private readonly waiting = new Map<string | null, ChatListUpdate[]>();
  private flushing = false;

  constructor(private readonly turns: LoopTurns = new LoopTurns()) {}

  add(listener: ChatListListener): void {
    let sockets = this.byOwner.get(listener.ownerId);
    if (!sockets) this.byOwner.set(listener.ownerId, (sockets = new Set()));
    sockets.add(listener);
  }

  remove(listener: ChatListListener): void {
    const sockets = this.byOwner.get(listener.ownerId);
    if (sockets?.delete(listener) && sockets.size === 0) this.byOwner.delete(listener.ownerId);
  }

  publish(ownerId: string | null, change: ChatChange, chat: Chat | null, chatId: string = chat!.id): void {
    if (!this.byOwner.has(ownerId)) return;
    const event: EventOf<'chat_updated'> = { type: 'chat_updated', chat_id: chatId, change, chat };
    const update = { event, json: JSON.stringify(event) };
    let updates = this.waiting.get(ownerId);
    if (!updates) this.waiting.set(ownerId, (updates = []));
    const last = updates.findLastIndex((u) => u.event.chat_id === chatId);
    if (change === 'updated' && last >= 0 && updates[last]!.event.change === 'updated') updates[last] = update;
    else updates.push(update);
    if (this.flushing) return;
    this.flushing = true;
    void this.turns.take().then(() => this.flush());
  }

  private flush(): void {
    this.flushing = false;
    const waiting = [...this.waiting];
    this.waiting.clear();
    for (const [ownerId, updates] of waiting) {
      for (const socket of this.byOwner.get(ownerId) ?? []) socket.sendChatUpdates(updates);
    }
  }
}
