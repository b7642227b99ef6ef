import type { ChatSubscriber } from '../agent/event-log.js';
import type { ChatSettings } from '../protocol/chat.js';
import type { ImageToStore } from '../store/messages.repository.js';

export type { ChatSubscriber, Delivery } from '../agent/event-log.js';

export interface SubscribeOptions {
  /** The last `seq` the subscriber has: only later events are replayed (none: the chat's state as a snapshot). */
  lastSeq?: number;
  /** Stored images are sent by reference (`image_urls` capability) instead of inline. */
  imageRefs?: boolean;
}

/**
 * What the transport (the WebSocket handler, and the REST side through the chat service) needs from the chat
 * runtime, and nothing more: the one seam between them. Every method names its chat; the caller has already
 * checked that the chat exists and that its principal may use it.
 *
 * Operations that queue on the chat (send, retry, stop, clear) return their promise at once, without waiting for
 * the chat's earlier operations: the caller keeps it and reads its next frame, and the operations of one chat
 * still run in the order they were called. A failure the client can act on rejects with a ChatError.
 *
 * LocalChatChannel (local-chat-channel.ts) is the implementation for one process: the chats' agents live here.
 * An implementation for several nodes goes beside it, with the same contract.
 */
export interface ChatChannel {
  /** Starts delivering the chat's events to `subscriber`: the state or the missed events first, then live ones. */
  subscribe(chatId: string, subscriber: ChatSubscriber, options?: SubscribeOptions): Promise<void>;
  /** Stops delivering; nothing if it was not subscribed. */
  unsubscribe(chatId: string, subscriber: ChatSubscriber): void;
  isSubscribed(chatId: string, subscriber: ChatSubscriber): boolean;
  /** A user message: stored, then answered. Resolves with the new query's id once it is under way. */
  send(chatId: string, content: string, images: ImageToStore[], clientId?: string): Promise<string>;
  /** Answers the chat's last user message again (the previous answer is kept, superseded). */
  retry(chatId: string): Promise<string>;
  /** Ends the running answer, if any (`cancelled`); resolves whether there was one. */
  stop(chatId: string): Promise<boolean>;
  /** The answer to a permission question; false when no such question is open (answered, expired, cancelled). */
  answerPermission(chatId: string, requestId: string, allow: boolean, remember?: boolean): Promise<boolean>;
  /** Removes the chat's messages and starts its agent afresh. */
  clear(chatId: string): Promise<void>;
  /** Starts the chat's agent ahead of its first message (best effort). */
  prewarm(chatId: string): Promise<void>;
  /** The chat is being deleted: its agent is stopped at once and what it kept on disk is removed. */
  discard(chatId: string): Promise<void>;
  /** The chat's settings changed: a running agent applies them. */
  settingsChanged(chatId: string, before: ChatSettings, after: ChatSettings): Promise<void>;
  /** Gives a fork's agent the SDK sessions of the chat it comes from; returns those with no transcript left. */
  copyTranscripts(fromChatId: string, toChatId: string, sessionIds: string[]): Promise<string[]>;
}
