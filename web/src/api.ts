import type { Chat, ChatMessage } from '../../src/protocol/chat.js';
import type { ServiceInfo } from '../../src/protocol/rest.js';

/** The REST API, typed from the service's protocol. A 401 means the token is missing, wrong or revoked. */
export class AuthError extends Error {}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    detail: string,
  ) {
    super(detail);
  }
}

export class Api {
  constructor(
    private readonly token: () => string | null,
    private readonly onUnauthorized: () => void,
  ) {}

  private async request(path: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    const token = this.token();
    if (token) headers.set('authorization', `Bearer ${token}`);
    if (init.body !== undefined) headers.set('content-type', 'application/json');
    const res = await fetch(path, { ...init, headers });
    if (res.status === 401) {
      this.onUnauthorized();
      throw new AuthError('unauthorized');
    }
    if (!res.ok) {
      const detail = await res
        .json()
        .then((b: { detail?: string }) => b.detail ?? res.statusText)
        .catch(() => res.statusText);
      throw new ApiError(res.status, detail);
    }
    return res;
  }

  private async json<T>(path: string, init?: RequestInit): Promise<T> {
    return (await (await this.request(path, init)).json()) as T;
  }

  info = () => this.json<ServiceInfo>('/api/info');
  listChats = () => this.json<Chat[]>('/api/chats');
  searchChats = (q: string) => this.json<Chat[]>(`/api/chats/search?q=${encodeURIComponent(q)}`);
  createChat = (title?: string) =>
    this.json<Chat>('/api/chats', { method: 'POST', body: JSON.stringify(title ? { title } : {}) });
  renameChat = (id: string, title: string) =>
    this.json<Chat>(`/api/chats/${id}`, { method: 'PATCH', body: JSON.stringify({ title }) });
  deleteChat = (id: string) => this.json<{ success: true }>(`/api/chats/${id}`, { method: 'DELETE' });
  /** A JSON export (docs/export-format.md) back as a new chat; the file's text is sent as it is. */
  importChat = (exportJson: string) => this.json<Chat>('/api/chats/import', { method: 'POST', body: exportJson });

  /** The chat's export (GET /api/chats/{id}/export) and the file name the service proposes for it. */
  async exportChat(chatId: string, format: 'json' | 'markdown'): Promise<{ blob: Blob; fileName: string }> {
    const res = await this.request(`/api/chats/${chatId}/export?format=${format}`);
    const disposition = res.headers.get('content-disposition') ?? '';
    const utf8 = /filename\*=UTF-8''([^;]+)/.exec(disposition)?.[1];
    const ascii = /filename="([^"]+)"/.exec(disposition)?.[1];
    const fileName = utf8 ? decodeURIComponent(utf8) : (ascii ?? `chat.${format === 'json' ? 'json' : 'md'}`);
    return { blob: await res.blob(), fileName };
  }

  private images = new Map<string, Promise<string>>();

  /**
   * A stored image (GET /api/chats/{id}/images/{image_id}) as an object URL: fetched with the token in the
   * Authorization header, like every API call (never in the URL), once per page; the bytes never change.
   */
  imageObjectUrl = (path: string): Promise<string> => {
    let url = this.images.get(path);
    if (!url) {
      url = this.request(path)
        .then((res) => res.blob())
        .then((blob) => URL.createObjectURL(blob));
      url.catch(() => this.images.delete(path));
      this.images.set(path, url);
    }
    return url;
  };

  /** On sign-out: the images of the user who signed out are let go. */
  forgetImages(): void {
    for (const url of this.images.values()) void url.then((u) => URL.revokeObjectURL(u), () => undefined);
    this.images.clear();
  }

  /** The page of messages just before `beforeId`, oldest first, and whether older ones exist (X-Has-More). */
  async olderMessages(chatId: string, beforeId: string, limit = 100): Promise<{ messages: ChatMessage[]; hasMore: boolean }> {
    const res = await this.request(`/api/chats/${chatId}/messages?before=${encodeURIComponent(beforeId)}&limit=${limit}`);
    return { messages: (await res.json()) as ChatMessage[], hasMore: res.headers.get('x-has-more') === 'true' };
  }
}
