import { isUnlimited, ownerScope, type Principal } from '../auth/principal.js';
import type { Chat, ChatMessage, ChatSettings, ChatSettingsPatch, PermissionRule, ToolUseRecord } from '../protocol/chat.js';
import { ChatSettingsError, checkSettings, mergeSettings, type ChatSettingsPolicy } from './chat-settings.js';
import type { NewChatExtras } from '../store/chats.repository.js';
import type { UsageReport } from '../protocol/rest.js';
import type { Store } from '../store/store.js';
import type { ChatUpdates } from './chat-updates.js';
import type { ChatExport } from '../protocol/export.js';
import type { ChatChannel } from '../chat-channel/chat-channel.js';
import { buildChatExport } from './chat-export.js';
import { prepareImport, type ImportLimits } from './chat-import.js';
import { buildForkContext } from './import-context.js';

/**
 * What the chat service needs from the chat runtime (through the chat channel): to stop a chat's agent before the
 * chat disappears, to tell a running agent that its chat's settings changed, and to give a fork's agent its
 * sessions.
 */
export type ChatAgents = Pick<ChatChannel, 'discard' | 'settingsChanged' | 'copyTranscripts'>;

/** The chat exists, the message named does not (in it). */
export class MessageNotFoundError extends Error {
  readonly statusCode = 404;
}

/** A message that cannot be forked at (a superseded answer, or one still being written): 409. */
export class ForkConflictError extends Error {
  readonly statusCode = 409;
}

/** The principal already has MAX_CHATS_PER_USER chats. */
export class ChatLimitError extends Error {
  readonly statusCode = 403;
  constructor(max: number) {
    super(`chat limit reached: at most ${max} chats per user; delete some to create more`);
    this.name = 'ChatLimitError';
  }
}

export interface ChatServiceOptions {
  /** Most chats one principal may own (0: no limit); local mode is never limited. */
  maxChatsPerUser?: number;
  /** What a chat's own settings may choose; without it any settings are accepted (tests of other parts). */
  settingsPolicy?: ChatSettingsPolicy;
  /** What an imported conversation is held to (the limits of live messages); no checks beyond the schema without. */
  importLimits?: ImportLimits;
}

/**
 * Chat lifecycle for the REST API; the agent side plugs in through ChatAgents. Every call acts for a principal
 * and sees only that principal's chats: another user's chat is indistinguishable from a chat that does not exist.
 */
export class ChatService {
  private readonly maxChats: number;
  private readonly policy: ChatSettingsPolicy | undefined;
  private readonly importLimits: ImportLimits;

  constructor(
    private readonly store: Store,
    private readonly agents: ChatAgents,
    private readonly updates: ChatUpdates,
    options: ChatServiceOptions = {},
  ) {
    this.maxChats = options.maxChatsPerUser ?? 0;
    this.policy = options.settingsPolicy;
    this.importLimits = options.importLimits ?? {
      images: { maxCount: Number.MAX_SAFE_INTEGER, maxBytes: Number.MAX_SAFE_INTEGER },
      maxMessageChars: Number.MAX_SAFE_INTEGER,
    };
  }

  /** The chat's whole conversation in the export format (docs/export-format.md); undefined when not the caller's. */
  async export(principal: Principal, id: string): Promise<ChatExport | undefined> {
    const chat = await this.get(principal, id);
    if (!chat) return undefined;
    return buildChatExport(chat, await this.store.transfer.transcript(id), new Date());
  }

  /**
   * An exported conversation as a new chat of the caller: checked like live input (ImportError), within the chat
   * quota (ChatLimitError), its settings within the operator's (ChatSettingsError), stored in one transaction. Its
   * usage is kept for its export but not counted here.
   */
  async import(principal: Principal, doc: ChatExport): Promise<Chat> {
    const data = prepareImport(doc, this.importLimits);
    // The file's settings are the chat's only within what this service allows, as if set with PATCH.
    if (this.policy && data.settings) {
      try {
        checkSettings(data.settings, this.policy);
      } catch (err) {
        if (err instanceof ChatSettingsError) {
          throw new ChatSettingsError(`chat.settings: ${err.message}; remove them from the file to import without them`);
        }
        throw err;
      }
    }
    const owner = ownerScope(principal);
    const max = isUnlimited(principal) ? 0 : this.maxChats;
    const chat = await this.store.transfer.importChat(owner, max, data);
    if (!chat) throw new ChatLimitError(this.maxChats);
    this.updates.publish(owner.userId, 'created', chat);
    return chat;
  }

  async create(principal: Principal, title?: string, extras: NewChatExtras = {}): Promise<Chat> {
    const owner = ownerScope(principal);
    const chat =
      this.maxChats === 0 || isUnlimited(principal)
        ? await this.store.chats.create(title, owner, extras)
        : await this.store.chats.createWithinLimit(title, owner, this.maxChats, extras);
    if (!chat) throw new ChatLimitError(this.maxChats);
    this.updates.publish(owner.userId, 'created', chat);
    return chat;
  }

  get(principal: Principal, id: string): Promise<Chat | undefined> {
    return this.store.chats.get(id, ownerScope(principal));
  }

  /** Whether the principal may use the chat (another user's chat is as absent as one that does not exist). */
  async canAccess(principal: Principal, id: string): Promise<boolean> {
    return (await this.get(principal, id)) !== undefined;
  }

  /** The chat with what it has cost so far. */
  async getWithUsage(principal: Principal, id: string): Promise<Chat | undefined> {
    const chat = await this.get(principal, id);
    return chat && { ...chat, usage: await this.store.usage.chatTotals(id) };
  }

  /** The principal's usage in a time range, grouped by chat or UTC day (deleted chats' spending included). */
  async usage(
    principal: Principal,
    range: { from?: string; to?: string },
    groupBy: 'chat' | 'day',
  ): Promise<UsageReport> {
    const groups = await this.store.usage.summary(ownerScope(principal).userId, range, groupBy);
    const total = { input_tokens: 0, output_tokens: 0, cost_usd: 0, queries: 0 };
    for (const g of groups) {
      total.input_tokens += g.input_tokens;
      total.output_tokens += g.output_tokens;
      total.cost_usd += g.cost_usd;
      total.queries += g.queries;
    }
    return { group_by: groupBy, from: range.from ?? null, to: range.to ?? null, total, groups };
  }

  /**
   * PATCH: the title and/or the chat's own settings (merged, `null` removes one). Settings beyond what the operator
   * allows are refused (ChatSettingsError) before anything is written. The chat's agent learns of new settings at
   * once: model and permission mode apply to a live agent, the rest at its next start (see AgentRegistry).
   */
  async update(
    principal: Principal,
    id: string,
    changes: { title?: string; settings?: ChatSettingsPatch },
  ): Promise<Chat | undefined> {
    const owner = ownerScope(principal);
    let chat = await this.store.chats.get(id, owner);
    if (!chat) return undefined;
    const patch = changes.settings;
    if (patch) {
      // Merged with what is stored at that moment, under the chat's lock: PATCHes on several nodes lose nothing.
      const changed = await this.store.chats.changeSettings(id, owner, (before) => {
        const after = mergeSettings(before, patch);
        if (this.policy) checkSettings(after, this.policy);
        return after;
      });
      if (!changed) return undefined;
      chat = changed.chat;
      await this.agents.settingsChanged(id, changed.before, changed.after);
    }
    if (changes.title !== undefined) {
      chat = await this.store.chats.rename(id, changes.title, owner);
      if (!chat) return undefined;
    }
    this.updates.publish(owner.userId, 'updated', chat);
    return chat;
  }

  /**
   * A new chat of the principal (MAX_CHATS_PER_USER applies) holding this chat's conversation up to and including
   * the message, whose agent continues from exactly that point of the model's context (the SDK session resumed at
   * that answer's last entry, as a new session). At an answer: the whole answer it belongs to is included. At a
   * user message: the question is included unanswered and the context ends at the answer before it; a `retry` in
   * the fork has it answered. Undefined when the chat or the message does not exist for this principal.
   */
  async fork(principal: Principal, chatId: string, messageId: string): Promise<Chat | undefined> {
    const source = await this.get(principal, chatId);
    if (!source) return undefined;
    const point = await this.store.forks.forkPoint(chatId, messageId);
    if (!point) throw new MessageNotFoundError(`message ${messageId} not found in chat ${chatId}`);
    if (point.superseded) throw new ForkConflictError('a superseded answer cannot be forked; fork at the answer that replaced it');
    if (point.running) throw new ForkConflictError('the answer is still being written; fork once it has ended');
    const context = await this.store.queries.contextAt(chatId, point.endPosition);
    const owner = ownerScope(principal);
    const chat = await this.create(principal, source.title, {
      ...(source.settings && Object.keys(source.settings).length > 0 ? { settings: source.settings } : {}),
      forkedFrom: source.id,
      sdkSessionId: context?.sessionId ?? null,
      resumeAt: context?.tailUuid ?? null,
    });
    try {
      const sessions = await this.store.forks.copyConversation(chatId, chat.id, point.endPosition);
      await this.agents.copyTranscripts(chatId, chat.id, sessions);
      if (!context) {
        // No agent session reaches this point (the conversation up to it was imported): the fork's first message
        // carries it to the model, as an imported chat's does (docs/export-format.md).
        const carried = buildForkContext((await this.store.transfer.transcript(chat.id)).entries);
        if (carried) await this.store.chats.setImportContext(chat.id, carried);
      }
    } catch (err) {
      await this.store.chats.delete(chat.id);
      this.updates.publish(owner.userId, 'deleted', null, chat.id);
      throw err;
    }
    return (await this.store.chats.get(chat.id)) ?? chat;
  }

  search(principal: Principal, text: string): Promise<Chat[]> {
    return this.store.chats.search(text.trim(), ownerScope(principal));
  }

  /**
   * A page of the chat's messages (see MessagesRepository.page). Undefined when the chat does not exist for this
   * principal; an unknown cursor is a ChatCursorError.
   */
  async messages(
    principal: Principal,
    id: string,
    page: { limit: number; before?: string; after?: string },
  ): Promise<{ messages: ChatMessage[]; hasMore: boolean } | undefined> {
    if (!(await this.get(principal, id))) return undefined;
    const result = await this.store.messages.page(id, page);
    if (!result) throw new ChatCursorError(`no message ${page.before ?? page.after} in this chat`);
    return result;
  }

  /** One image of the chat's messages; undefined when the chat (for this principal) or the image does not exist. */
  async image(principal: Principal, id: string, imageId: string): Promise<{ mediaType: string; data: Buffer } | undefined> {
    if (!(await this.get(principal, id))) return undefined;
    return this.store.messages.image(id, imageId);
  }

  /** One tool use of the chat with its whole output; undefined when the chat or the tool use does not exist. */
  async toolUse(principal: Principal, id: string, toolUseId: string): Promise<ToolUseRecord | undefined> {
    if (!(await this.get(principal, id))) return undefined;
    return this.store.toolUses.get(id, toolUseId);
  }

  /** The chat's remembered permission rules ("Allow for this chat"); undefined when the chat does not exist. */
  async permissionRules(principal: Principal, id: string): Promise<PermissionRule[] | undefined> {
    if (!(await this.get(principal, id))) return undefined;
    return this.store.permissionRules.list(id);
  }

  /**
   * Revokes one remembered rule: the next tool call it would have allowed asks again (the rule is read from the
   * store at each question, by every process). Undefined when the chat does not exist, false when the rule does not.
   */
  async revokePermissionRule(principal: Principal, id: string, ruleId: string): Promise<boolean | undefined> {
    if (!(await this.get(principal, id))) return undefined;
    return this.store.permissionRules.remove(id, ruleId);
  }

  /** A page of the principal's chats, newest activity first. */
  async listPage(principal: Principal, page: { limit: number; before?: string }): Promise<{ chats: Chat[]; hasMore: boolean }> {
    const result = await this.store.chats.page(ownerScope(principal), page);
    if (!result) throw new ChatCursorError(`no chat ${page.before} to page from`);
    return result;
  }

  /** Stops the chat's agent first, so nothing is written for the chat after its rows are gone. */
  async delete(principal: Principal, id: string): Promise<boolean> {
    if (!(await this.get(principal, id))) return false;
    await this.agents.discard(id);
    const deleted = await this.store.chats.delete(id, ownerScope(principal));
    if (deleted) this.updates.publish(ownerScope(principal).userId, 'deleted', null, id);
    return deleted;
  }
}

/** A paging cursor that names no message or chat of the caller's (a 400, not a 404: the chat itself exists). */
export class ChatCursorError extends Error {
  readonly statusCode = 400;
}
