import type { Chat, ImageInput } from '../../src/protocol/chat.js';
import type { ServiceInfo } from '../../src/protocol/rest.js';
import type { ClientCapability, ClientFrame, ServerEvent } from '../../src/protocol/ws.js';
import { Api, AuthError } from './api.js';
import { applyEvent, emptyView, type ChatView } from './chat-view.js';
import { Connection, type ConnectionState } from './connection.js';
import { t } from './i18n.js';
import { Outbox, type PendingMessage } from './outbox.js';
import { prependOlder } from './stored-items.js';
import { tokenStore } from './token-store.js';

export type AuthState =
  | { kind: 'checking' }
  | { kind: 'signed-in' }
  | { kind: 'signed-out'; message: string | null };

export interface AppState {
  auth: AuthState;
  info: ServiceInfo | null;
  chats: Chat[];
  search: string;
  searchResults: Chat[] | null;
  selectedId: string | null;
  views: Map<string, ChatView>;
  /** Messages sent and not yet echoed by the service, per chat (shown as "sending"). */
  pending: Map<string, readonly PendingMessage[]>;
  connection: ConnectionState;
  toast: string | null;
}

/** Events after which the chat list may have changed order or content. */
/**
 * Told on every subscribe and chat (docs/protocol.md, capabilities): this page answers permission prompts, and takes
 * images in `history` by reference (fetched with the token as it shows them: see Api.imageObjectUrl).
 */
const CAPABILITIES: ClientCapability[] = ['permission_prompts', 'image_urls'];

const LIST_POLL_MS = 20_000;

const LIST_EVENTS = new Set(['user_message', 'result', 'cancelled', 'error', 'history_cleared', 'chat_updated']);

/**
 * The page's state and everything that changes it: REST calls, the socket, and the views of the chats it follows.
 * Changes notify the renderer at most once per animation frame, so 100+ deltas a second cost one render a frame.
 */
export class AppStore {
  state: AppState = {
    auth: { kind: 'checking' },
    info: null,
    chats: [],
    search: '',
    searchResults: null,
    selectedId: null,
    views: new Map(),
    pending: new Map(),
    connection: { kind: 'connecting' },
    toast: null,
  };
  readonly api = new Api(() => tokenStore.get(), () => this.signOut(t.tokenRevoked));
  private connection: Connection | null = null;
  private listeners = new Set<() => void>();
  private frame = 0;
  private listTimer: ReturnType<typeof setTimeout> | null = null;
  private searchSeq = 0;
  /**
   * Bumped by every change this page makes to its list (create, import, rename, delete). A list fetched before such
   * a change may predate it in the service too, so its response is dropped instead of undoing the change on the
   * page (a renamed chat showing its old title, a deleted one coming back); another refresh follows.
   */
  private listVersion = 0;
  /** Window listeners and timers are installed once, not again after a sign-in. */
  private started = false;
  /** Chat messages until their echo; sent again after a reconnect when the service did not get them. */
  private readonly outbox = new Outbox({
    send: (frame) => this.connection?.send(frame) ?? false,
    chatFrame: (chatId, content, images, clientId) => ({
      type: 'chat',
      chat_id: chatId,
      content,
      client_id: clientId,
      capabilities: CAPABILITIES,
      ...(images.length > 0 ? { images } : {}),
    }),
    changed: () => this.set({ pending: this.outbox.all() }),
    setTimeout: (fn, ms) => setTimeout(fn, ms),
  });

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private set(patch: Partial<AppState>, { now = false } = {}): void {
    this.state = { ...this.state, ...patch };
    if (now) {
      // A chat's snapshot is shown in the task that receives it, not a frame later (on a busy machine that wait was
      // 40-150 ms of opening a long chat: BENCHMARKS.md); a frame already requested is dropped, this render has it all.
      if (this.frame) cancelAnimationFrame(this.frame);
      this.frame = 0;
      this.notify();
      return;
    }
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.notify();
    });
  }

  private notify(): void {
    for (const l of this.listeners) l();
  }

  // ------------------------------------------------------------------ start, auth

  async start(): Promise<void> {
    try {
      const info = await this.api.info();
      this.set({ info, auth: { kind: 'signed-in' } });
    } catch (err) {
      if (err instanceof AuthError) return; // signOut already showed the sign-in form
      this.set({ toast: t.loadFailed + String((err as Error).message), auth: { kind: 'signed-in' } });
    }
    this.connection = new Connection({
      url: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws/chat`,
      token: () => tokenStore.get(),
      onEvent: (e) => this.onEvent(e),
      onState: (connection) => {
        this.set({ connection });
        if (connection.kind === 'unauthorized') this.signOut(tokenStore.get() ? t.tokenRevoked : null);
      },
      resubscribe: () => this.resubscribeFrames(),
    });
    this.connection.start();
    await this.refreshChats();
    const fromUrl = /^\/c\/([0-9a-f-]{36})$/i.exec(location.pathname)?.[1];
    if (fromUrl) this.select(fromUrl, { replace: true });
    if (this.started) return;
    window.addEventListener('popstate', () => {
      const id = /^\/c\/([0-9a-f-]{36})$/i.exec(location.pathname)?.[1] ?? null;
      this.select(id, { fromHistory: true });
    });
    if (this.started) return;
    this.started = true;
    window.addEventListener('focus', () => this.scheduleListRefresh(0));
    // Chats created, renamed or deleted in another tab or device: the list is refreshed on the events of the chats
    // this page follows (and on `chat_updated`, which covers every chat of the user), and also every
    // LIST_POLL_MS while the page is visible, for changes to chats it does not follow.
    setInterval(() => {
      if (document.visibilityState === 'visible' && this.state.auth.kind === 'signed-in') this.scheduleListRefresh(0);
    }, LIST_POLL_MS);
  }

  async signIn(token: string, remember: boolean): Promise<string | null> {
    const res = await fetch('/api/info', { headers: { authorization: `Bearer ${token}` } });
    if (res.status === 401) return t.tokenRefused;
    if (!res.ok) return t.loadFailed + res.statusText;
    tokenStore.set(token, remember);
    this.set({ auth: { kind: 'checking' } });
    await this.start();
    return null;
  }

  signOut(message: string | null): void {
    tokenStore.clear();
    this.api.forgetImages();
    this.connection?.stop();
    this.connection = null;
    this.outbox.forget();
    this.set({
      auth: { kind: 'signed-out', message },
      chats: [],
      views: new Map(),
      selectedId: null,
      searchResults: null,
      search: '',
    });
    if (location.pathname !== '/') history.replaceState(null, '', '/');
  }

  get canSignOut(): boolean {
    return tokenStore.get() !== null;
  }

  // ------------------------------------------------------------------ chat list

  async refreshChats(): Promise<void> {
    const version = this.listVersion;
    try {
      const chats = await this.api.listChats();
      if (version !== this.listVersion) {
        this.scheduleListRefresh(0);
        return;
      }
      this.set({ chats });
    } catch (err) {
      if (!(err instanceof AuthError)) this.set({ toast: t.loadFailed + (err as Error).message });
    }
    if (this.state.search) void this.runSearch(this.state.search);
  }

  /** A change this page made to its list: lists fetched before it are dropped (see listVersion). */
  private changeList(patch: Partial<AppState> & Pick<AppState, 'chats'>): void {
    this.listVersion++;
    this.set(patch);
  }

  private scheduleListRefresh(delay = 400): void {
    if (this.listTimer) return;
    this.listTimer = setTimeout(() => {
      this.listTimer = null;
      void this.refreshChats();
    }, delay);
  }

  setSearch(q: string): void {
    this.set({ search: q });
    if (!q.trim()) {
      // A search still on its way answers a box that is now empty: its results must not replace the whole list.
      this.searchSeq++;
      this.set({ searchResults: null });
      return;
    }
    void this.runSearch(q);
  }

  private async runSearch(q: string): Promise<void> {
    const mine = ++this.searchSeq;
    try {
      const results = await this.api.searchChats(q.trim());
      if (mine === this.searchSeq) this.set({ searchResults: results });
    } catch {
      /* the list stays as it was */
    }
  }

  async newChat(title?: string): Promise<string | null> {
    try {
      const chat = await this.api.createChat(title);
      this.changeList({ chats: [chat, ...this.state.chats.filter((c) => c.id !== chat.id)], search: '', searchResults: null });
      this.select(chat.id);
      return chat.id;
    } catch (err) {
      if (!(err instanceof AuthError)) this.set({ toast: (err as Error).message });
      return null;
    }
  }

  /** Downloads the chat's export: fetched with the token (never in a URL), saved under the service's file name. */
  async exportChat(id: string, format: 'json' | 'markdown'): Promise<void> {
    try {
      const { blob, fileName } = await this.api.exportChat(id, format);
      const url = URL.createObjectURL(blob);
      const link = document.createElement('a');
      link.href = url;
      link.download = fileName;
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    } catch (err) {
      if (!(err instanceof AuthError)) this.set({ toast: (err as Error).message });
    }
  }

  /** A JSON export file as a new chat, which is then opened; the service's refusal is shown as it words it. */
  async importChat(file: File): Promise<string | null> {
    try {
      const chat = await this.api.importChat(await file.text());
      this.changeList({ chats: [chat, ...this.state.chats.filter((c) => c.id !== chat.id)], search: '', searchResults: null });
      this.select(chat.id);
      return chat.id;
    } catch (err) {
      if (!(err instanceof AuthError)) this.set({ toast: `${t.importFailed}${(err as Error).message}` });
      return null;
    }
  }

  async rename(id: string, title: string): Promise<void> {
    const trimmed = title.trim();
    if (!trimmed) return;
    try {
      const chat = await this.api.renameChat(id, trimmed);
      this.changeList({ chats: this.state.chats.map((c) => (c.id === id ? chat : c)) });
    } catch (err) {
      if (!(err instanceof AuthError)) this.set({ toast: (err as Error).message });
    }
  }

  async remove(id: string): Promise<void> {
    try {
      await this.api.deleteChat(id);
    } catch (err) {
      // Not deleted: the chat stays in the list, and the user reads why.
      if (!(err instanceof AuthError)) this.set({ toast: (err as Error).message });
      return;
    }
    const views = new Map(this.state.views);
    views.delete(id);
    this.outbox.forget(id);
    this.changeList({
      chats: this.state.chats.filter((c) => c.id !== id),
      searchResults: this.state.searchResults?.filter((c) => c.id !== id) ?? null,
      views,
    });
    if (this.state.selectedId === id) this.select(null);
  }

  // ------------------------------------------------------------------ one chat

  /**
   * Shows a chat. The socket stays subscribed to every chat opened on this page, so an answer running in another
   * chat keeps streaming into its view (and its list entry shows it is answering).
   */
  select(id: string | null, opts: { replace?: boolean; fromHistory?: boolean } = {}): void {
    if (id === this.state.selectedId) return;
    this.set({ selectedId: id });
    if (!opts.fromHistory) {
      const url = id ? `/c/${id}` : '/';
      if (opts.replace) history.replaceState(null, '', url);
      else history.pushState(null, '', url);
    }
    if (id && !this.state.views.has(id)) {
      this.putView(emptyView(id));
      this.connection?.send({ type: 'subscribe', chat_id: id, capabilities: CAPABILITIES });
    }
  }

  private putView(view: ChatView, opts?: { now?: boolean }): void {
    const views = new Map(this.state.views);
    views.set(view.chatId, view);
    this.set({ views }, opts);
  }

  /**
   * On every (re)connect. A chat with messages awaiting their echo gets its snapshot rather than a replay: the
   * outbox needs to know where the service's answer ends to tell which of them arrived (see Outbox).
   */
  private resubscribeFrames(): ClientFrame[] {
    this.outbox.reconnected();
    return [...this.state.views.values()].map((v) =>
      v.lastSeq !== null && v.loaded && !this.outbox.needsSnapshot(v.chatId)
        ? { type: 'subscribe', chat_id: v.chatId, last_seq: v.lastSeq, capabilities: CAPABILITIES }
        : { type: 'subscribe', chat_id: v.chatId, capabilities: CAPABILITIES },
    );
  }

  private onEvent(e: ServerEvent): void {
    if (e.type === 'connected') return;
    if (e.type === 'error' && !e.chat_id) {
      this.set({ toast: e.error });
      return;
    }
    const chatId = (e as { chat_id?: string }).chat_id;
    if (!chatId) return;
    if (LIST_EVENTS.has(e.type)) this.scheduleListRefresh();
    const view = this.state.views.get(chatId);
    if (!view) return;
    if (e.type === 'error' && !e.query_id) {
      // Not about an answer (a refused frame): the message is for the person who sent it. A refused chat message
      // was not stored: it is no longer pending.
      this.outbox.refused(chatId);
      if (e.code === 'not_found' && !view.loaded) {
        void this.remove(chatId);
        return;
      }
      this.set({ toast: e.error });
      return;
    }
    if (e.type === 'history') this.outbox.snapshot(chatId, e.messages);
    if (e.type === 'answer_retried') this.outbox.retried(chatId);
    // The echo settles the pending message; the images the user attached show with it (user_message has none).
    const next = applyEvent(view, e, {
      take: (content) => this.outbox.accept(chatId, content, e.type === 'user_message' ? e.client_id : undefined),
    });
    if (next !== view) this.putView(next, { now: e.type === 'history' });
  }

  /**
   * Sends a message (interrupting a running answer, as the protocol does); it stays pending until the service echoes
   * it. False when not connected.
   */
  send(chatId: string, content: string, images: ImageInput[]): boolean {
    if (!this.state.views.has(chatId)) this.putView(emptyView(chatId));
    const view = this.state.views.get(chatId)!;
    return this.outbox.send(chatId, content, images, view.loaded ? lastUserKey(view) : undefined);
  }

  /** Answers the chat's last question again; the new answer replaces the shown one when it starts (answer_retried). */
  retry(chatId: string): void {
    if (this.connection?.send({ type: 'retry', chat_id: chatId, capabilities: CAPABILITIES })) this.outbox.retrySent(chatId);
    else this.set({ toast: t.notConnected });
  }

  stop(chatId: string): void {
    this.connection?.send({ type: 'stop', chat_id: chatId });
  }

  answerPermission(chatId: string, requestId: string, allow: boolean, remember: boolean): void {
    this.connection?.send({
      type: 'permission_response',
      chat_id: chatId,
      request_id: requestId,
      allow,
      ...(remember ? { remember: true } : {}),
    });
    const view = this.state.views.get(chatId);
    if (view) this.putView({ ...view, prompts: view.prompts.filter((p) => p.requestId !== requestId) });
  }

  private loadingOlder = new Set<string>();

  async loadOlder(chatId: string): Promise<void> {
    const view = this.state.views.get(chatId);
    if (!view || !view.hasMore || !view.oldestMessageId || this.loadingOlder.has(chatId)) return;
    this.loadingOlder.add(chatId);
    try {
      const page = await this.api.olderMessages(chatId, view.oldestMessageId);
      const current = this.state.views.get(chatId);
      if (current) this.putView(prependOlder(current, page.messages, page.hasMore));
    } catch (err) {
      if (!(err instanceof AuthError)) this.set({ toast: t.loadFailed + (err as Error).message });
    } finally {
      this.loadingOlder.delete(chatId);
    }
  }

  isLoadingOlder(chatId: string): boolean {
    return this.loadingOlder.has(chatId);
  }

  dismissToast(): void {
    this.set({ toast: null });
  }

  showToast(message: string): void {
    this.set({ toast: message });
  }
}

/** The newest user message of the view (its key is the stored message's id), or null. */
function lastUserKey(view: ChatView): string | null {
  for (let i = view.items.length - 1; i >= 0; i--) if (view.items[i]!.kind === 'user') return view.items[i]!.key;
  return null;
}
