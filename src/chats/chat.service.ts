import type { Chat, ChatMessage } from '../protocol/chat.js';
import type { Store } from '../store/store.js';

/** What the chat service needs from the agent side: to stop a chat's agent before the chat disappears. */
export interface ChatAgents {
  discardChat(chatId: string): Promise<void>;
}

/** Chat lifecycle for the REST API; the agent side plugs in through ChatAgents. */
export class ChatService {
  constructor(
    private readonly store: Store,
    private readonly agents: ChatAgents,
  ) {}

  list(): Promise<Chat[]> {
    return this.store.chats.list();
  }

  create(title?: string): Promise<Chat> {
    return this.store.chats.create(title);
  }

  get(id: string): Promise<Chat | undefined> {
    return this.store.chats.get(id);
  }

  rename(id: string, title: string): Promise<Chat | undefined> {
    return this.store.chats.rename(id, title);
  }

  search(text: string): Promise<Chat[]> {
    return this.store.chats.search(text.trim());
  }

  /** Undefined when the chat does not exist (an empty chat answers []). */
  async messages(id: string): Promise<ChatMessage[] | undefined> {
    if (!(await this.store.chats.get(id))) return undefined;
    return this.store.messages.list(id);
  }

  /** Stops the chat's agent first, so nothing is written for the chat after its rows are gone. */
  async delete(id: string): Promise<boolean> {
    if (!(await this.store.chats.get(id))) return false;
    await this.agents.discardChat(id);
    return this.store.chats.delete(id);
  }
}
