import type { FastifyBaseLogger } from 'fastify';
import type { Store } from '../store/store.js';
import type { ChatUpdates } from './chat-updates.js';
import { titleFromMessage } from './title.js';
import type { TitleModel } from './title-model.js';

/** How many named chats are remembered (about 100 bytes each). */
const KNOWN_TITLED_MAX = 50_000;

/**
 * Names chats and tells their owner's sockets: a chat without a title (source `default`) is named from its first
 * message at once; with TITLE_MODEL, the model's proposal replaces that after the first answer, in the background
 * (the answer is never delayed). A user's title (source `user`) is never replaced.
 */
export class ChatTitles {
  /** Chats whose title the model was asked for in this process: at most once each. */
  private readonly asked = new Set<string>();
  /**
   * Chats known to be named already: a title never goes back to `default`, so their later messages skip naming (a
   * title computed and a write that changes nothing, per message). Forgotten wholesale past KNOWN_TITLED_MAX, which
   * costs one such write per chat again.
   */
  private readonly titled = new Set<string>();

  constructor(
    private readonly store: Store,
    private readonly updates: ChatUpdates,
    private readonly model: TitleModel | undefined,
    private readonly log: FastifyBaseLogger,
  ) {}

  /** A user message was stored: name the chat if it has no title yet; either way its activity changed. */
  async userMessage(chatId: string, content: string): Promise<void> {
    if (!this.titled.has(chatId)) {
      const title = titleFromMessage(content);
      if (title) {
        await this.store.chats.setAutoTitle(chatId, title, 'message', ['default']);
        if (this.titled.size >= KNOWN_TITLED_MAX) this.titled.clear();
        this.titled.add(chatId);
      }
    }
    await this.publish(chatId);
  }

  /** An answer completed: with TITLE_MODEL, a chat still named from its first message gets the model's title. */
  answered(chatId: string, userText: string, answerText: string): void {
    if (!this.model || this.asked.has(chatId)) return;
    const model = this.model;
    void (async () => {
      const chat = await this.store.chats.get(chatId);
      if (chat?.title_source !== 'message') return;
      this.asked.add(chatId);
      const title = await model.propose(userText, answerText);
      if (!title) return;
      if (await this.store.chats.setAutoTitle(chatId, title, 'model', ['default', 'message'])) await this.publish(chatId);
    })().catch((err: unknown) => this.log.warn({ err, chat_id: chatId }, 'the title model failed: the chat keeps its title'));
  }

  private async publish(chatId: string): Promise<void> {
    const found = await this.store.chats.getWithOwner(chatId);
    if (found) this.updates.publish(found.ownerId, 'updated', found.chat);
  }
}
