import type { AgentRegistry } from '../agent/agent-registry.js';
import type { ChatSettings } from '../protocol/chat.js';
import type { ImageToStore } from '../store/messages.repository.js';
import type { ChatChannel, ChatSubscriber, SubscribeOptions } from './chat-channel.js';

/**
 * The chat channel of one process: every chat's session, and its agent, lives in this process's AgentRegistry.
 * Operations go straight to the chat's ChatSession, which queues them on the chat's operation lock.
 */
export class LocalChatChannel implements ChatChannel {
  constructor(private readonly agents: AgentRegistry) {}

  subscribe(chatId: string, subscriber: ChatSubscriber, { lastSeq, imageRefs = false }: SubscribeOptions = {}): Promise<void> {
    return this.agents.get(chatId).subscribe(subscriber, lastSeq, { imageRefs });
  }

  unsubscribe(chatId: string, subscriber: ChatSubscriber): void {
    // peek, not get: a chat without a session has no subscribers, and unsubscribing must not create one.
    this.agents.peek(chatId)?.unsubscribe(subscriber);
  }

  isSubscribed(chatId: string, subscriber: ChatSubscriber): boolean {
    return this.agents.peek(chatId)?.isSubscribed(subscriber) ?? false;
  }

  send(chatId: string, content: string, images: ImageToStore[], clientId?: string): Promise<string> {
    return this.agents.get(chatId).send(content, images, clientId);
  }

  retry(chatId: string): Promise<string> {
    return this.agents.get(chatId).retry();
  }

  stop(chatId: string): Promise<boolean> {
    return this.agents.get(chatId).stop();
  }

  async answerPermission(chatId: string, requestId: string, allow: boolean, remember?: boolean): Promise<boolean> {
    return this.agents.get(chatId).answerPermission(requestId, allow, remember);
  }

  clear(chatId: string): Promise<void> {
    return this.agents.get(chatId).clear();
  }

  prewarm(chatId: string): Promise<void> {
    return this.agents.get(chatId).prewarm();
  }

  discard(chatId: string): Promise<void> {
    return this.agents.discardChat(chatId);
  }

  settingsChanged(chatId: string, before: ChatSettings, after: ChatSettings): Promise<void> {
    return this.agents.settingsChanged(chatId, before, after);
  }

  copyTranscripts(fromChatId: string, toChatId: string, sessionIds: string[]): Promise<string[]> {
    return this.agents.copyTranscripts(fromChatId, toChatId, sessionIds);
  }
}
