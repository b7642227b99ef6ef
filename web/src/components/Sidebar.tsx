import { memo } from 'preact/compat';
import { useEffect, useRef, useState } from 'preact/hooks';
import type { Chat } from '../../../src/protocol/chat.js';
import { names, t } from '../i18n.js';
import type { AppState, AppStore } from '../store.js';
import { IconLogout, IconPencil, IconPlus, IconSearch, IconTrash, IconUpload } from './icons.js';

export function Sidebar({ store, state, onNavigate }: { store: AppStore; state: AppState; onNavigate: () => void }) {
  const list = state.searchResults ?? state.chats;
  return (
    <aside class="sidebar" aria-label={t.menu}>
      <div class="sidebar-head">
        <div class="brand">
          <img src="/favicon.svg" alt="" width={26} height={26} />
          <span>{t.appName}</span>
        </div>
        <button
          class="new-chat"
          aria-label={names.newChat}
          title={t.newChat}
          onClick={async () => {
            await store.newChat();
            onNavigate();
          }}
        >
          <IconPlus />
          <span>{t.newChat}</span>
        </button>
        <label class="search">
          <IconSearch />
          <input
            type="search"
            aria-label={names.searchChats}
            placeholder={t.searchChats}
            value={state.search}
            onInput={(e) => store.setSearch((e.target as HTMLInputElement).value)}
          />
        </label>
      </div>
      <nav class="chat-list" aria-label="Chats">
        {list.length === 0 && <p class="empty-list">{state.searchResults ? t.noMatches : t.noChats}</p>}
        <ul>
          {list.map((chat) => (
            <ChatRow
              key={chat.id}
              chat={chat}
              selected={chat.id === state.selectedId}
              answering={state.views.get(chat.id)?.processing ?? false}
              store={store}
              onNavigate={onNavigate}
            />
          ))}
        </ul>
      </nav>
      <div class="sidebar-foot">
        <ConnectionBadge state={state} />
        <ImportButton store={store} onNavigate={onNavigate} />
        {store.canSignOut && (
          <button class="ghost small" onClick={() => store.signOut(null)}>
            <IconLogout />
            <span>{t.signOut}</span>
          </button>
        )}
      </div>
    </aside>
  );
}

/** Memoized: a streaming answer re-renders the page every frame, the chat list only when a row changed. */
const ChatRow = memo(function ChatRow({
  chat,
  selected,
  answering,
  store,
  onNavigate,
}: {
  chat: Chat;
  selected: boolean;
  answering: boolean;
  store: AppStore;
  onNavigate: () => void;
}) {
  const [mode, setMode] = useState<'view' | 'rename' | 'confirm'>('view');
  const [draft, setDraft] = useState(chat.title);
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => {
    if (mode === 'rename') input.current?.select();
  }, [mode]);

  if (mode === 'rename') {
    const save = () => {
      setMode('view');
      if (draft.trim() && draft.trim() !== chat.title) void store.rename(chat.id, draft);
    };
    return (
      <li class="chat-row editing">
        <input
          ref={input}
          class="rename-input"
          aria-label="Chat title"
          value={draft}
          maxLength={500}
          onInput={(e) => setDraft((e.target as HTMLInputElement).value)}
          onKeyDown={(e) => {
            if (e.key === 'Enter') save();
            if (e.key === 'Escape') {
              setDraft(chat.title);
              setMode('view');
            }
          }}
          onBlur={save}
        />
      </li>
    );
  }
  if (mode === 'confirm') {
    return (
      <li class="chat-row confirming" role="group" aria-label={t.deleteConfirm}>
        <span class="confirm-text">{t.deleteConfirm}</span>
        <button class="danger small" onClick={() => void store.remove(chat.id)} autoFocus>
          {t.delete}
        </button>
        <button class="ghost small" onClick={() => setMode('view')}>
          {t.cancel}
        </button>
      </li>
    );
  }
  return (
    <li class={`chat-row${selected ? ' selected' : ''}`}>
      <a
        href={`/c/${chat.id}`}
        class="chat-link"
        aria-current={selected ? 'page' : undefined}
        onClick={(e) => {
          e.preventDefault();
          store.select(chat.id);
          onNavigate();
        }}
      >
        {answering && <span class="answering-dot" title={t.answering} aria-label={t.answering} />}
        <span class="chat-title">{chat.title}</span>
        <time class="chat-time" dateTime={chat.updated_at}>
          {relativeTime(chat.updated_at)}
        </time>
      </a>
      <div class="row-actions">
        <button
          class="icon-btn"
          aria-label={`${names.rename} ${chat.title}`}
          title={t.rename}
          onClick={() => {
            setDraft(chat.title);
            setMode('rename');
          }}
        >
          <IconPencil />
        </button>
        <button class="icon-btn" aria-label={`${names.delete} ${chat.title}`} title={t.delete} onClick={() => setMode('confirm')}>
          <IconTrash />
        </button>
      </div>
    </li>
  );
});

function ConnectionBadge({ state }: { state: AppState }) {
  const [, tick] = useState(0);
  const c = state.connection;
  useEffect(() => {
    if (c.kind !== 'waiting') return;
    const timer = setInterval(() => tick((n) => n + 1), 1000);
    return () => clearInterval(timer);
  }, [c]);
  const label =
    c.kind === 'open'
      ? t.connected
      : c.kind === 'waiting'
        ? t.reconnecting(Math.max(0, Math.ceil((c.retryAt - Date.now()) / 1000)))
        : t.connecting;
  return (
    <div class={`conn conn-${c.kind}`} role="status" aria-live="polite" data-connection={c.kind}>
      <span class="conn-dot" />
      <span>{label}</span>
    </div>
  );
}

const rtf = typeof Intl !== 'undefined' ? new Intl.RelativeTimeFormat(undefined, { numeric: 'auto', style: 'narrow' }) : null;

function relativeTime(iso: string): string {
  const diff = (Date.parse(iso) - Date.now()) / 1000;
  const abs = Math.abs(diff);
  if (!rtf || Number.isNaN(diff)) return '';
  if (abs < 60) return rtf.format(Math.round(diff), 'second');
  if (abs < 3600) return rtf.format(Math.round(diff / 60), 'minute');
  if (abs < 86400) return rtf.format(Math.round(diff / 3600), 'hour');
  if (abs < 86400 * 7) return rtf.format(Math.round(diff / 86400), 'day');
  return new Date(iso).toLocaleDateString();
}

/** Imports a chat from a JSON export file (docs/export-format.md) and opens it. */
function ImportButton({ store, onNavigate }: { store: AppStore; onNavigate: () => void }) {
  const input = useRef<HTMLInputElement>(null);
  return (
    <>
      <button class="ghost small" aria-label={names.importChat} title={t.importHint} onClick={() => input.current?.click()}>
        <IconUpload />
        <span>{t.importChat}</span>
      </button>
      <input
        ref={input}
        type="file"
        accept="application/json,.json"
        hidden
        aria-hidden="true"
        tabIndex={-1}
        onChange={async (e) => {
          const el = e.currentTarget;
          const file = el.files?.[0];
          el.value = '';
          if (file && (await store.importChat(file))) onNavigate();
        }}
      />
    </>
  );
}
