import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import type { Chat, ImageInput } from '../../../src/protocol/chat.js';
import type { ChatView } from '../chat-view.js';
import { names, t } from '../i18n.js';
import type { AppState, AppStore } from '../store.js';
import { Composer, type ComposerHandle } from './Composer.js';
import { IconDown, IconDownload, IconMenu, IconRetry } from './icons.js';
import { ItemView, PendingView } from './Messages.js';
import { PermissionCard } from './PermissionCard.js';

/** Within this distance of the bottom the view follows new text; scrolled further up, it stays put. */
const STICK_PX = 80;
/** Closer than this to the top, older messages are shown (or paged in over REST). */
const LOAD_OLDER_PX = 400;
/**
 * Items mounted at first, and added each time the reader nears the top. A long chat opens by rendering only its
 * newest part (what is on screen), so a 1,000-message history costs about as much as a short one; the rest is
 * already in memory and appears as the reader scrolls up, before older pages come over REST.
 */
const WINDOW_STEP = 60;

export function Conversation({
  store,
  state,
  chat,
  view,
  onOpenMenu,
}: {
  store: AppStore;
  state: AppState;
  chat: Chat | null;
  view: ChatView | null;
  onOpenMenu: () => void;
}) {
  const scroller = useRef<HTMLDivElement>(null);
  const stick = useRef(true);
  const [showJump, setShowJump] = useState(false);
  const [dragging, setDragging] = useState(false);
  const composer = useRef<ComposerHandle | null>(null);
  const prev = useRef<{ firstKey: string | undefined; height: number; top: number; chatId: string | null }>({
    firstKey: undefined,
    height: 0,
    top: 0,
    chatId: null,
  });
  const allItems = view?.items ?? [];
  const chatId = view?.chatId ?? null;
  // The first mounted item, by key: appended items never move it, so the reader's place stays put.
  const windowStart = useRef<{ chatId: string | null; key: string | undefined }>({ chatId: null, key: undefined });
  const [, setRevealTick] = useState(0);
  let start = allItems.findIndex((i) => i.key === windowStart.current.key);
  if (windowStart.current.chatId !== chatId || start < 0) {
    start = Math.max(0, allItems.length - WINDOW_STEP);
    windowStart.current = { chatId, key: allItems[start]?.key };
  }
  const items = start > 0 ? allItems.slice(start) : allItems;
  const hiddenAbove = start;

  /** Near the top: mount the next older items, or page older messages in over REST. */
  const showOlder = () => {
    if (hiddenAbove > 0) {
      const next = Math.max(0, hiddenAbove - WINDOW_STEP);
      windowStart.current = { chatId, key: allItems[next]?.key };
      setRevealTick((n) => n + 1);
    } else if (view?.hasMore && chatId) void store.loadOlder(chatId);
  };
  const processing = view?.processing ?? false;
  const pending = (chatId && state.pending.get(chatId)) || [];
  // Retry answers the chat's last question again: offered when nothing runs or waits to be sent.
  const canRetry =
    !processing && pending.length === 0 && !!view?.loaded && state.connection.kind === 'open' && allItems.some((i) => i.kind === 'user');

  // Keep the reader's place: follow the bottom when stuck to it, keep the visible text still when older
  // messages are put in front.
  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el) return;
    const p = prev.current;
    const firstKey = items[0]?.key;
    if (p.chatId !== chatId) {
      stick.current = true;
      el.scrollTop = el.scrollHeight;
    } else if (p.firstKey !== undefined && firstKey !== p.firstKey && el.scrollHeight > p.height && !stick.current) {
      el.scrollTop = p.top + (el.scrollHeight - p.height);
    } else if (stick.current) {
      el.scrollTop = el.scrollHeight;
    }
    prev.current = { firstKey, height: el.scrollHeight, top: el.scrollTop, chatId };
    // Still near the top after this render (short content, or the reader is there): show more.
    if (!stick.current && el.scrollTop < LOAD_OLDER_PX && (hiddenAbove > 0 || view?.hasMore)) showOlder();
  });

  useEffect(() => {
    setShowJump(false);
  }, [chatId]);

  const onScroll = () => {
    const el = scroller.current;
    if (!el) return;
    const atBottom = el.scrollHeight - el.scrollTop - el.clientHeight < STICK_PX;
    stick.current = atBottom;
    prev.current.top = el.scrollTop;
    prev.current.height = el.scrollHeight;
    if (showJump === atBottom) setShowJump(!atBottom);
    if (el.scrollTop < LOAD_OLDER_PX) showOlder();
  };

  const jump = () => {
    const el = scroller.current;
    if (!el) return;
    stick.current = true;
    el.scrollTo({ top: el.scrollHeight, behavior: 'smooth' });
    setShowJump(false);
  };

  // A short page may leave older messages above with nothing to scroll: show them at once.
  useEffect(() => {
    const el = scroller.current;
    if (el && (hiddenAbove > 0 || view?.hasMore) && el.scrollHeight <= el.clientHeight + LOAD_OLDER_PX) showOlder();
  }, [hiddenAbove, view?.hasMore, view?.oldestMessageId, chatId]);

  // Esc stops the running answer from anywhere in the conversation (inputs elsewhere keep their own Esc).
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key !== 'Escape' || !processing || !chatId || e.defaultPrevented) return;
      const target = e.target as HTMLElement | null;
      if (target && target.closest('.sidebar')) return;
      store.stop(chatId);
    };
    document.addEventListener('keydown', onKey);
    return () => document.removeEventListener('keydown', onKey);
  }, [processing, chatId]);

  const onSend = async (content: string, images: ImageInput[]) => {
    stick.current = true;
    let id = chatId;
    if (!id) {
      const firstLine = content.split('\n')[0]?.trim() ?? '';
      id = await store.newChat(firstLine ? firstLine.slice(0, 60) : undefined);
      if (!id) return false;
    }
    return store.send(id, content, images);
  };

  const onCopy = (e: MouseEvent) => {
    const button = (e.target as HTMLElement).closest<HTMLButtonElement>('[data-copy-code]');
    if (!button) return;
    const code = button.closest('.code-block')?.querySelector('pre')?.textContent ?? '';
    void copyText(code).then(() => {
      button.textContent = t.copied;
      setTimeout(() => (button.textContent = t.copy), 1500);
    });
  };

  const empty = !view || (view.loaded && allItems.length === 0 && pending.length === 0);
  return (
    <main
      class={`conversation${dragging ? ' dragging' : ''}`}
      onDragOver={(e) => {
        if (e.dataTransfer?.types.includes('Files')) {
          e.preventDefault();
          setDragging(true);
        }
      }}
      onDragLeave={(e) => {
        if (e.currentTarget === e.target || !(e.currentTarget as HTMLElement).contains(e.relatedTarget as Node)) setDragging(false);
      }}
      onDrop={(e) => {
        e.preventDefault();
        setDragging(false);
        if (e.dataTransfer?.files) composer.current?.addFiles(e.dataTransfer.files);
      }}
    >
      <header class="topbar">
        <button class="icon-btn menu-btn" aria-label={t.menu} onClick={onOpenMenu}>
          <IconMenu />
        </button>
        <h1 class="topbar-title">{chat?.title ?? t.appName}</h1>
        {processing && <span class="topbar-status">{t.answering}</span>}
        {chat && (
          <div class="topbar-actions">
            <button class="ghost small" aria-label={names.exportMarkdown} title={t.exportMarkdown} onClick={() => void store.exportChat(chat.id, 'markdown')}>
              <IconDownload />
              <span>MD</span>
            </button>
            <button class="ghost small" aria-label={names.exportJson} title={t.exportJson} onClick={() => void store.exportChat(chat.id, 'json')}>
              <IconDownload />
              <span>JSON</span>
            </button>
          </div>
        )}
      </header>
      <div class="scroller" ref={scroller} onScroll={onScroll} onClick={onCopy}>
        <div class="thread" aria-live="off">
          {(view?.hasMore || hiddenAbove > 0) && <div class="older">{t.loadingOlder}</div>}
          {view && !view.loaded && <div class="loading-dots" aria-label="Loading" />}
          {empty ? (
            <Welcome demo={state.info?.demo ?? false} />
          ) : (
            items.map((item) => <ItemView key={item.key} item={item} />)
          )}
          {pending.map((p) => (
            <PendingView key={p.id} message={p} />
          ))}
          {canRetry && chatId && (
            <div class="answer-actions">
              <button class="ghost small" aria-label={names.retry} title={t.retryTitle} onClick={() => store.retry(chatId)}>
                <IconRetry />
                <span>{t.retry}</span>
              </button>
            </div>
          )}
          {view && view.prompts.length > 0 && (
            <div class="prompts">
              {view.prompts.map((p) => (
                <PermissionCard
                  key={p.requestId}
                  prompt={p}
                  onAnswer={(allow, remember) => store.answerPermission(view.chatId, p.requestId, allow, remember)}
                />
              ))}
            </div>
          )}
        </div>
      </div>
      {showJump && (
        <button class="jump" onClick={jump}>
          <IconDown />
          {t.jumpToLatest}
        </button>
      )}
      <Composer
        limits={state.info?.limits ?? null}
        processing={processing}
        connected={state.connection.kind === 'open'}
        chatKey={chatId ?? ''}
        onSend={onSend}
        onStop={() => chatId && store.stop(chatId)}
        handle={composer}
      />
      {dragging && <div class="drop-overlay">{t.dropImages}</div>}
    </main>
  );
}

function Welcome({ demo }: { demo: boolean }) {
  return (
    <div class="welcome">
      <img src="/favicon.svg" alt="" width={56} height={56} />
      <h2>{t.welcomeTitle}</h2>
      <p>{t.welcomeText}</p>
      {demo && <p class="hint">{t.demoHints}</p>}
    </div>
  );
}

async function copyText(text: string): Promise<void> {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = document.createElement('textarea');
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand('copy');
    area.remove();
  }
}
