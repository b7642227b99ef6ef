import type { Chat } from '../protocol/chat.js';
import type { EventOf } from '../protocol/ws.js';

export type ChatChange = EventOf<'chat_updated'>['change'];

/** A socket of one owner (`ownerId` null: a socket of local mode, which sees the chats without an owner). */
export interface ChatListListener {
  readonly ownerId: string | null;
  send(event: EventOf<'chat_updated'>): void;
}

/**
 * Tells every socket of a chat's owner that the chat list changed (a chat created, renamed, named automatically,
 * given settings, active, or deleted), whatever chat each socket follows, so chat lists update live. Not numbered
 * (`seq` belongs to one chat's stream): the event carries the whole chat, so the last one received wins.
 */
export class ChatUpdates {
  private readonly listeners = new Set<ChatListListener>();

  add(listener: ChatListListener): void {
    this.listeners.add(listener);
  }

  remove(listener: ChatListListener): void {
    this.listeners.delete(listener);
  }

  publish(ownerId: string | null, change: ChatChange, chat: Chat | null, chatId: string = chat!.id): void {
    const event: EventOf<'chat_updated'> = { type: 'chat_updated', chat_id: chatId, change, chat };
    for (const listener of this.listeners) {
      if (listener.ownerId === ownerId) listener.send(event);
    }
  }
}
